"""``diffseglung train-distill``: stage 2, radiomic distillation from a stage-1 checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._training import add_data_arguments, add_optim_arguments, train_config, training_run

HELP = "distil radiomic features into the U-Net bottleneck (stage 2, from a stage-1 checkpoint)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="init", type=Path, required=True, metavar="CKPT",
                   help="stage-1 checkpoint to start from")
    add_data_arguments(p)
    p.add_argument("--warmup-start", type=int, default=0,
                   help="stage-2 step at which the InfoNCE weight leaves 0")
    p.add_argument("--warmup-end", type=int, default=2000,
                   help="stage-2 step at which the weight reaches --lambda-max")
    p.add_argument("--lambda-max", type=float, default=0.5)
    p.add_argument("--temperature", type=float, default=0.1)
    p.add_argument("--embed-dim", type=int, default=128)
    add_optim_arguments(p, steps=10_000, batch=16)


def run(args) -> int:
    from dataclasses import replace

    from ..model.checkpoint import load_checkpoint, model_config_from_dict
    from ..model.config import DistillConfig
    from ..training.data import cached_teacher_vectors
    from ..training.loop import Trainer

    with training_run(args) as (dist, data, resume):
        source = resume or args.init
        cfg = model_config_from_dict(load_checkpoint(source)["model_config"])
        if resume is None:
            cfg = replace(cfg, stage=2, step=0, teacher_stats=None,
                          distill=DistillConfig(embed_dim=args.embed_dim, temperature=args.temperature,
                                                lambda_max=args.lambda_max,
                                                warmup_start=args.warmup_start,
                                                warmup_end=args.warmup_end))
        tv = cached_teacher_vectors(data, args.out / "teacher_vectors.npy", write=dist.is_main,
                                    device=dist.device)
        trainer = Trainer(cfg, train_config(args, 2), data, args.out, dist=dist, teacher_vectors=tv,
                          init_from=None if resume else args.init, resume=resume,
                          progress_bar=dist.is_main)
        out = trainer.run()
        if dist.is_main:
            print(f"stage 2: {trainer.step} steps; checkpoint {out['checkpoint']}, model {out['model']}")
    return 0
