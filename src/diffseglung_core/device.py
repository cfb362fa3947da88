"""Torch device selection and mixed precision, in one place."""

from __future__ import annotations

import contextlib
import warnings

import torch


def get_device(name: str = "auto") -> torch.device:
    """Resolve ``"auto" | "cpu" | "cuda" | "cuda:N" | "mps"`` to a torch device.

    ``"auto"`` picks CUDA, then MPS, then CPU. Asking for an accelerator that
    is absent falls back to CPU with a warning rather than failing.
    """
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        warnings.warn("CUDA was requested but is not available; using the CPU", stacklevel=2)
        return torch.device("cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) is not None
                              and torch.backends.mps.is_available()):
        warnings.warn("MPS was requested but is not available; using the CPU", stacklevel=2)
        return torch.device("cpu")
    return torch.device(name)


def autocast_dtype(device: torch.device, precision: str = "auto"):
    """The autocast dtype for ``precision`` in ``{"auto", "bf16", "fp16", "fp32"}``.

    ``"auto"`` is bf16 on CUDA devices that support it, fp16 on other CUDA
    devices and MPS, and fp32 (no autocast) on CPU. Returns ``None`` for fp32.
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return None


def autocast(device: torch.device, precision: str = "auto"):
    """A context manager running the enclosed ops in mixed precision, if any."""
    dtype = autocast_dtype(device, precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
