"""Distance maps and connected components of binary masks.

The same results as :func:`scipy.ndimage.distance_transform_edt` and
:func:`scipy.ndimage.label`, computed by ``edt`` and ``cc3d`` (the
connectomics libraries of the same names on PyPI), several times faster on
the large masks of a chest CT: the distance map is exact Euclidean in float32
(scipy's float64 values to within float32 rounding), and the components are
numbered in the same raster order as scipy's.
"""

from __future__ import annotations

from typing import Optional, Sequence

import cc3d
import edt
import numpy as np
from scipy import ndimage as ndi

from .parallel import free_threads

__all__ = ["distance_inside", "label"]


def distance_inside(mask: np.ndarray, spacing: Optional[Sequence[float]] = None) -> np.ndarray:
    """Distance of each voxel of ``mask`` to the nearest voxel outside it.

    As :func:`scipy.ndimage.distance_transform_edt` (``sampling=spacing``):
    the array's edge does not count as outside, and voxels outside ``mask``
    get 0. A mask with no voxel outside it gets scipy's values (which measure
    from a corner beyond the array: pad the mask where the edge should count).

    Parameters
    ----------
    mask : (Z, Y, X), (Y, X) or (N,) bool
    spacing : sequence of float, optional
        Voxel size along each axis (mm); 1 for every axis when omitted.

    Returns
    -------
    ndarray of float32, ``mask``'s shape
        Distances in the units of ``spacing``.
    """
    mask = np.asarray(mask, bool)
    if mask.ndim > 3 or mask.all():
        return ndi.distance_transform_edt(mask, sampling=spacing).astype(np.float32)
    if spacing is None:
        spacing = (1.0,) * mask.ndim
    spacing = tuple(float(s) for s in np.broadcast_to(np.asarray(spacing, float), (mask.ndim,)))
    anisotropy = spacing[0] if mask.ndim == 1 else spacing
    # as bytes: edt's 3D pass on a bool array is many times slower than on the same bytes as
    # uint8 (0.12 s against 3 ms for one 300 x 512 slice as (1, Y, X); the same distances)
    return edt.edt(np.ascontiguousarray(mask).view(np.uint8), anisotropy=anisotropy,
                   black_border=False, parallel=free_threads())


def _faces(ndim: int, structure: Optional[np.ndarray]) -> bool:
    """Whether ``structure`` joins voxels through their faces only (scipy's default)."""
    return ndim in (2, 3) and (structure is None or np.array_equal(
        np.asarray(structure, bool), ndi.generate_binary_structure(ndim, 1)))


def label(mask: np.ndarray, structure: Optional[np.ndarray] = None) -> tuple[np.ndarray, int]:
    """Connected components of ``mask``, as :func:`scipy.ndimage.label`.

    Parameters
    ----------
    mask : (Z, Y, X), (Y, X) or other bool
    structure : ndarray of bool, optional
        scipy's connectivity structure (faces when omitted). Components joined
        through faces in 2D or 3D are found by cc3d; any other structure or
        dimension by scipy (cc3d numbers 2D corner-joined components in
        another order).

    Returns
    -------
    labels : ndarray of int32, ``mask``'s shape
        0 outside ``mask``, components 1..n in raster order.
    n : int
        Number of components.
    """
    mask = np.asarray(mask, bool)
    if not _faces(mask.ndim, structure):
        return ndi.label(mask, structure)
    lab, n = cc3d.connected_components(mask, connectivity=4 if mask.ndim == 2 else 6,
                                       return_N=True, out_dtype=np.uint32)
    return lab.view(np.int32), int(n)
