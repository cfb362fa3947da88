"""``diffseglung train``: stage 1, the diffusion U-Net on lung CT patches."""

from __future__ import annotations

import argparse

from ._training import add_data_arguments, add_optim_arguments, train_config, training_run

HELP = "train the 3D diffusion U-Net on lung CT patches (stage 1; torchrun for several GPUs)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data_arguments(p)
    p.add_argument("--model", default="paper", choices=("paper", "small", "tiny"),
                   help="network preset (paper: base 64, multipliers 1 2 3 4)")
    p.add_argument("--base-channels", type=int, help="override the preset's base channels")
    p.add_argument("--channel-mults", type=int, nargs="+", help="override the preset's multipliers")
    p.add_argument("--timesteps", type=int, default=1000)
    p.add_argument("--schedule", default="linear", choices=("linear", "cosine"))
    p.add_argument("--no-hu-preserving", action="store_true",
                   help="ablation: rescale every patch to [-1, 1] instead of keeping absolute HU")
    add_optim_arguments(p, steps=100_000, batch=8)


def run(args) -> int:
    from dataclasses import replace

    from ..errors import DiffSegLungError
    from ..model.checkpoint import load_checkpoint, model_config_from_dict
    from ..model.config import DiffusionConfig, ModelConfig, UNetConfig
    from ..training.loop import Trainer

    with training_run(args) as (dist, data, resume):
        if resume is not None:
            cfg = replace(model_config_from_dict(load_checkpoint(resume)["model_config"]),
                          stage=1)
        else:
            unet = UNetConfig.preset(args.model)
            if args.base_channels:
                unet = replace(unet, base_channels=args.base_channels)
            if args.channel_mults:
                unet = replace(unet, channel_mults=tuple(args.channel_mults),
                               attention_levels=tuple(a for a in unet.attention_levels
                                                      if a < len(args.channel_mults)))
            cfg = ModelConfig(unet=unet, patch_size=data.patch_size,
                              diffusion=DiffusionConfig(timesteps=args.timesteps, schedule=args.schedule,
                                                        hu_preserving=not args.no_hu_preserving))
        f = cfg.unet.downsampling
        if any(s % f for s in data.patch_size):
            raise DiffSegLungError(f"patch size {data.patch_size} is not divisible by {f}, "
                                   f"the model's downsampling")
        trainer = Trainer(cfg, train_config(args, 1), data, args.out, dist=dist, resume=resume,
                          progress_bar=dist.is_main)
        out = trainer.run()
        if dist.is_main:
            print(f"stage 1: {trainer.step} steps; checkpoint {out['checkpoint']}, model {out['model']}")
    return 0
