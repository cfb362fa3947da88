"""Configuration of a training run (optimiser, schedule of saves and logs)."""

from __future__ import annotations

from dataclasses import dataclass

from ..model.config import _DictMixin


@dataclass(frozen=True)
class TrainConfig(_DictMixin):
    """Optimisation and bookkeeping of one training stage.

    Attributes
    ----------
    steps : optimiser steps of this stage (the run stops when ``step == steps``).
    batch_size : patches per step over all processes (divisible by the world size).
    lr, weight_decay, adam_betas : AdamW settings.
    ema_decay : decay of the exponential moving average of the weights.
    grad_clip : maximum global gradient norm (0 disables clipping).
    seed : seeds the data order, timesteps, noise and initial weights.
    precision : ``"auto" | "bf16" | "fp16" | "fp32"`` autocast (CPU runs fp32 under auto).
    checkpoint_every : steps between checkpoints (always one at the end).
    log_every : steps between CSV / TensorBoard rows.
    sample_every : steps between sample montages (0: never).
    sample_steps : DPM-Solver++ steps of those samples.
    stage : 1 (diffusion only) or 2 (diffusion + radiomic distillation).
    """

    steps: int = 10000
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    seed: int = 0
    precision: str = "auto"
    checkpoint_every: int = 1000
    log_every: int = 10
    sample_every: int = 0
    sample_steps: int = 20
    stage: int = 1

    def __post_init__(self) -> None:
        if self.stage not in (1, 2):
            raise ValueError("stage must be 1 or 2")
        if self.batch_size < 1 or self.steps < 0:
            raise ValueError("batch_size must be >= 1 and steps >= 0")
        if self.precision not in ("auto", "bf16", "fp16", "fp32"):
            raise ValueError(f"unknown precision {self.precision!r}")
