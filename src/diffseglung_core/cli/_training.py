"""Options and data loading shared by ``diffseglung train`` and ``train-distill``."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from ._common import add_device_argument


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--patches", type=Path, metavar="DIR",
                     help="precomputed patch folder (ct.npy, mask.npy, patient_ids.npy)")
    src.add_argument("--scans", type=Path, metavar="DIR",
                     help="folder of scans to cut patches from (saved under OUT/patches)")
    p.add_argument("--patch-size", type=int, nargs=3, default=(32, 64, 64), metavar=("D", "H", "W"),
                   help="patch size in voxels with --scans (default 32 64 64)")
    p.add_argument("--patches-per-scan", type=int, default=150)
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="folder for checkpoint.pt, model.pt, log.csv, tb/ and samples/")


def add_optim_arguments(p: argparse.ArgumentParser, steps: int, batch: int) -> None:
    p.add_argument("--steps", type=int, default=steps, help=f"optimiser steps (default {steps})")
    p.add_argument("--batch-size", type=int, default=batch,
                   help=f"patches per step over all processes (default {batch})")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp16", "fp32"),
                   help="autocast on GPU (auto: bf16 where supported); the CPU runs fp32")
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--sample-every", type=int, default=0, help="steps between sample montages (0: never)")
    p.add_argument("--sample-steps", type=int, default=20)
    p.add_argument("--resume", nargs="?", const="auto", metavar="CKPT",
                   help="continue from CKPT (default: OUT/checkpoint.pt)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: torch's default)")
    add_device_argument(p)


def train_config(args, stage: int):
    from ..training.config import TrainConfig

    return TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                       weight_decay=args.weight_decay, ema_decay=args.ema_decay,
                       grad_clip=args.grad_clip, seed=args.seed, precision=args.precision,
                       checkpoint_every=args.checkpoint_every, log_every=args.log_every,
                       sample_every=args.sample_every, sample_steps=args.sample_steps, stage=stage)


def resume_path(args):
    if not args.resume:
        return None
    return args.out / "checkpoint.pt" if args.resume == "auto" else Path(args.resume)


def load_data(args, dist, progress=None):
    """The run's :class:`PatchArrays` (rank 0 precomputes scans; the others wait)."""
    from ..io import find_scans
    from ..training.data import PatchArrays, patches_from_scans
    from ..training.distributed import barrier

    if args.patches is not None:
        return PatchArrays.from_folder(args.patches)
    folder = args.out / "patches"
    if dist.is_main and not (folder / "ct.npy").is_file():
        patches_from_scans(find_scans([args.scans]), args.patch_size, args.patches_per_scan,
                           seed=args.seed, folder=folder, progress=progress)
    barrier()
    return PatchArrays.from_folder(folder)


@contextlib.contextmanager
def training_run(args):
    """Set up a run: torch threads, the process group (under torchrun), the data.

    Yields ``(dist, data, resume)``: the distributed context, the run's
    :class:`PatchArrays` and the checkpoint to resume from (or None). The
    process group is torn down on exit.
    """
    from ..training.distributed import cleanup, init_distributed

    dist = init_distributed(args.device, threads=args.threads)
    try:
        yield dist, load_data(args, dist), resume_path(args)
    finally:
        cleanup()

