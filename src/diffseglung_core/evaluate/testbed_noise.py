"""The noise of a real scan, measured and imitated, for lesions inserted into it.

CT noise depends on the scanner, the dose, the patient and above all the
reconstruction kernel: a sharp lung kernel gives strong, nearly white noise, a
soft kernel weaker noise with a coarse grain. A lesion that replaces part of
the native signal (a solid consolidation, an air cyst) also removes that part
of the native noise, so the test bed adds synthetic noise with the scan's own
level and in-plane texture.

:func:`estimate_noise` measures both in homogeneous soft tissue (muscle, liver,
heart, large vessels): square tiles of axial slices whose values all lie in the
soft-tissue range are detrended (a fitted plane is subtracted), the smoother
half of them is kept (tiles that cross an organ boundary are rougher), and
their mean noise power spectrum (NPS) gives an in-plane filter. White Gaussian
noise convolved with that filter (:func:`synthesize_noise`) has the measured
standard deviation and spectrum. Slices are treated as independent (no
correlation along ``z``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

__all__ = ["NoiseModel", "estimate_noise", "residual_std", "synthesize_noise"]


@dataclass(frozen=True)
class NoiseModel:
    """Measured noise of a scan.

    Attributes
    ----------
    sigma : float
        Typical standard deviation of the noise (HU): the median of ``sigma_z``.
    sigma_z : (Z,) float64 ndarray
        Standard deviation per slice (HU). Noise changes along the body (the
        shoulders and the abdomen attenuate more than the mid chest); slices
        without enough homogeneous tissue take the value of their neighbours.
    kernel : (k, k) float64 ndarray
        In-plane filter with unit L2 norm: white noise convolved with it has
        the measured noise power spectrum (shape only, unit variance).
    n_tiles : int
        Number of tiles the estimate rests on (0 for the fallback).
    method : str
        ``"soft-tissue NPS"`` or ``"high-pass MAD (white)"`` (fallback when too
        few homogeneous tiles exist).
    """

    sigma: float
    sigma_z: np.ndarray
    kernel: np.ndarray
    n_tiles: int
    method: str


def _tile_size(spacing_yx: Sequence[float], tile_mm: float) -> int:
    px = tile_mm / float(min(spacing_yx))
    return int(np.clip(2 ** round(np.log2(max(px, 1.0))), 8, 64))


def _detrend(tiles: np.ndarray) -> np.ndarray:
    """Subtract the least-squares plane of each (n, P, P) tile.

    On a square grid the centred row and column ramps are orthogonal to each
    other and to the constant, so the fit is three projections.
    """
    p = tiles.shape[1]
    r = np.arange(p, dtype=np.float64) - (p - 1) / 2.0
    ry, rx = r[:, None], r[None, :]
    norm = p * float((r ** 2).sum())
    out = tiles - tiles.mean(axis=(1, 2), keepdims=True)
    by = (out * ry).sum(axis=(1, 2)) / norm
    bx = (out * rx).sum(axis=(1, 2)) / norm
    return out - by[:, None, None] * ry - bx[:, None, None] * rx


def _homogeneous_tiles(ok: np.ndarray, p: int) -> list[tuple[int, int]]:
    """Top-left corners (stride p/2) of the p x p windows of a 2D mask that are all True."""
    c = np.pad(np.cumsum(np.cumsum(ok.astype(np.int32), 0), 1), ((1, 0), (1, 0)))
    ys = np.arange(0, ok.shape[0] - p + 1, max(1, p // 2))
    xs = np.arange(0, ok.shape[1] - p + 1, max(1, p // 2))
    if not len(ys) or not len(xs):
        return []
    y0, x0 = np.meshgrid(ys, xs, indexing="ij")
    s = c[y0 + p, x0 + p] - c[y0, x0 + p] - c[y0 + p, x0] + c[y0, x0]
    sel = s == p * p
    return list(zip(y0[sel].tolist(), x0[sel].tolist()))


def estimate_noise(hu: np.ndarray, spacing: Sequence[float], *, tile_mm: float = 24.0,
                   tissue_hu: tuple[float, float] = (-150.0, 200.0), kernel_size: int = 9,
                   min_tiles_per_slice: int = 3) -> NoiseModel:
    """Noise level (per slice) and in-plane texture of a CT, from homogeneous soft tissue.

    Parameters
    ----------
    hu : (Z, Y, X) float ndarray
        The scan in HU.
    spacing : (3,) float
        Voxel size in mm along ``(z, y, x)``.
    tile_mm : float
        Side of the square tiles (mm); rounded to a power of two of voxels in 8..64.
    tissue_hu : (low, high) HU
        A tile is a candidate when its 3x3-smoothed values all lie in this range.
    kernel_size : int
        Side (voxels, odd) of the synthesis filter (clipped to the tile size).
    min_tiles_per_slice : int
        Slices with fewer candidate tiles take the level of their neighbours.

    Returns
    -------
    NoiseModel
        Falls back to white noise with the MAD of a high-pass residual of the
        body when fewer than 4 homogeneous tiles exist in the whole scan.
    """
    hu = np.asarray(hu, np.float32)
    p = _tile_size(spacing[1:], tile_mm)
    nz = hu.shape[0]
    sigma_z = np.full(nz, np.nan)
    spectra, n_used = [], 0
    if min(hu.shape[1:]) >= p:
        smooth = ndi.uniform_filter(hu, size=(1, 3, 3))
        ok = (smooth >= tissue_hu[0]) & (smooth <= tissue_hu[1])
        for z in range(nz):
            corners = _homogeneous_tiles(ok[z], p)
            if len(corners) < min_tiles_per_slice:
                continue
            t = _detrend(np.stack([hu[z, y:y + p, x:x + p] for y, x in corners]).astype(np.float64))
            var = t.reshape(len(t), -1).var(1)
            keep = var <= np.median(var)        # tiles crossing organ borders are rougher
            sigma_z[z] = np.sqrt(var[keep].mean())
            tk = t[keep] / np.sqrt(var[keep])[:, None, None]
            spectra.append((np.abs(np.fft.fft2(tk)) ** 2).sum(0))
            n_used += int(keep.sum())
    if n_used >= 4:
        good = np.flatnonzero(np.isfinite(sigma_z))
        sigma_z = np.interp(np.arange(nz), good, sigma_z[good])
        if nz >= 3:
            sigma_z = ndi.median_filter(sigma_z, size=3, mode="nearest")
        nps = np.sum(spectra, 0) / n_used
        k = np.fft.fftshift(np.real(np.fft.ifft2(np.sqrt(nps))))
        ks = min(kernel_size | 1, p - 1)
        c = p // 2
        k = k[c - ks // 2:c + ks // 2 + 1, c - ks // 2:c + ks // 2 + 1]
        k = k / np.sqrt((k ** 2).sum())
        return NoiseModel(sigma=float(np.median(sigma_z)), sigma_z=sigma_z, kernel=k,
                          n_tiles=n_used, method="soft-tissue NPS")
    body = hu > -500
    r = hu - ndi.uniform_filter(hu, size=(1, 3, 3))
    vals = r[body] if body.sum() > 100 else r.ravel()
    sigma = float(1.4826 * np.median(np.abs(vals - np.median(vals))) / np.sqrt(1 - 1 / 9))
    return NoiseModel(sigma=sigma, sigma_z=np.full(nz, sigma), kernel=np.ones((1, 1)), n_tiles=0,
                      method="high-pass MAD (white)")


def synthesize_noise(shape: Sequence[int], model: NoiseModel, rng: np.random.Generator, *,
                     z0: int = 0) -> np.ndarray:
    """Noise with the scan's level and in-plane spectrum.

    Parameters
    ----------
    shape : (Z, Y, X) int
    model : NoiseModel
    rng : numpy Generator
    z0 : int
        Index, in the scan, of the first slice of the block (selects ``sigma_z``).

    Returns
    -------
    (Z, Y, X) float32 ndarray
        Zero-mean noise in HU with the standard deviation of each slice
        (``model.sigma_z[z0:z0 + Z]``), slices independent.
    """
    shape = tuple(int(s) for s in shape)
    k = model.kernel
    pad = (k.shape[0] // 2, k.shape[1] // 2)
    white = rng.standard_normal((shape[0], shape[1] + 2 * pad[0], shape[2] + 2 * pad[1]))
    if k.size > 1:
        out = ndi.convolve(white, k[None], mode="constant")
    else:
        out = white * float(k.ravel()[0])
    out = out[:, pad[0]:pad[0] + shape[1], pad[1]:pad[1] + shape[2]]
    sz = np.asarray(model.sigma_z, np.float64)
    idx = np.clip(np.arange(z0, z0 + shape[0]), 0, len(sz) - 1) if len(sz) else None
    level = sz[idx] if idx is not None else np.full(shape[0], model.sigma)
    return (out * level[:, None, None]).astype(np.float32)


def residual_std(hu: np.ndarray, region: np.ndarray) -> float:
    """Standard deviation (HU) of ``hu`` about a fitted plane per slice, inside ``region``.

    A simple check of the noise in an inserted homogeneous lesion: for each
    slice, a plane is fitted to the region's values and the residuals of all
    slices are pooled.

    Parameters
    ----------
    hu : (Z, Y, X) float ndarray
    region : (Z, Y, X) bool ndarray

    Returns
    -------
    float
        NaN when the region has fewer than 10 voxels.
    """
    res = []
    for z in np.flatnonzero(region.any((1, 2))):
        yy, xx = np.nonzero(region[z])
        if len(yy) < 10:
            continue
        v = hu[z][yy, xx].astype(np.float64)
        a = np.stack([np.ones(len(yy)), yy, xx], 1)
        coef, *_ = np.linalg.lstsq(a, v, rcond=None)
        res.append(v - a @ coef)
    if not res:
        return float("nan")
    r = np.concatenate(res)
    return float(r.std()) if len(r) >= 10 else float("nan")
