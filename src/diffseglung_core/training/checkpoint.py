"""Writing checkpoints: atomically, in the layout :mod:`diffseglung_core.model.checkpoint` reads.

A checkpoint is written with ``torch.save`` to a temporary file that then
replaces the target (``os.replace``), so a crash never leaves a half-written
checkpoint.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Optional, Union

import torch

from ..io.writers import file_mode
from ..model.checkpoint import FORMAT, FORMAT_VERSION, load_checkpoint, model_config_to_dict
from ..model.config import ModelConfig
from ..volume import HU_OFFSET, HU_SCALE

__all__ = ["save_checkpoint", "make_payload", "export_model"]


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
        os.chmod(tmp, file_mode())  # mkstemp makes 0600 files; follow the umask
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


def export_model(source: Union[str, Path], path: Union[str, Path],
                 provenance: Optional[dict[str, Any]] = None, half: bool = True) -> Path:
    """Write the inference file of a training checkpoint (the form the package ships).

    Parameters
    ----------
    source : path
        A checkpoint written by a training run (``checkpoint.pt`` or ``model.pt``).
    path : path
        The file to write.
    provenance : dict, optional
        Plain values (data, settings) stored under ``"provenance"``.
    half : bool
        Store floating weights as fp16.

    Returns
    -------
    Path
        ``path``: the EMA weights and configuration, without the training state.
    """
    ckpt = load_checkpoint(source)
    ckpt.pop("training", None)
    if half:
        for k, sd in ckpt["weights"].items():
            if sd is not None:
                ckpt["weights"][k] = {n: v.half() if v.is_floating_point() else v for n, v in sd.items()}
    if provenance is not None:
        ckpt["provenance"] = provenance
    return save_checkpoint(path, ckpt)
