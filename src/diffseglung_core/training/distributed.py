"""torchrun / DistributedDataParallel helpers.

``torchrun --nproc_per_node=N --no-python diffseglung train ...`` sets
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`init_distributed` reads
them, starts the process group (NCCL on CUDA, gloo on CPU) and picks this
process's device. Without them everything runs as a single process.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..device import Rank, get_device


@dataclass(frozen=True)
class DistInfo:
    """Rank, world size and device of this process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True on the process that logs and writes checkpoints (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto", *, threads: int = 0) -> DistInfo:
    """Start the process group if launched by torchrun, and choose the device.

    Parameters
    ----------
    device : str
        ``"auto" | "cpu" | "cuda" | "mps"``; on CUDA each process takes
        ``cuda:LOCAL_RANK`` (:class:`~diffseglung_core.device.Rank`).
    threads : int
        CPU threads of torch (0: torch's default).

    Returns
    -------
    DistInfo
    """
    if threads:
        torch.set_num_threads(threads)
    rank = Rank.from_env()
    dev = get_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", rank.local_rank)
        torch.cuda.set_device(dev)
    if rank.world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank=rank.rank, world_size=rank.world, local_rank=rank.local_rank, device=dev)


def current() -> DistInfo:
    """This process's :class:`DistInfo` from an already initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size())
    return DistInfo()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    """Destroy the process group if one was started."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
