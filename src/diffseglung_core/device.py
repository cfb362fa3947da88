"""Torch device selection, this process's share of a torchrun job, and mixed precision."""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["DEVICES", "get_device", "device_warning", "Rank", "autocast_dtype", "autocast",
           "to_float16"]

#: The device names offered to users (``"cuda:N"`` is accepted too).
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def device_warning(name: str) -> str:
    """Why ``name`` will not get the accelerator it asks for ("" when it will).

    Parameters
    ----------
    name : str
        A device name, see :data:`DEVICES`.

    Returns
    -------
    str
        One sentence for users, or "".
    """
    name = (name or "auto").lower()
    if name.startswith("cuda") and not torch.cuda.is_available():
        return "CUDA is not available on this machine: the CPU will be used (slow)."
    if name == "mps" and not _mps_available():
        return "MPS is not available on this machine: the CPU will be used."
    return ""


def get_device(name: str = "auto", *, warn: bool = True) -> torch.device:
    """Resolve ``"auto" | "cpu" | "cuda" | "cuda:N" | "mps"`` to a torch device.

    ``"auto"`` picks CUDA, then MPS, then CPU. Asking for an accelerator that
    is absent falls back to the CPU with a warning (``warn=False``: silently)
    rather than failing.
    """
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    why = device_warning(name)
    if why:
        if warn:
            requested = "CUDA" if name.startswith("cuda") else "MPS"
            warnings.warn(f"{requested} was requested but is not available; using the CPU",
                          stacklevel=2)
        return torch.device("cpu")
    return torch.device(name)


@dataclass(frozen=True)
class Rank:
    """This process's place in a ``torchrun`` job (one process, rank 0, without torchrun).

    Attributes
    ----------
    rank : int
        ``RANK``: index of the process in the job.
    world : int
        ``WORLD_SIZE``: number of processes.
    local_rank : int
        ``LOCAL_RANK``: index of the process on its machine.
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Rank:
        """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (set by torchrun)."""
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def is_main(self) -> bool:
        """True on the process that logs and writes shared files (rank 0)."""
        return self.rank == 0

    def device(self, requested: str) -> str:
        """The device name of this process: ``cuda:LOCAL_RANK`` when several ranks share CUDA.

        One process keeps ``requested`` as it is.
        """
        if self.world > 1 and requested in ("auto", "cuda") and torch.cuda.is_available():
            return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return requested

    def share(self, items) -> list:
        """This process's share of ``items``: every ``world``-th item from ``rank`` on."""
        return list(items[self.rank::self.world])


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


def to_float16(array: np.ndarray) -> np.ndarray:
    """A float16 copy of ``array``, converted by torch.

    The same values as ``array.astype(np.float16)`` (round to nearest even),
    but vectorised: numpy converts values below float16's normal range (tiny
    posteriors) one by one, about 50 times slower.
    """
    t = torch.from_numpy(np.ascontiguousarray(array))
    return t.to(torch.float16).numpy()
