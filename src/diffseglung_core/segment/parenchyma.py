"""Parenchymal density: local means over the parenchyma, and the healthy level of each slice.

The structure evidence (:mod:`.evidence`) compares the density of the
parenchyma around each voxel with the density healthy lung has there: the
peak of the parenchyma's histogram in bands along gravity, which the lighter
bands of the scan bound (healthy lung changes its density slowly, by
gravity; ground glass filling a whole band does not make it healthy).
Arrays in, arrays out.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..parallel import gaussian_filter

__all__ = ["HEALTHY_SLOPE_HU_PER_MM", "gaussian_sigmas", "masked_mean", "histogram_mode",
           "lightest_within_slope", "healthy_levels"]


#: Steepest change (HU per mm) of healthy lung's density across the lung: the gravity
#: gradient of a supine lung, some 100-200 HU between its front and back thirds at
#: neutral breathing and less at full inspiration (Robinson et al. 1979; Millar and
#: Denison 1989), about 1 HU per mm at most.
HEALTHY_SLOPE_HU_PER_MM = 1.0


def gaussian_sigmas(spacing: Sequence[float], sigma_mm: float, shape: Sequence[int]) -> list[float]:
    """Per-axis standard deviations (voxels) of a Gaussian of ``sigma_mm`` (0 along an axis of
    one voxel)."""
    return [0.0 if n == 1 else sigma_mm / float(s) for s, n in zip(spacing, shape)]


def masked_mean(values: np.ndarray, weight: np.ndarray, spacing: Sequence[float], sigma_mm: float,
                den: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian mean of ``values`` over the ``weight`` voxels (a normalised convolution).

    Parameters
    ----------
    values : (Z, Y, X) float or bool
    weight : (Z, Y, X) bool or float
        Where (how much) each voxel counts.
    spacing : (3,) float, mm
    sigma_mm : float
        The Gaussian's standard deviation (mm; none along an axis of one voxel).
    den : (Z, Y, X) float32, optional
        The local weight of an earlier call with the same ``weight`` and
        ``sigma_mm`` (not computed again).

    Returns
    -------
    mean : (Z, Y, X) float32
    den : (Z, Y, X) float32
        The local weight (the Gaussian of ``weight``).
    """
    sig = gaussian_sigmas(spacing, sigma_mm, values.shape)
    num = gaussian_filter(values, sig, weight=weight, truncate=2.5)
    if den is None:
        den = gaussian_filter(weight, sig, truncate=2.5)
    num /= np.maximum(den, np.float32(1e-3))
    return num, den


def histogram_mode(v: np.ndarray, bin_hu: float = 10.0) -> float:
    """Peak of the histogram of ``v`` (HU), smoothed over 5 bins: the commonest tissue."""
    edges = np.arange(-1000.0, -600.0 + bin_hu, bin_hu)
    hist, _ = np.histogram(v, bins=edges)
    hist = np.convolve(hist, np.ones(5) / 5.0, mode="same")
    return float(edges[int(np.argmax(hist))] + bin_hu / 2.0)


def lightest_within_slope(level: np.ndarray, steps_mm: Sequence[float], max_slope: float,
                          tolerance: float = 0.0) -> np.ndarray:
    """Each value bounded by every other value plus ``max_slope`` times their distance.

    ``out[p] = min(level[p], min over q of level[q] + tolerance + max_slope * d(p, q))``,
    ``d`` the city-block distance in mm on a grid of ``steps_mm`` (one per axis);
    NaN entries (nothing measured) bound nothing and stay NaN (distances count
    across them). Two passes (forwards, backwards) along each axis.

    Parameters
    ----------
    level : (Z, B) float
        Levels (HU) on a grid of slices and bands.
    steps_mm : (2,) float
        Grid step (mm) along each axis.
    max_slope : float
        HU per mm.
    tolerance : float
        HU a value may exceed the bound of the others by (the uncertainty of each).

    Returns
    -------
    (Z, B) float, NaN where ``level`` is NaN.
    """
    out = np.where(np.isfinite(level), level, np.inf)
    for axis, step in enumerate(steps_mm):
        rise = max_slope * float(step)
        moved = np.moveaxis(out, axis, 0)  # a view: the passes write into ``out``
        for i in range(1, moved.shape[0]):
            np.minimum(moved[i], moved[i - 1] + rise, out=moved[i])
        for i in range(moved.shape[0] - 2, -1, -1):
            np.minimum(moved[i], moved[i + 1] + rise, out=moved[i])
    return np.where(np.isfinite(level), np.minimum(level, out + tolerance), np.nan)


def healthy_levels(hu: np.ndarray, parenchyma: np.ndarray, spacing: Sequence[float],
                   band_mm: float = 15.0,
                   max_slope: float = HEALTHY_SLOPE_HU_PER_MM,
                   tolerance: float = 60.0, axis: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Healthy level of the parenchyma per slice and depth, and its spread per slice.

    Lung is denser where it is dependent (towards the back of a supine patient,
    ``y`` increasing; ``axis`` is the one gravity runs along, 2 for a patient
    lying on one side): the level (the histogram's peak, which lesions covering
    less of a band than healthy lung do not move) is read in bands of ``band_mm``
    along ``axis`` in each slice, interpolated between bands and slices. Where
    disease covers most of a band (diffuse ground glass, "white lung") its peak
    is the disease's: healthy lung changes its density slowly, by gravity, so no
    band's level may exceed another's by more than ``tolerance`` (the peak's own
    uncertainty, half the margin that makes ground glass) plus ``max_slope`` HU
    per mm between them (:func:`lightest_within_slope`); the lighter, healthier
    bands of the scan bound the others. The
    spread is 1.4826 times the median absolute deviation of each slice's
    parenchyma around its bands' peaks (noise and fine texture). Only voxels
    between -1000 and -600 HU count (air-filled lung, not dense structures).

    Returns
    -------
    level : (Z, Y, 1) float, HU; (Z, 1, X) along ``axis`` 2.
    spread : (Z,) float, HU.
    lowered : (Z, Y, 1) bool; (Z, 1, X) along ``axis`` 2
        Rows of the bands whose own peak the lighter lung bounded.
    """
    if axis == 2:  # bands of columns: the same reading with the in-plane axes swapped
        level, spread, lowered = healthy_levels(np.swapaxes(hu, 1, 2), np.swapaxes(parenchyma, 1, 2),
                                                (spacing[0], spacing[2], spacing[1]), band_mm,
                                                max_slope, tolerance)
        return np.swapaxes(level, 1, 2), spread, np.swapaxes(lowered, 1, 2)
    nz, ny = hu.shape[:2]
    step = max(1, int(round(band_mm / float(spacing[1]))))
    edges = list(range(0, ny, step))
    level = np.full((nz, len(edges)), np.nan)
    spread = np.full(nz, np.nan)
    for z in range(nz):
        devs = []
        for j, y0 in enumerate(edges):
            v = hu[z, y0:y0 + step][parenchyma[z, y0:y0 + step]]
            v = v[(v > -1000) & (v < -600)]
            if v.size >= 100:
                level[z, j] = histogram_mode(v)
                devs.append(np.abs(v - level[z, j]))
        if devs:
            d = np.concatenate(devs)
            if d.size >= 200:
                spread[z] = 1.4826 * np.median(d)
    ok = np.isfinite(level)
    if not ok.any():
        return np.full((nz, ny, 1), -860.0), np.full(nz, 40.0), np.zeros((nz, ny, 1), bool)
    peaks = level
    level = lightest_within_slope(level, (float(spacing[0]), step * float(spacing[1])), max_slope,
                                  tolerance)
    lowered = np.repeat(np.nan_to_num(peaks - level) > 0.5, step, axis=1)[:, :ny]
    # fill the bands without lung from their slice, then slices from their neighbours
    centres = np.asarray(edges) + step / 2.0
    rows = np.arange(ny)
    out = np.full((nz, ny), np.nan)
    for z in range(nz):
        if ok[z].any():
            out[z] = np.interp(rows, centres[ok[z]], level[z, ok[z]])
    have = np.isfinite(out[:, 0])
    idx = np.arange(nz)
    out = np.stack([np.interp(idx, idx[have], out[have, y]) for y in range(ny)], axis=1)
    good = np.isfinite(spread)
    spread = np.interp(idx, idx[good], spread[good]) if good.any() else np.full(nz, 40.0)
    return out[:, :, None], spread, lowered[:, :, None]
