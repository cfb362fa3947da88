"""Configuration dataclasses of the diffusion model, saved in every checkpoint.

Each dataclass converts to a plain ``dict`` of numbers, strings and lists
(:meth:`to_dict`) so that checkpoints load with ``torch.load(weights_only=True)``,
and back (:meth:`from_dict`), rejecting unknown keys.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional


class _DictMixin:
    def to_dict(self) -> dict[str, Any]:
        """Plain ``dict`` (tuples become lists) for checkpoints and logs."""
        out = asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]):
        """Build from :meth:`to_dict` output; unknown keys raise ``ValueError``."""
        names = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
        unknown = set(d) - set(names)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
        kwargs = {}
        for k, v in d.items():
            if isinstance(v, list):
                v = tuple(v)
            kwargs[k] = v
        return cls(**kwargs)


@dataclass(frozen=True)
class UNetConfig(_DictMixin):
    """A 3D noise-prediction U-Net.

    Attributes
    ----------
    in_channels : int
        2: the noisy normalised CT and the lung mask.
    out_channels : int
        1: the predicted noise.
    base_channels : int
        Channels of the first level; level ``i`` has ``base * channel_mults[i]``.
    channel_mults : tuple of int
        One multiplier per resolution level; the bottleneck has
        ``base_channels * channel_mults[-1]`` channels and the input is
        downsampled ``len(channel_mults) - 1`` times (patch sides must be
        divisible by ``2 ** (len(channel_mults) - 1)``).
    num_res_blocks : int
        Residual blocks per level in the encoder (decoder: one more).
    attention_levels : tuple of int
        Levels (0 = full resolution) with self-attention after each block.
    bottleneck_attention : bool
        Self-attention in the middle block.
    dropout : float
        Dropout inside residual blocks.
    """

    in_channels: int = 2
    out_channels: int = 1
    base_channels: int = 64
    channel_mults: tuple[int, ...] = (1, 2, 3, 4)
    num_res_blocks: int = 2
    attention_levels: tuple[int, ...] = (3,)
    bottleneck_attention: bool = True
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.base_channels < 1 or not self.channel_mults:
            raise ValueError("base_channels must be >= 1 and channel_mults non-empty")
        bad = [a for a in self.attention_levels if not 0 <= a < len(self.channel_mults)]
        if bad:
            raise ValueError(f"attention_levels {bad} outside 0..{len(self.channel_mults) - 1}")

    @property
    def bottleneck_channels(self) -> int:
        """Channels of the bottleneck feature map (256 for the paper's model)."""
        return self.base_channels * self.channel_mults[-1]

    @property
    def downsampling(self) -> int:
        """Factor between the patch side and the bottleneck side."""
        return 2 ** (len(self.channel_mults) - 1)

    @classmethod
    def paper(cls) -> UNetConfig:
        """The paper's network: base 64, multipliers 1, 2, 3, 4 (256-channel bottleneck)."""
        return cls()

    @classmethod
    def small(cls) -> UNetConfig:
        """The shipped default model: base 16, multipliers 1, 2, 4 (64-channel bottleneck)."""
        return cls(base_channels=16, channel_mults=(1, 2, 4), num_res_blocks=1,
                   attention_levels=())

    @classmethod
    def tiny(cls) -> UNetConfig:
        """A network for tests: base 8, two levels, 16^3 patches run in milliseconds."""
        return cls(base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                   attention_levels=())

    @classmethod
    def preset(cls, name: str) -> UNetConfig:
        """``"paper" | "small" | "tiny"``."""
        try:
            return {"paper": cls.paper, "small": cls.small, "tiny": cls.tiny}[name]()
        except KeyError:
            raise ValueError(f"unknown model preset {name!r} (paper, small, tiny)") from None


@dataclass(frozen=True)
class DiffusionConfig(_DictMixin):
    """Forward process and input scaling.

    Attributes
    ----------
    timesteps : int
        Number of diffusion steps ``T``.
    schedule : str
        ``"linear"`` (betas from ``beta_start`` to ``beta_end``) or ``"cosine"``.
    hu_preserving : bool
        True (the paper): the model sees ``normalize_hu`` values untouched, so
        absolute density is kept. False (ablation): every patch is rescaled to
        [-1, 1] by its own minimum and maximum.
    """

    timesteps: int = 1000
    schedule: str = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    hu_preserving: bool = True

    def __post_init__(self) -> None:
        if self.schedule not in ("linear", "cosine"):
            raise ValueError(f"unknown schedule {self.schedule!r} (linear, cosine)")
        if self.timesteps < 2:
            raise ValueError("timesteps must be >= 2")


@dataclass(frozen=True)
class DistillConfig(_DictMixin):
    """Radiomic distillation heads and loss (stage 2).

    Attributes
    ----------
    teacher_dim : int
        Length of the radiomic teacher vector (34).
    embed_dim : int
        Dimension of both projected embeddings (128).
    student_hidden, teacher_hidden : int
        Hidden widths of the two MLPs.
    pool_size : int
        Side of the AvgPool3D output the student flattens (1: global average).
    temperature : float
        InfoNCE temperature.
    lambda_max : float
        Final weight of the InfoNCE term.
    warmup_start, warmup_end : int
        Step at which the weight leaves 0 and the step at which it reaches
        ``lambda_max`` (counted from the start of stage 2).
    """

    teacher_dim: int = 34
    embed_dim: int = 128
    student_hidden: int = 256
    teacher_hidden: int = 128
    pool_size: int = 1
    temperature: float = 0.1
    lambda_max: float = 0.5
    warmup_start: int = 0
    warmup_end: int = 2000


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a trained model from its checkpoint.

    Attributes
    ----------
    unet, diffusion : the network and forward process.
    distill : heads of stage 2, or None for a stage-1 model.
    patch_size : (D, H, W) voxels the model was trained on.
    teacher_stats : robust normalisation of the radiomic teacher
        (``{"median": [...], "iqr": [...]}``), or None.
    stage : 1 or 2.
    step : optimiser steps the weights have seen.
    """

    unet: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    distill: Optional[DistillConfig] = None
    patch_size: tuple[int, int, int] = (32, 32, 32)
    teacher_stats: Optional[dict] = None
    stage: int = 1
    step: int = 0
