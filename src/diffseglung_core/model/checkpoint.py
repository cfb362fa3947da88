"""Checkpoints: safe loading and rebuilding a model from one file.

A checkpoint is a ``dict`` of plain Python values and tensors (written by
:mod:`diffseglung_core.training.checkpoint`). It is read with
``torch.load(weights_only=True)``: a checkpoint is untrusted input and cannot
run code. Layout (format version 1)::

    format            "diffseglung-diffusion"
    format_version    1
    model_config      ModelConfig as a dict (unet, diffusion, distill, patch_size,
                      teacher_stats, stage, step)
    normalization     {"hu_offset", "hu_scale", "hu_preserving"}
    weights           {"unet": EMA state dict, "student": ..., "teacher": ...}
    training          optional: train_config, raw model and optimizer state,
                      EMA state, RNG states, step, scans (resuming needs it)
"""

from __future__ import annotations

import pickle
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple, Optional, Union

import torch

from ..errors import CheckpointError
from .config import DiffusionConfig, DistillConfig, ModelConfig, UNetConfig
from .distill import StudentProjection
from .unet import UNet3D

__all__ = ["FORMAT", "FORMAT_VERSION", "default_checkpoint_path", "model_config_to_dict",
           "model_config_from_dict", "load_checkpoint", "LoadedModel", "load_model"]

FORMAT = "diffseglung-diffusion"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "model_config", "normalization", "weights")


def default_checkpoint_path() -> Path:
    """Path of the small model shipped in the package (``data/default_model.pt``)."""
    return Path(str(resources.files("diffseglung_core") / "data" / "default_model.pt"))


def model_config_to_dict(cfg: ModelConfig) -> dict[str, Any]:
    """A :class:`ModelConfig` as plain values (the checkpoint's ``model_config``)."""
    return {
        "unet": cfg.unet.to_dict(),
        "diffusion": cfg.diffusion.to_dict(),
        "distill": cfg.distill.to_dict() if cfg.distill is not None else None,
        "patch_size": list(cfg.patch_size),
        "teacher_stats": cfg.teacher_stats,
        "stage": int(cfg.stage),
        "step": int(cfg.step),
    }


def model_config_from_dict(d: dict[str, Any]) -> ModelConfig:
    """The inverse of :func:`model_config_to_dict`."""
    return ModelConfig(
        unet=UNetConfig.from_dict(d["unet"]),
        diffusion=DiffusionConfig.from_dict(d["diffusion"]),
        distill=DistillConfig.from_dict(d["distill"]) if d.get("distill") else None,
        patch_size=tuple(int(s) for s in d["patch_size"]),
        teacher_stats=d.get("teacher_stats"),
        stage=int(d.get("stage", 1)),
        step=int(d.get("step", 0)),
    )


def load_checkpoint(path: Union[str, Path], map_location: Union[str, torch.device] = "cpu"
                    ) -> dict[str, Any]:
    """Read and validate a checkpoint with ``torch.load(weights_only=True)``.

    Raises
    ------
    CheckpointError
        When the file is missing, unreadable, not a DiffSegLung diffusion
        checkpoint, written by a newer format version, or lacks keys.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a readable torch checkpoint (not a zip archive)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        why = next((line for line in lines if line.startswith(("Unsupported", "Trying"))),
                   "it holds objects other than tensors and plain values")
        raise CheckpointError(f"{path}: refused to load, it could run code ({why[:140]})") from None
    except Exception as err:  # corrupt zip, truncated file, ...
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(err).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a DiffSegLung diffusion checkpoint")
    version = ckpt.get("format_version")
    if not isinstance(version, int):
        raise CheckpointError(f"{path}: checkpoint has no format version")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {version} is newer than this version "
                              f"of diffseglung reads ({FORMAT_VERSION}); upgrade diffseglung")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if "weights" in ckpt and not (isinstance(ckpt["weights"], dict) and ckpt["weights"].get("unet")):
        missing.append("weights.unet")
    if missing:
        raise CheckpointError(f"{path}: checkpoint is missing {', '.join(missing)}")
    return ckpt


def _load_state(module: torch.nn.Module, state: dict, path: Path, what: str) -> None:
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise CheckpointError(f"{path}: {what} weights do not match its configuration "
                              f"({detail[:160]})") from None


class LoadedModel(NamedTuple):
    """What :func:`load_model` returns; unpacks as ``model, projection, config``.

    Attributes
    ----------
    model : UNet3D
        In eval mode on the requested device (EMA weights).
    projection : StudentProjection or None
        The student projection of a stage-2 model.
    config : ModelConfig
        ``config.diffusion`` rebuilds the schedule with
        :class:`~diffseglung_core.model.diffusion.Diffusion`.
    """

    model: UNet3D
    projection: Optional[StudentProjection]
    config: ModelConfig


def load_model(path: Union[str, Path, None] = None, device: Union[str, torch.device] = "cpu"
               ) -> LoadedModel:
    """Rebuild a trained model from a checkpoint alone.

    Parameters
    ----------
    path : str or Path, optional
        Checkpoint file, or None for the model shipped in the package.
    device : str or torch.device
        Where to put the modules.

    Returns
    -------
    LoadedModel
        ``(model, projection, config)``, float32 modules in eval mode.

    Raises
    ------
    CheckpointError
        The file is not a readable DiffSegLung checkpoint or its weights do
        not match its configuration.
    """
    path = default_checkpoint_path() if path is None else Path(path)
    ckpt = load_checkpoint(path)
    try:
        config = model_config_from_dict(ckpt["model_config"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: invalid model configuration ({err})") from None
    model = UNet3D(config.unet)
    _load_state(model, ckpt["weights"]["unet"], path, "U-Net")
    projection = None
    if config.distill is not None and ckpt["weights"].get("student"):
        projection = StudentProjection(config.unet.bottleneck_channels, config.distill)
        _load_state(projection, ckpt["weights"]["student"], path, "student projection")
        projection = projection.to(device).eval()
    return LoadedModel(model.to(device).eval(), projection, config)
