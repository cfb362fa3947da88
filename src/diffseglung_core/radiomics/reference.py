"""The 34 features of one patch, written plainly in numpy.

This is the definition the batched torch code (:mod:`.batched`) is tested
against; it favours clarity over speed. docs/radiomics.md states every formula.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from . import names as N

_EPS = np.spacing(1)  # pyradiomics adds this inside log2 and to denominators


def _as_patch_and_mask(patch: np.ndarray, mask: Optional[np.ndarray]):
    patch = np.asarray(patch, dtype=np.float64)
    if patch.ndim == 2:
        patch = patch[None]
    if patch.ndim != 3:
        raise ValueError(f"patch must be 2D (y, x) or 3D (z, y, x), got shape {patch.shape}")
    if mask is None:
        mask = np.ones(patch.shape, bool)
    else:
        mask = np.asarray(mask).reshape(patch.shape) > 0
    if not mask.any():
        mask = np.ones(patch.shape, bool)
    return patch, mask


def gray_levels(patch: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Bin HU into gray levels 1, 2, ... with :data:`~.names.BIN_WIDTH` from the masked minimum.

    ``level = floor((x - low) / 25) + 1`` with ``low = 25 * floor(min / 25)``,
    pyradiomics' fixed-bin-width rule, clipped to ``[1, MAX_LEVELS]``.
    Returns an int64 array of the patch's shape (values outside the mask are
    binned too but never used).
    """
    low = N.BIN_WIDTH * np.floor(patch[mask].min() / N.BIN_WIDTH)
    levels = np.floor((patch - low) / N.BIN_WIDTH).astype(np.int64) + 1
    return np.clip(levels, 1, N.MAX_LEVELS)


def firstorder_features(patch: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The 12 HU statistics of the masked voxels (order of :data:`~.names.FIRSTORDER_NAMES`)."""
    x = patch[mask]
    mean = x.mean()
    d = x - mean
    m2, m3, m4 = (d ** 2).mean(), (d ** 3).mean(), (d ** 4).mean()
    skewness = m3 / m2 ** 1.5 if m2 > 0 else 0.0
    kurtosis = m4 / m2 ** 2 if m2 > 0 else 0.0  # not excess kurtosis (pyradiomics)
    p10, p25, p50, p75, p90 = np.percentile(x, N.PERCENTILES)
    counts = np.bincount(gray_levels(patch, mask)[mask])
    p = counts[counts > 0] / x.size
    entropy = -np.sum(p * np.log2(p + _EPS))
    below950 = np.mean(x < N.FRACTION_BELOW[0])
    below910 = np.mean(x < N.FRACTION_BELOW[1])
    lo, hi = N.FRACTION_BETWEEN
    between = np.mean((x >= lo) & (x <= hi))
    return np.array([mean, np.sqrt(m2), skewness, kurtosis, p10, p50, p90, p75 - p25,
                     entropy, below950, below910, between])


def glcm_matrices(levels: np.ndarray, mask: np.ndarray, n_levels: int) -> np.ndarray:
    """Symmetric co-occurrence counts, one matrix per direction.

    Returns (13, n_levels, n_levels) float64; entry ``[a, i-1, j-1]`` counts
    pairs of masked voxels at offset ``GLCM_OFFSETS[a]`` with levels i and j,
    plus the transposed pairs.
    """
    shape = levels.shape
    out = np.zeros((len(N.GLCM_OFFSETS), n_levels, n_levels))
    for a, offset in enumerate(N.GLCM_OFFSETS):
        src, dst = [], []
        for d, size in zip(offset, shape):
            src.append(slice(max(0, -d), size - max(0, d)))
            dst.append(slice(max(0, d), size - max(0, -d)))
        src, dst = tuple(src), tuple(dst)
        both = mask[src] & mask[dst]
        i = levels[src][both] - 1
        j = levels[dst][both] - 1
        np.add.at(out[a], (i, j), 1.0)
    return out + out.transpose(0, 2, 1)


def glcm_features_from_matrices(counts: np.ndarray) -> np.ndarray:
    """The 10 GLCM features, each the mean over the non-empty directions.

    ``counts`` is (A, Ng, Ng); gray level values are 1..Ng.
    """
    values = []
    for c in counts:
        total = c.sum()
        if total == 0:  # no pair in this direction: left out of the mean
            continue
        p = c / total
        ng = p.shape[0]
        g = np.arange(1, ng + 1, dtype=np.float64)
        i, j = g[:, None], g[None, :]
        px = p.sum(1)
        py = p.sum(0)
        ux = np.sum(px * g)
        uy = np.sum(py * g)
        sx = np.sqrt(np.sum(px * (g - ux) ** 2))
        sy = np.sqrt(np.sum(py * (g - uy) ** 2))
        cov = np.sum(p * (i - ux) * (j - uy))
        correlation = 1.0 if sx * sy == 0 else cov / (sx * sy + _EPS)
        diff = np.zeros(ng)
        np.add.at(diff, np.abs(i - j).astype(int).ravel(), p.ravel())
        values.append([
            np.sum(p * (i - j) ** 2),                      # Contrast
            -np.sum(p * np.log2(p + _EPS)),                # JointEntropy
            correlation,                                   # Correlation
            np.sum(p / (1.0 + (i - j) ** 2)),              # Idm
            np.sum(p ** 2),                                # JointEnergy
            ux,                                            # JointAverage
            np.sum(p * i * j),                             # Autocorrelation
            np.sum(p * (i + j - ux - uy) ** 3),            # ClusterShade
            np.sum(p * (i + j - ux - uy) ** 4),            # ClusterProminence
            -np.sum(diff * np.log2(diff + _EPS)),          # DifferenceEntropy
        ])
    if not values:
        return np.zeros(len(N.GLCM_NAMES))
    return np.mean(values, axis=0)


def glcm_features(patch: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The 10 GLCM features of the masked region (order of :data:`~.names.GLCM_NAMES`)."""
    levels = gray_levels(patch, mask)
    n_levels = int(levels[mask].max())
    return glcm_features_from_matrices(glcm_matrices(levels, mask, n_levels))


def lbp_codes(patch: np.ndarray, axes: tuple[int, int]) -> np.ndarray:
    """Rotation-invariant uniform LBP code (0..8, 9 = non-uniform) in the plane of ``axes``.

    Neighbours are the 8 voxels of the 3x3 ring around each voxel in that plane;
    a bit is 1 where the neighbour >= the centre; the patch is extended by
    repeating its edge voxels.
    """
    padded = np.pad(patch, 1, mode="edge")
    bits = []
    for da, db in N.LBP_RING:
        index = [slice(1, 1 + s) for s in patch.shape]
        index[axes[0]] = slice(1 + da, 1 + da + patch.shape[axes[0]])
        index[axes[1]] = slice(1 + db, 1 + db + patch.shape[axes[1]])
        bits.append(padded[tuple(index)] >= patch)
    bits = np.stack(bits).astype(np.int64)
    ones = bits.sum(0)
    transitions = np.sum(bits != np.roll(bits, -1, axis=0), axis=0)
    return np.where(transitions <= 2, ones, 9)


def lbp_features(patch: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The 6-bin uniform LBP histogram over masked voxels and the usable orthogonal planes.

    A plane is used when both its axes are longer than 1 voxel (a one-slice
    patch uses the axial plane only).
    """
    hist = np.zeros(len(N.LBP_NAMES))
    for axes in N.LBP_PLANES:
        if patch.shape[axes[0]] < 2 or patch.shape[axes[1]] < 2:
            continue
        codes = lbp_codes(patch, axes)[mask]
        for code in codes:
            hist[N.LBP_BIN_OF_CODE[code]] += 1
    total = hist.sum()
    return hist / total if total else hist


def gabor_kernels(wavelength: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Real (zero-mean) and imaginary Gabor kernels for each of :data:`~.names.GABOR_ANGLES`.

    Gaussian envelope with sigma = wavelength / 2 cut at 2 sigma, normalised to
    sum 1, so responses are in HU. Index ``[u, v]`` is the (y, x) offset
    ``(u - r, v - r)``.
    """
    sigma = wavelength / 2.0
    r = int(np.ceil(2 * sigma))
    v, u = np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1))  # u: y offset, v: x offset
    envelope = np.exp(-(u ** 2 + v ** 2) / (2 * sigma ** 2))
    envelope /= envelope.sum()
    kernels = []
    for angle in N.GABOR_ANGLES:
        t = np.deg2rad(angle)
        along = v * np.cos(t) + u * np.sin(t)
        real = envelope * np.cos(2 * np.pi * along / wavelength)
        real -= envelope * (real.sum() / envelope.sum())  # no response to a constant
        imag = envelope * np.sin(2 * np.pi * along / wavelength)
        kernels.append((real, imag))
    return kernels


def _correlate2d(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Same-size cross-correlation with zero padding."""
    r = kernel.shape[0] // 2
    padded = np.pad(image, r)
    out = np.zeros_like(image)
    h, w = image.shape
    for u in range(kernel.shape[0]):
        for v in range(kernel.shape[1]):
            out += kernel[u, v] * padded[u:u + h, v:v + w]
    return out


def gabor_features(patch: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean Gabor magnitude (HU) over the masked voxels, per wavelength and angle.

    Each axial slice, minus the masked mean HU and zero-padded, is filtered by
    the complex kernel; the magnitude ``sqrt(re^2 + im^2)`` is averaged.
    """
    centred = patch - patch[mask].mean()
    out = []
    for wavelength in N.GABOR_WAVELENGTHS:
        for real, imag in gabor_kernels(wavelength):
            mag = np.zeros_like(patch)
            for z in range(patch.shape[0]):
                re = _correlate2d(centred[z], real)
                im = _correlate2d(centred[z], imag)
                mag[z] = np.sqrt(re ** 2 + im ** 2)
            out.append(mag[mask].mean())
    return np.array(out)


def patch_features(patch: np.ndarray, mask: Optional[np.ndarray] = None) -> np.ndarray:
    """The 34 features of one patch.

    Parameters
    ----------
    patch : (D, H, W) or (H, W) array
        HU.
    mask : same shape, optional
        Voxels to describe (nonzero). None or an empty mask: the whole patch.

    Returns
    -------
    (34,) float64, in the order of :data:`~.names.FEATURE_NAMES`.
    """
    patch, mask = _as_patch_and_mask(patch, mask)
    return np.concatenate([
        firstorder_features(patch, mask),
        glcm_features(patch, mask),
        lbp_features(patch, mask),
        gabor_features(patch, mask),
    ])
