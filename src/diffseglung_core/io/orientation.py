"""Reorient stored arrays to the canonical ``(z, y, x)`` = (S, P, L) layout."""

from __future__ import annotations

import numpy as np
from nibabel.orientations import (
    apply_orientation,
    axcodes2ornt,
    inv_ornt_aff,
    io_orientation,
    ornt2axcodes,
    ornt_transform,
)

from ..volume import CANONICAL_AXCODES

_CANONICAL_ORNT = axcodes2ornt(CANONICAL_AXCODES)


def axcodes(affine: np.ndarray) -> str:
    """Axis codes of an array with this voxel-to-RAS affine, e.g. ``"LPS"``.

    Each letter names the direction an array axis points to (nibabel's
    convention: ``"L"`` means the index grows towards the patient's left).
    """
    return "".join(ornt2axcodes(io_orientation(affine)))


def canonical_transform(affine: np.ndarray) -> np.ndarray:
    """The ``(3, 2)`` nibabel orientation transform from the stored array to ``(z, y, x)``."""
    return ornt_transform(io_orientation(affine), _CANONICAL_ORNT)


def to_canonical(data: np.ndarray, affine: np.ndarray):
    """Reorient a stored 3D array to ``(z, y, x)`` = (S, P, L).

    Parameters
    ----------
    data : (I, J, K) ndarray
        Array as stored in the file.
    affine : (4, 4) ndarray
        Its voxel-to-RAS affine (mm).

    Returns
    -------
    canonical : (Z, Y, X) ndarray
        The same voxels, axes permuted and flipped (no resampling).
    canonical_affine : (4, 4) ndarray
        Voxel ``(z, y, x)`` to RAS of ``canonical``.
    transform : (3, 2) ndarray
        The nibabel orientation transform that was applied.
    """
    transform = canonical_transform(affine)
    canonical = np.ascontiguousarray(apply_orientation(data, transform))
    new_affine = np.asarray(affine, dtype=np.float64) @ inv_ornt_aff(transform, data.shape)
    return canonical, new_affine, transform


def affine_spacing(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size in mm along each array axis: the norms of the affine's columns."""
    return tuple(float(v) for v in np.linalg.norm(np.asarray(affine)[:3, :3], axis=0))  # type: ignore[return-value]
