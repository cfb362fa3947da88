"""What every reader returns: the array as stored and its geometry."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from ..volume import canonical_affine


@dataclass
class NativeScan:
    """An image as stored in its file, before reorientation.

    Attributes
    ----------
    data : (I, J, K) ndarray
        Values as stored, with the file's rescale applied (HU for a scan,
        integer labels for a mask).
    affine : (4, 4) float64 ndarray
        Voxel ``(i, j, k)`` to RAS+ world (mm) of ``data``.
    description : str
        Text for users (series description, choices made while reading).
    metadata : dict
        Anything else worth keeping (modality, series UID, ...).
    has_geometry : bool
        False when the file stores no position or orientation and ``affine``
        was made from a user-given spacing (TIFF, some NPZ).
    """

    data: np.ndarray
    affine: np.ndarray
    description: str = ""
    metadata: dict = field(default_factory=dict)
    has_geometry: bool = True


#: ``read(path, *, spacing, series, role, progress) -> NativeScan``. ``role`` is
#: ``"image"`` or ``"labels"`` (formats holding both, like the NPZ, pick the array).
ReadFunction = Callable[..., NativeScan]


@dataclass(frozen=True)
class Reader:
    """One entry of the reader registry.

    Attributes
    ----------
    name : str
        Format name stored in :attr:`ScanSource.format`.
    suffixes : tuple of str
        Lower-case file endings it reads (``".nii.gz"``); ``"/"`` for folders.
    read : callable
        See :data:`ReadFunction`.
    """

    name: str
    suffixes: tuple[str, ...]
    read: ReadFunction

    def accepts(self, path: Path) -> bool:
        if path.is_dir():
            return "/" in self.suffixes
        name = path.name.lower()
        return any(name.endswith(s) for s in self.suffixes if s != "/")


#: ``save(path, array, reference, role)``: write ``array`` (canonical ``(z, y, x)``, on the grid
#: of the :class:`CTVolume` ``reference``) to ``path``; ``role`` is ``"image"`` or ``"labels"``.
SaveFunction = Callable[..., None]


@dataclass(frozen=True)
class Writer:
    """One writer of the registry.

    Attributes
    ----------
    name : str
        Format name.
    suffixes : tuple of str
        Lower-case file endings it writes (``".nii.gz"``).
    save : callable
        See :data:`SaveFunction`.
    """

    name: str
    suffixes: tuple[str, ...]
    save: SaveFunction

    def accepts(self, path: Path) -> bool:
        return path.name.lower().endswith(self.suffixes)


def spacing_affine(spacing: Sequence[float]) -> np.ndarray:
    """RAS affine of a canonical ``(z, y, x)`` array with voxel size ``spacing`` (mm)."""
    return canonical_affine(spacing)


def lps_to_ras(affine: np.ndarray) -> np.ndarray:
    """Turn a voxel-to-LPS affine into voxel-to-RAS (negate the first two rows)."""
    out = np.array(affine, dtype=np.float64)
    out[:2] *= -1
    return out


def checked_spacing(path, spacing: Optional[Sequence[float]]) -> tuple[float, float, float]:
    """Validate a user-given ``(z, y, x)`` spacing in mm."""
    from ..errors import ScanReadError

    vals = tuple(float(s) for s in spacing)  # type: ignore[union-attr]
    if len(vals) != 3 or not all(np.isfinite(v) and v > 0 for v in vals):
        raise ScanReadError(path, f"spacing must be 3 positive values (z, y, x) in mm, got {spacing}")
    return vals  # type: ignore[return-value]


__all__ = ["NativeScan", "Reader", "ReadFunction", "Writer", "SaveFunction", "spacing_affine",
           "lps_to_ras", "checked_spacing"]
