"""Per-voxel features of the lung for clustering.

Three feature sets, each returned as an ``(N, F)`` float32 array whose rows
are the lung voxels in ``np.nonzero(lung)`` order:

* :func:`density_features` (weight-free, always computed): the voxel's HU
  lightly smoothed and the mean and standard deviation of the lung HU in two
  neighbourhoods (``scales_mm``). Averages are *masked* (normalised
  convolution over lung voxels only), so the chest wall does not leak into
  the lung border. Units are HU / 100, so absolute density is kept.
* :func:`radiomic_features`: the 34 radiomic maps of
  :mod:`diffseglung_core.radiomics.maps` sampled at every lung voxel and
  robustly standardised.
* :func:`diffusion_features`: the U-Net's bottleneck at several timesteps,
  brought back to voxels from overlapping windows (see
  :mod:`diffseglung_core.segment.diffusion`).

All work is done in z-slabs of the lung's bounding box, so memory grows with
a slab, not with the scan.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy import ndimage as ndi

from ..errors import NoLungFoundError
from ..parallel import thread_map
from ..progress import ProgressCallback, report

__all__ = ["lung_bbox", "density_features", "radiomic_features", "DENSITY_NAMES",
           "HU_CLIP", "robust_standardize"]

#: HU are clipped to this range before features (bone and metal would dominate otherwise).
HU_CLIP = (-1100.0, 300.0)
#: Names of the columns of :func:`density_features` for the default scales.
DENSITY_NAMES = ("hu", "mean_small", "std_small", "mean_large", "std_large")


def lung_bbox(lung: np.ndarray, margin: int = 0) -> tuple[slice, slice, slice]:
    """Bounding box of the nonzero voxels of ``lung`` (grown by ``margin`` voxels)."""
    nz = [np.flatnonzero(np.asarray(lung).any(axis=tuple(a for a in range(3) if a != ax)))
          for ax in range(3)]
    if any(len(v) == 0 for v in nz):
        raise NoLungFoundError("the lung mask is empty")
    return tuple(slice(max(0, v[0] - margin), min(n, v[-1] + 1 + margin))
                 for v, n in zip(nz, lung.shape))  # type: ignore[return-value]


def _sizes(scale_mm: float, spacing: Sequence[float]) -> tuple[int, ...]:
    """Odd box size per axis about ``scale_mm`` wide; at least 3 voxels in-plane."""
    out = []
    for ax, s in enumerate(spacing):
        n = max(1 if ax == 0 else 3, int(round(scale_mm / float(s))))
        out.append(n if n % 2 else n + 1)
    return tuple(out)


def density_features(
    hu: np.ndarray,
    lung: np.ndarray,
    spacing: Sequence[float],
    *,
    scales_mm: Sequence[float] = (3.0, 9.0),
    smooth_mm: float = 1.0,
    slab: int = 32,
    progress: Optional[ProgressCallback] = None,
) -> np.ndarray:
    """Density and local-texture features of every lung voxel.

    Parameters
    ----------
    hu : (Z, Y, X) float ndarray
        HU.
    lung : (Z, Y, X) ndarray
        Nonzero inside the lung.
    spacing : (3,) sequence of float
        Voxel size in mm ``(z, y, x)``.
    scales_mm : sequence of float
        Widths (mm) of the box neighbourhoods (at least one voxel).
    smooth_mm : float
        Gaussian sigma (mm) of the voxel HU feature.
    slab : int
        Slices per chunk (plus a halo of the largest neighbourhood).
    progress : callable, optional
        ``progress(done, total, stage)``.

    Returns
    -------
    (N, 1 + 2 * len(scales_mm)) float32 ndarray
        In HU / 100: smoothed HU, then mean and standard deviation per scale,
        rows in ``np.nonzero(lung)`` order.
    """
    lung = np.asarray(lung) > 0
    box = lung_bbox(lung)
    sizes = [_sizes(s, spacing) for s in scales_mm]
    sigma = [smooth_mm / float(s) for s in spacing]
    halo = max(max(sz[0] for sz in sizes) // 2, int(np.ceil(3 * sigma[0]))) + 1
    z0, z1 = box[0].start, box[0].stop
    n_feat = 1 + 2 * len(scales_mm)
    out = np.empty((int(lung.sum()), n_feat), np.float32)
    starts = list(range(z0, z1, slab))
    # the first row of each slab (rows in np.nonzero order: slice by slice)
    first = np.concatenate([[0], np.cumsum(lung.sum(axis=(1, 2))[z0:z1])])[np.subtract(starts, z0)]
    done = []

    def slab_features(i: int) -> None:  # slabs on threads
        s = starts[i]
        e = min(s + slab, z1)
        a, b = max(0, s - halo), min(lung.shape[0], e + halo)
        h = np.clip(np.asarray(hu[a:b, box[1], box[2]], np.float32), *HU_CLIP)
        m = lung[a:b, box[1], box[2]]
        inner = m[s - a:e - a]
        cols = [ndi.gaussian_filter(h, sigma, mode="nearest")[s - a:e - a][inner]]
        mf = m.astype(np.float32)
        hm = h * mf
        h2m = h * hm
        for sz in sizes:
            w = ndi.uniform_filter(mf, sz, mode="constant")
            w = np.maximum(w, 1e-6)
            mean = ndi.uniform_filter(hm, sz, mode="constant") / w
            sq = ndi.uniform_filter(h2m, sz, mode="constant") / w
            std = np.sqrt(np.maximum(sq - mean * mean, 0.0))
            cols.append(mean[s - a:e - a][inner])
            cols.append(std[s - a:e - a][inner])
        k = int(inner.sum())
        out[first[i]:first[i] + k] = np.stack(cols, axis=1) / 100.0
        done.append(i)
        report(progress, len(done), len(starts), "density features")

    thread_map(slab_features, range(len(starts)))
    return out


def robust_standardize(x: np.ndarray) -> np.ndarray:
    """Columns centred on their median and scaled by their IQR / 1.349 (float32)."""
    # one partition per column for the three quantiles (the nan-aware version is slower),
    # the columns on threads
    quantiles = np.nanpercentile if np.isnan(x).any() else np.percentile
    q25, med, q75 = np.stack(thread_map(lambda j: quantiles(x[:, j], [25, 50, 75]),
                                        range(x.shape[1])), axis=1)
    scale = (q75 - q25) / 1.349
    scale[~np.isfinite(scale) | (scale <= 1e-8)] = 1.0
    return _scaled(x, med, scale)


def _scaled(x: np.ndarray, med: np.ndarray, scale: np.ndarray, rows: int = 262_144,
            dtype=np.float64) -> np.ndarray:
    """``(x - med) / scale`` clipped to +-10, NaN as 0, as float32.

    Computed in ``dtype`` (float64 by default, as the statistics are) on blocks of
    ``rows`` rows, on threads: no full-size temporaries.
    """
    out = np.empty(x.shape, np.float32)
    med, scale = np.asarray(med, dtype), np.asarray(scale, dtype)

    def scale_block(s0: int) -> None:
        block = (x[s0:s0 + rows].astype(dtype, copy=False) - med) / scale
        np.clip(block, -10.0, 10.0, out=block)
        out[s0:s0 + rows] = np.nan_to_num(block, copy=False, nan=0.0)

    thread_map(scale_block, range(0, len(x), rows))
    return out


def radiomic_features(
    hu: np.ndarray,
    lung: np.ndarray,
    spacing: Sequence[float],
    *,
    stride: int = 4,
    max_windows: int = 6000,
    window_mm: float = 7.0,
    device: str = "cpu",
    n_components: Optional[int] = 8,
    progress: Optional[ProgressCallback] = None,
) -> np.ndarray:
    """The 34 radiomic features at every lung voxel, standardised.

    The maps are computed on a grid of ``stride`` voxels (in-plane; along z
    the stride is scaled by the slice spacing) inside the lung and
    interpolated trilinearly to every lung voxel; the stride grows until at
    most ``max_windows`` windows are computed (bounded time). Columns are robustly
    standardised; with ``n_components`` they are reduced by PCA to that many
    whitened components (so 34 correlated columns do not outvote density).

    Returns
    -------
    (N, n_components or 34) float32, rows in ``np.nonzero(lung)`` order.
    """
    from ..radiomics.maps import feature_maps, window_for_spacing

    lung = np.asarray(lung) > 0
    box = lung_bbox(lung, margin=1)
    sub_hu, sub_lung = np.asarray(hu[box], np.float32), lung[box]
    n_lung = int(sub_lung.sum())
    while True:
        sz = max(1, int(round(stride * spacing[1] / spacing[0])))
        if n_lung / (stride * stride * sz) <= max_windows:
            break
        stride += 1
    fmap = feature_maps(sub_hu, sub_lung, window=window_for_spacing(spacing, window_mm),
                        stride=(min(sz, stride), stride, stride), device=device,
                        progress=progress)
    # statistics (robust scale, PCA basis) on a subsample, then the transform in
    # chunks: never a full (N, 34) array (bounded memory on whole scans)
    flat = np.flatnonzero(sub_lung)
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(len(flat), min(len(flat), 200_000), replace=False))
    sample = fmap.at_points(np.column_stack(np.unravel_index(flat[rows], sub_lung.shape)))
    med = np.nanmedian(sample, axis=0)
    q75, q25 = np.nanpercentile(sample, [75, 25], axis=0)
    scale = (q75 - q25) / 1.349
    scale[~np.isfinite(scale) | (scale <= 1e-8)] = 1.0

    projection = None  # (shift, weights) of the whitened PCA, applied in float32 like the features
    k = sample.shape[1]
    if n_components and n_components < k:
        z = _scaled(sample, med, scale).astype(np.float64)
        mu = z.mean(0)
        _, sv, vt = np.linalg.svd(z - mu, full_matrices=False)
        sd = sv[:n_components] / np.sqrt(max(len(z) - 1, 1))
        sd[sd <= 1e-8] = 1.0
        projection = (mu.astype(np.float32), (vt[:n_components].T / sd).astype(np.float32))
        k = n_components
    out = np.empty((len(flat), k), np.float32)
    # slabs of slices of about 500,000 lung voxels each (rows in np.nonzero order)
    ends = np.cumsum(sub_lung.reshape(sub_lung.shape[0], -1).sum(1))
    cuts = np.searchsorted(ends, np.arange(500_000, len(flat), 500_000), side="right")
    edges = np.unique(np.concatenate([[0], cuts, [sub_lung.shape[0]]]))

    def transform(span: tuple[int, int]) -> None:  # slabs on threads
        z0, z1 = span
        a = _scaled(fmap.at(sub_lung[z0:z1], start=z0), med, scale, dtype=np.float32)
        if projection is not None:
            a = (a - projection[0]) @ projection[1]
        first = int(ends[z0 - 1]) if z0 else 0
        out[first:first + len(a)] = a

    thread_map(transform, [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])])
    return out
