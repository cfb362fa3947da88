"""Two gloo processes on the CPU take the same steps as one process."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from diffseglung_core.model.config import ModelConfig, UNetConfig
from diffseglung_core.training.config import TrainConfig
from diffseglung_core.training.distributed import DistInfo
from diffseglung_core.training.loop import Trainer

TINY = ModelConfig(unet=UNetConfig.tiny(), patch_size=(16, 16, 16))
TC = TrainConfig(steps=4, batch_size=8, lr=1e-3, checkpoint_every=100, log_every=1, seed=3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, data, out):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        trainer = Trainer(TINY, TC, data, out, dist=DistInfo(rank, world, rank, torch.device("cpu")))
        trainer.run()
        torch.save(trainer.objective.state_dict(), os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo_matches_single_process(phantom_patches, tmp_path):
    single = Trainer(TINY, TC, phantom_patches, tmp_path / "single")
    single.run()
    out = tmp_path / "ddp"
    out.mkdir()
    mp.spawn(_worker, args=(2, _free_port(), phantom_patches, str(out)), nprocs=2, join=True)
    w0 = torch.load(out / "rank0.pt", weights_only=True)
    w1 = torch.load(out / "rank1.pt", weights_only=True)
    ref = single.objective.state_dict()
    init = Trainer(TINY, TC, phantom_patches, tmp_path / "init").objective.state_dict()
    for k in ref:
        torch.testing.assert_close(w0[k], w1[k], atol=0, rtol=0)  # replicas stay identical
    # Adam turns summation-order noise in near-zero gradients into full-size steps, so compare
    # the whole weight vector: the DDP run must land where the single run did, relative to how
    # far training moved the weights.
    flat = lambda sd: torch.cat([sd[k].flatten().double() for k in ref])
    moved = (flat(ref) - flat(init)).norm()
    assert moved > 1e-2  # training changed the weights: the comparison is not vacuous
    assert (flat(w0) - flat(ref)).norm() < 0.01 * moved
    # only rank 0 wrote the log and the checkpoint
    assert (out / "checkpoint.pt").is_file() and (out / "log.csv").is_file()
