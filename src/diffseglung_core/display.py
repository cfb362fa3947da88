"""Where a canonical volume sits in a viewer's world, and back.

A viewer such as napari shows a ``(z, y, x)`` array in a world whose axes are
the array axes scaled by ``scale`` and shifted by ``translate``. For a
:class:`~diffseglung_core.volume.CTVolume` in the canonical layout those
world axes are (S, P, L) in mm: superior, posterior and patient left, so
``scale`` is the spacing and ``translate`` the (S, P, L) position of voxel
``(0, 0, 0)`` read off the affine.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .volume import CTVolume, ScanSource, canonical_affine

__all__ = ["display_geometry", "volume_from_geometry", "contrast_range"]

#: RAS world -> (S, P, L) world: the viewer axes of a canonical (z, y, x) array.
_RAS_TO_SPL = np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [-1.0, 0.0, 0.0]])


def display_geometry(volume: CTVolume) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``scale`` and ``translate`` (mm) of a viewer layer showing ``volume.hu``.

    Parameters
    ----------
    volume : CTVolume

    Returns
    -------
    scale : (3,) tuple of float
        The spacing in mm along ``(z, y, x)``.
    translate : (3,) tuple of float
        World position (S, P, L, mm) of voxel ``(0, 0, 0)``. For an oblique
        scan the rotation is dropped: the grid is shown axis-aligned.
    """
    origin = _RAS_TO_SPL @ np.asarray(volume.affine, dtype=float)[:3, 3]
    return tuple(float(s) for s in volume.spacing), tuple(float(t) + 0.0 for t in origin)


def volume_from_geometry(shape: Sequence[int], scale: Optional[Sequence[float]] = None,
                         translate: Optional[Sequence[float]] = None) -> CTVolume:
    """An axis-aligned canonical volume on the grid of a viewer layer.

    Parameters
    ----------
    shape : (3,) sequence of int
        ``(Z, Y, X)`` of the layer's data.
    scale : (3,) sequence of float, optional
        Spacing in mm (default 1 mm).
    translate : (3,) sequence of float, optional
        (S, P, L) position (mm) of voxel ``(0, 0, 0)`` (default the origin).

    Returns
    -------
    CTVolume
        Its ``hu`` is a zero-cost broadcast view, not real HU: use it for its
        geometry, or give it HU with :meth:`~diffseglung_core.volume.CTVolume.with_hu`.
    """
    shape = tuple(int(s) for s in shape)
    spacing = tuple(scale) if scale is not None else (1.0, 1.0, 1.0)
    spl = np.asarray(translate if translate is not None else (0.0, 0.0, 0.0), dtype=float)
    origin = _RAS_TO_SPL.T @ spl  # the matrix is orthogonal: its transpose inverts it
    return CTVolume(hu=np.broadcast_to(np.float32(0), shape), spacing=spacing,
                    affine=canonical_affine(spacing, origin), source=ScanSource(format="memory"))


def contrast_range(hu: np.ndarray, window: tuple[float, float]) -> tuple[float, float]:
    """The range a contrast slider should span: the scan's whole HU range and the window.

    Parameters
    ----------
    hu : ndarray
        The scan (HU).
    window : (float, float)
        The window shown (low, high).

    Returns
    -------
    (float, float)
    """
    hu = np.asarray(hu)
    if hu.size == 0:
        return float(window[0]), float(window[1])
    return min(float(hu.min()), float(window[0])), max(float(hu.max()), float(window[1]))
