"""A coarse grid for the heavy morphology, and the way back to full resolution."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage as ndi


def bbox(mask: np.ndarray, margin: Sequence[int]) -> tuple[slice, slice, slice]:
    """Bounding box of a mask, grown by ``margin`` voxels per axis and clipped."""
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        box.append(slice(max(idx[0] - margin[axis], 0), min(idx[-1] + 1 + margin[axis], mask.shape[axis])))
    return tuple(box)


def coarse_factors(spacing, shape, target_mm: float) -> tuple[int, int, int]:
    """Integer block sizes that bring each axis near ``target_mm`` (never coarser than the axis)."""
    return tuple(int(max(1, min(n, round(target_mm / s)))) for s, n in zip(spacing, shape))


def downsample_mask(mask: np.ndarray, factors) -> np.ndarray:
    """Block majority of a bool mask (edges padded by replication)."""
    if all(f == 1 for f in factors):
        return mask.copy()
    pad = [(0, (-n) % f) for n, f in zip(mask.shape, factors)]
    m = np.pad(mask, pad, mode="edge")
    cz, cy, cx = (n // f for n, f in zip(m.shape, factors))
    fz, fy, fx = factors
    counts = m.reshape(cz, fz, cy, fy, cx, fx).sum(axis=(1, 3, 5), dtype=np.int32)
    return counts * 2 >= fz * fy * fx


def block_mean(values: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """float32 means of ``factors`` blocks of a 3D array (a partial block at the end: the
    mean of what it holds); bool arrays give the share of True per block."""
    factors = tuple(int(f) for f in factors)
    padded = np.pad(values, [(0, -n % f) for n, f in zip(values.shape, factors)])
    out = np.zeros([n // f for n, f in zip(padded.shape, factors)], np.float32)
    for offset in np.ndindex(*factors):  # strided sums: one pass over the data
        out += padded[tuple(slice(o, None, f) for o, f in zip(offset, factors))]
    count = np.ones((), np.float32)
    for axis, (n, f) in enumerate(zip(values.shape, factors)):
        per = np.minimum(f, n - f * np.arange(out.shape[axis])).astype(np.float32)
        count = count[..., None] * per if axis else per
    return out / count


def upsample(coarse: np.ndarray, factors, shape) -> np.ndarray:
    """Nearest-neighbour upsampling of a coarse array back to ``shape``."""
    out = coarse
    for axis, f in enumerate(factors):
        if f > 1:
            out = np.repeat(out, f, axis=axis)
    return out[: shape[0], : shape[1], : shape[2]]


def nearest_label(labels: np.ndarray) -> np.ndarray:
    """Every voxel gets the value of the nearest nonzero voxel of ``labels``."""
    if not labels.any():
        return labels.copy()
    idx = ndi.distance_transform_edt(labels == 0, return_distances=False, return_indices=True)
    return labels[tuple(idx)]
