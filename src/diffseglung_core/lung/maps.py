"""Lung label maps: the label values, volumes and grid checks."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import GridMismatchError

#: Label values of :func:`~diffseglung_core.lung.compute_lung_mask`.
RIGHT_LUNG = 1
LEFT_LUNG = 2
#: Both label values, the right lung first (it wins where the two meet).
SIDES = (RIGHT_LUNG, LEFT_LUNG)


def binary_lung(mask: np.ndarray) -> np.ndarray:
    """Any lung mask or lung label map as a bool array (nonzero = lung)."""
    return np.asarray(mask) != 0


def lung_volumes_ml(mask: np.ndarray, spacing: Sequence[float]) -> dict[str, float]:
    """Volumes (mL) of the right lung, the left lung and both in a lung label map."""
    voxel_ml = float(np.prod([float(s) for s in spacing])) / 1000.0
    counts = np.bincount(np.asarray(mask, dtype=np.uint8).ravel(), minlength=3)
    right = counts[RIGHT_LUNG] * voxel_ml
    left = counts[LEFT_LUNG] * voxel_ml
    return {"right": float(right), "left": float(left),
            "total": float(np.count_nonzero(mask) * voxel_ml)}


def check_mask_grid(mask: np.ndarray, volume, *, name: str = "mask") -> np.ndarray:
    """Check that a lung mask lies on the grid of a CT volume.

    Parameters
    ----------
    mask : (Z, Y, X) array
        Lung mask or label map.
    volume : CTVolume or (Z, Y, X) array
        The CT it must match.
    name : str
        How to call the mask in the error message (e.g. its file name).

    Returns
    -------
    The mask as an ndarray, unchanged.

    Raises
    ------
    GridMismatchError
        When the shapes differ (or, for two CTVolume-like objects, the
        spacing), or the mask is not 3D.
    """
    mask = np.asarray(mask)
    shape = tuple(getattr(volume, "shape", np.shape(volume)))
    if mask.ndim != 3:
        raise GridMismatchError(f"{name}: a lung mask must be 3D (z, y, x), got shape {mask.shape}")
    if tuple(mask.shape) != shape:
        raise GridMismatchError(
            f"{name}: mask shape {tuple(mask.shape)} (z, y, x) does not match the CT grid {shape}; "
            "the mask must be made on the same scan")
    if not (mask.dtype == bool or np.issubdtype(mask.dtype, np.integer)):
        if not np.all(np.isfinite(mask)) or np.any(mask != np.round(mask)):
            raise GridMismatchError(f"{name}: a lung mask must hold integer labels, got {mask.dtype} "
                                    "with fractional or NaN values")
    return mask
