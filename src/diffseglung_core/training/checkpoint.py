"""Checkpoints: atomic writes, safe loading, and rebuilding a model from one file.

A checkpoint is a ``dict`` of plain Python values and tensors, written with
``torch.save`` to a temporary file that then replaces the target
(``os.replace``), so a crash never leaves a half-written checkpoint. It is
read with ``torch.load(weights_only=True)``: a checkpoint is untrusted input
and cannot run code. Layout (format version 1)::

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

import os
import pickle
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple, Optional, Union

import torch

from ..errors import CheckpointError
from ..model.config import DiffusionConfig, DistillConfig, ModelConfig, UNetConfig
from ..model.distill import StudentProjection, TeacherProjection
from ..model.unet import UNet3D
from ..volume import HU_OFFSET, HU_SCALE

FORMAT = "diffseglung-diffusion"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "model_config", "normalization", "weights")


def default_checkpoint_path() -> Path:
    """Path of the small model shipped in the package (``data/default_model.pt``)."""
    return Path(str(resources.files("diffseglung_core") / "data" / "default_model.pt"))


def model_config_to_dict(cfg: ModelConfig) -> dict[str, Any]:
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
    return ModelConfig(
        unet=UNetConfig.from_dict(d["unet"]),
        diffusion=DiffusionConfig.from_dict(d["diffusion"]),
        distill=DistillConfig.from_dict(d["distill"]) if d.get("distill") else None,
        patch_size=tuple(int(s) for s in d["patch_size"]),
        teacher_stats=d.get("teacher_stats"),
        stage=int(d.get("stage", 1)),
        step=int(d.get("step", 0)),
    )


def save_checkpoint(path: Union[str, Path], payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file, fsync, ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def make_payload(config: ModelConfig, unet: dict, student: Optional[dict] = None,
                 teacher: Optional[dict] = None, training: Optional[dict] = None,
                 half: bool = False) -> dict[str, Any]:
    """Assemble a checkpoint dict; ``half=True`` stores floating weights as fp16."""

    def _cast(sd):
        if sd is None or not half:
            return sd
        return {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}

    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": model_config_to_dict(config),
        "normalization": {"hu_offset": HU_OFFSET, "hu_scale": HU_SCALE,
                          "hu_preserving": bool(config.diffusion.hu_preserving)},
        "weights": {"unet": _cast(unet), "student": _cast(student), "teacher": _cast(teacher)},
    }
    if training is not None:
        payload["training"] = training
    return payload


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
        lines = [l.strip() for l in str(err).splitlines() if l.strip()]
        why = next((l for l in lines if l.startswith(("Unsupported", "Trying"))),
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
        lines = [l.strip() for l in str(err).splitlines() if l.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise CheckpointError(f"{path}: {what} weights do not match its configuration "
                              f"({detail[:160]})") from None


class LoadedModel(NamedTuple):
    """What :func:`load_model` returns; unpacks as ``model, projection, config``.

    Attributes
    ----------
    model : UNet3D in eval mode on the requested device (EMA weights).
    projection : StudentProjection of a stage-2 model, else None.
    config : ModelConfig (``config.diffusion`` rebuilds the schedule with
        :class:`~diffseglung_core.model.diffusion.Diffusion`).
    """

    model: UNet3D
    projection: Optional[StudentProjection]
    config: ModelConfig


def load_model(path: Union[str, Path, None] = None, device: Union[str, torch.device] = "cpu"
               ) -> LoadedModel:
    """Rebuild a trained model from a checkpoint alone.

    Parameters
    ----------
    path : checkpoint file, or None for the model shipped in the package.
    device : torch device (or name) to put the modules on.

    Returns
    -------
    LoadedModel ``(model, projection, config)``, float32 modules in eval mode.
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
