"""First-order and GLCM features of every lung voxel's window, from box sums.

At stride 1 neighbouring windows share all but one plane, and describing each
window on its own (:func:`.batched.batched_features` on gathered windows)
repeats that work ``window`` times over. Every first-order and GLCM feature is
a function of counts over the window:

* of its lung voxels per whole HU value (moments about the window's own mean,
  percentiles, the 25 HU histogram of the entropy, the density fractions);
* of its voxel pairs per direction (13) and per unordered pair of 25 HU gray
  levels (the co-occurrence counts).

A count over every window is a box sum (along z, then y, then x: a product
with a band matrix of ones along each axis).
The window's own gray levels start at its lowest lung voxel's level, a shift
that only the joint average and the autocorrelation see, added back here.
Same definitions as :func:`.batched.batched_features` (tested to agree);
:func:`.maps.feature_maps` uses this at stride 1 when only these two groups
are asked for and the HU are whole numbers (:func:`dense_applies`).
"""

from __future__ import annotations

import itertools
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from ..progress import ProgressCallback, report
from . import names as N
from .batched import _EPS, offset_slices

__all__ = ["DENSE_GROUPS", "dense_applies", "window_counts", "dense_features"]

#: The feature groups computed here.
DENSE_GROUPS = ("firstorder", "glcm")

#: Memory of the box-summed counts of one tile (bytes, float32 counts).
TILE_BUDGET_BYTES = 256 * 2 ** 20


def dense_applies(hu: np.ndarray, lung: np.ndarray, groups: Sequence[str]) -> bool:
    """Whether :func:`dense_features` computes these ``groups`` of ``hu``.

    It does for first-order and GLCM features of whole HU in the lung whose
    gray levels (25 HU) number at most :data:`~.names.MAX_LEVELS`.
    """
    if not set(groups) <= set(DENSE_GROUPS):
        return False
    values = np.asarray(hu)[np.asarray(lung, bool)]
    if values.size == 0 or not np.all(values == np.round(values)):
        return False
    levels = np.floor(values / N.BIN_WIDTH)
    return bool(levels.max() - levels.min() + 1 <= N.MAX_LEVELS)


def window_counts(codes: torch.Tensor, valid: torch.Tensor, lo: Sequence[int], hi: Sequence[int],
                  centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """How often each code occurs among the ``valid`` voxels of the box around each centre.

    Parameters
    ----------
    codes : (Z, Y, X) int64 tensor
    valid : (Z, Y, X) bool tensor
        The voxels that count.
    lo, hi : 3 ints
        The box of voxel ``p`` is ``p + [lo, hi]`` (inclusive, voxels; clipped to the array).
    centres : (3, n) int64 tensor
        The voxels ``p`` whose boxes are counted.

    Returns
    -------
    counts : (n, K) float32 tensor
        Exact (whole numbers below 2^24).
    keys : (K,) int64 tensor
        The distinct codes of the valid voxels, sorted.

    One indicator per code, summed along z, y and x: along each axis a product
    with a band matrix of ones (:func:`_band`), which BLAS runs several times
    faster than a running sum and its differences; the sums are whole numbers,
    exact in float32 (torch's default float32 matmul precision, ``"highest"``).
    """
    keys, inverse = torch.unique(codes[valid], return_inverse=True)
    # one indicator per code, last: each product below is one or a few large ones
    hot = torch.zeros(tuple(codes.shape) + (len(keys),), dtype=torch.float32, device=codes.device)
    hot.view(-1, len(keys))[torch.nonzero(valid.reshape(-1)).squeeze(1), inverse] = 1.0
    first = [int(c.min()) for c in centres]
    for axis in range(3):  # box sums along z, y and x, over the centres' range only
        band = _band(hot.shape[axis], first[axis], int(centres[axis].max()) + 1, lo[axis], hi[axis],
                     hot.device)
        hot = _along(hot, axis, band)
    ny, nx = hot.shape[1:3]
    at = ((centres[0] - first[0]) * ny + centres[1] - first[1]) * nx + centres[2] - first[2]
    return hot.view(-1, len(keys)).index_select(0, at), keys


def _band(n: int, start: int, stop: int, lo: int, hi: int, device) -> torch.Tensor:
    """(stop - start, n) float32 matrix whose row ``t - start`` holds ones at ``t + lo`` to
    ``t + hi`` (clipped to ``0..n - 1``): the box sums of ``t`` in ``start..stop - 1``."""
    t = torch.arange(start, stop, device=device)[:, None]
    j = torch.arange(n, device=device)[None, :]
    return ((j >= t + lo) & (j <= t + hi)).to(torch.float32)


def _along(x: torch.Tensor, axis: int, band: torch.Tensor) -> torch.Tensor:
    """``band`` (m, n) applied along ``axis`` (of length n, not the last) of ``x``."""
    shape = list(x.shape)
    n = shape[axis]
    shape[axis] = band.shape[0]
    lead = int(np.prod(x.shape[:axis]))
    return torch.matmul(band, x.reshape(lead, n, -1)).reshape(shape)


def _central_moments(sums: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Mean and 2nd to 4th central moments from sums (n, 5) of the powers 0..4 of whole numbers.

    The sums are moved, exactly (whole numbers in float64), to the whole number
    nearest each row's mean, about which the central moments lose no digits;
    returns ``(mean, m2, m3, m4)``, the mean about the original origin.
    """
    n = sums[:, 0]
    w = torch.round(sums[:, 1] / n)
    s0, s1, s2, s3, s4 = sums.unbind(1)
    t1 = s1 - w * s0
    t2 = s2 - 2 * w * s1 + w * w * s0
    t3 = s3 - 3 * w * s2 + 3 * w * w * s1 - w ** 3 * s0
    t4 = s4 - 4 * w * s3 + 6 * w * w * s2 - 4 * w ** 3 * s1 + w ** 4 * s0
    r1, r2, r3, r4 = t1 / n, t2 / n, t3 / n, t4 / n
    m2 = (r2 - r1 * r1).clamp(min=0)
    m3 = r3 - 3 * r1 * r2 + 2 * r1 ** 3
    m4 = r4 - 4 * r1 * r3 + 6 * r1 * r1 * r2 - 3 * r1 ** 4
    return w + r1, m2, m3, m4


def _firstorder(counts: torch.Tensor, values: torch.Tensor, dtype) -> torch.Tensor:
    """(n, 12) first-order features from per-window counts (n, R) of the whole HU ``values`` (R,)."""
    c = counts.to(dtype)
    v = values.to(dtype)
    # sums of the powers of the values about a constant near them, of the 25 HU levels and
    # of the fractions' voxels: one product
    v0 = v[len(v) // 2]
    d = v - v0
    level = torch.floor(v / N.BIN_WIDTH).long()
    level -= level.min()
    lo, hi = N.FRACTION_BETWEEN
    columns = torch.cat([torch.stack([torch.ones_like(d), d, d * d, d ** 3, d ** 4,
                                      (v < N.FRACTION_BELOW[0]).to(dtype),
                                      (v < N.FRACTION_BELOW[1]).to(dtype),
                                      ((v >= lo) & (v <= hi)).to(dtype)], 1),
                         F.one_hot(level).to(dtype)], 1)
    sums = c @ columns
    n = sums[:, 0]
    mean, m2, m3, m4 = _central_moments(sums[:, :5])
    mean = mean + v0
    # whole HU: the values differ exactly when n * sum(d^2) > sum(d)^2
    spread = n * sums[:, 2] > sums[:, 1] ** 2
    safe = torch.where(spread, m2, torch.ones_like(m2))
    skew = torch.where(spread, m3 / safe ** 1.5, torch.zeros_like(m2))
    kurt = torch.where(spread, m4 / safe ** 2, torch.zeros_like(m2))
    m2 = torch.where(spread, m2, torch.zeros_like(m2))
    # percentiles with numpy's linear rule: the k-th smallest value is the first whose
    # cumulative count passes k
    cum = torch.cumsum(counts, 1)
    q = torch.tensor(N.PERCENTILES, dtype=dtype, device=c.device) / 100.0
    pos = q[None, :] * (n[:, None] - 1)
    k_lo = pos.floor()
    k_hi = torch.minimum(k_lo + 1, n[:, None] - 1)
    frac = pos - k_lo
    a = v[torch.searchsorted(cum, (k_lo + 1).to(cum.dtype)).clamp(max=len(v) - 1)]
    b = v[torch.searchsorted(cum, (k_hi + 1).to(cum.dtype)).clamp(max=len(v) - 1)]
    p10, p25, p50, p75, p90 = (a + (b - a) * frac).unbind(1)
    # entropy of the 25 HU gray levels (a shift of the levels does not change it)
    p = sums[:, 8:] / n[:, None]
    entropy = -(p * torch.log2(p + _EPS)).sum(1)
    below950, below910, between = (sums[:, k] / n for k in (5, 6, 7))
    return torch.stack([mean, m2.sqrt(), skew, kurt, p10, p50, p90, p75 - p25, entropy,
                        below950, below910, between], 1)


def _glcm_direction(u: torch.Tensor, first: torch.Tensor, second: torch.Tensor,
                    shift: torch.Tensor, most: int, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 10) GLCM features of one direction and (n,) its pair counts.

    ``u`` (n, P): per-window counts of the unordered level pairs ``first <= second`` (P,);
    ``shift`` (n,): what to subtract from those levels to get the window's own (1-based);
    ``most``: a bound on a window's pairs (the voxels of its box).
    The quantities are those of :func:`.batched.glcm_features_from_counts`; the sums
    over the pairs are moments of ``s = i + j`` and ``i^2 + j^2`` and the histogram of
    ``|i - j|``, one product with the counts.
    """
    i, j = first.to(dtype), second.to(dtype)
    centre = float(torch.round(i.mean())) if len(i) else 0.0
    i, j = i - centre, j - centre                         # small whole numbers
    s = i + j
    k = (second - first).long()
    diag = (k == 0).to(dtype)
    # sums over each window's pairs are whole numbers, exact in float32 below 2^24: the
    # counts, s, s^2, i^2 + j^2, the |i - j| histogram, and s^3 and s^4 in two parts
    # (multiples of 4096 and the rest)
    cube, fourth = s ** 3, s ** 4
    high = torch.stack([torch.floor(cube / 4096), torch.floor(fourth / 4096)], 1)
    columns = torch.cat([torch.stack([torch.ones_like(s), diag, s, s * s, i * i + j * j,
                                      cube - 4096 * high[:, 0], fourth - 4096 * high[:, 1]], 1),
                         high, F.one_hot(k).to(dtype)], 1)
    if float(columns.abs().max()) * most < 2 ** 24:
        sums = (u @ columns.float()).to(dtype)             # (n, 9 + K)
    else:
        sums = u.to(dtype) @ columns
    pairs = sums[:, 0]
    used = pairs > 0
    inv = 1.0 / torch.where(used, pairs, torch.ones_like(pairs))
    # u log2 u of the whole counts by table look-up
    table = torch.special.xlogy(*(torch.arange(most + 1, dtype=dtype, device=u.device),) * 2)
    ulogu = table.index_select(0, u.int().view(-1)).view(u.shape).sum(1) / np.log(2.0)
    if most * most * 2 < 2 ** 24:                          # sum of S^2 / 2
        square = ((u * u) @ (diag + 1.0).float()).to(dtype)
    else:
        square = u.to(dtype) ** 2 @ (diag + 1.0)
    slogs = 2 * ulogu + 2 * sums[:, 1]
    joint_entropy = torch.where(used, torch.log2((2 * pairs).clamp(min=1)) - slogs * inv / 2,
                                torch.zeros_like(pairs))
    energy = 2 * square * (inv / 2) ** 2
    pd = sums[:, 9:] * inv[:, None]                        # p_{x-y}
    kk = torch.arange(pd.shape[1], dtype=dtype, device=u.device) ** 2
    contrast = pd @ kk
    idm = pd @ (1.0 / (1.0 + kk))
    diff_entropy = -(pd * torch.log2(pd + _EPS)).sum(1)
    powers = torch.stack([pairs.clamp(min=1), sums[:, 2], sums[:, 3], sums[:, 5] + 4096 * sums[:, 7],
                          sums[:, 6] + 4096 * sums[:, 8]], 1)
    es, var_s, shade, prominence = _central_moments(powers)  # of s: E[s] = 2 ux, sum p_{x+y} ...
    var = (sums[:, 4] * inv / 2 - (es / 2) ** 2).clamp(min=0)  # sx * sy of the marginal
    cov = (var_s - contrast) / 4
    correlation = torch.where(var == 0, torch.ones_like(var), cov / (var + _EPS))
    ux = es / 2 + centre - shift
    # autocorrelation E[i j] in the window's levels: (E[s'^2] - contrast) / 4, s' = s - 2 shift
    autocorr = (var_s + (2 * ux) ** 2 - contrast) / 4
    feats = torch.stack([contrast, joint_entropy, correlation, idm, energy, ux, autocorr,
                         shade, prominence, diff_entropy], 1)
    return feats, pairs


def _window_box(window: Sequence[int]) -> tuple[list[int], list[int]]:
    lo = [-(w // 2) for w in window]
    return lo, [a + w - 1 for a, w in zip(lo, window)]


@torch.no_grad()
def _tile_features(x: np.ndarray, m: np.ndarray, centre: tuple, window: Sequence[int],
                   groups: Sequence[str], dtype, device) -> torch.Tensor:
    """Features (n, F) of the lung voxels of ``centre`` (slices of the tile ``x``, ``m``)."""
    lo, hi = _window_box(window)
    xt = torch.from_numpy(np.ascontiguousarray(x)).to(device)
    mt = torch.from_numpy(np.ascontiguousarray(m)).to(device)
    at = mt[centre]
    centres = torch.stack([c + (s.start or 0) for c, s in zip(torch.nonzero(at, as_tuple=True), centre)])
    out = []
    values = torch.round(xt).long()
    if "firstorder" in groups:
        counts, keys = window_counts(values, mt, lo, hi, centres)
        out.append(_firstorder(counts, keys, dtype))
    if "glcm" in groups:
        level = torch.div(values, int(N.BIN_WIDTH), rounding_mode="floor")
        # the window's lowest level (its levels start at 1 there)
        big = np.iinfo(np.int64).max // 4
        lv = np.where(m, level.cpu().numpy(), big)
        low = ndi.minimum_filter(lv, size=tuple(window), mode="constant", cval=big)
        shift = torch.from_numpy(low[centre][m[centre]] - 1).to(device=device, dtype=dtype)
        feats = torch.zeros(int(at.sum()), len(N.GLCM_NAMES), dtype=dtype, device=device)
        n_used = torch.zeros(int(at.sum()), dtype=dtype, device=device)
        base = int(level[mt].min())
        span = int(level[mt].max()) - base + 1
        shape = tuple(xt.shape)
        for offset in N.GLCM_OFFSETS:
            src, dst = offset_slices(offset, shape)
            valid = torch.zeros(shape, dtype=torch.bool, device=device)
            valid[src] = mt[src] & mt[dst]
            if not bool(valid.any()):
                continue
            a, b = level[src] - base, level[dst] - base
            code = torch.zeros(shape, dtype=torch.long, device=device)
            code[src] = torch.minimum(a, b) * span + torch.maximum(a, b)
            # a pair (v, v + offset) lies in the window of p when v is in p + [lo', hi']
            plo = [a_ + max(0, -o) for a_, o in zip(lo, offset)]
            phi = [b_ - max(0, o) for b_, o in zip(hi, offset)]
            u, keys = window_counts(code, valid, plo, phi, centres)
            most = int(np.prod([max(b_ - a_ + 1, 0) for a_, b_ in zip(plo, phi)]))
            f, pairs = _glcm_direction(u, keys // span + base, keys % span + base, shift, most,
                                       dtype)
            w = (pairs > 0).to(dtype)
            feats += f * w[:, None]
            n_used += w
        out.append(feats / n_used.clamp(min=1)[:, None])
    return torch.cat(out, 1)


def dense_features(hu: np.ndarray, lung: np.ndarray, window: Sequence[int], *,
                   groups: Sequence[str] = DENSE_GROUPS, dtype: torch.dtype = torch.float64,
                   device: str | torch.device = "cpu",
                   progress: Optional[ProgressCallback] = None) -> np.ndarray:
    """First-order and GLCM features of the window around every lung voxel.

    Parameters
    ----------
    hu : (Z, Y, X) array
        HU, whole numbers inside ``lung`` (see :func:`dense_applies`).
    lung : (Z, Y, X) bool array
        The voxels to describe, and the only voxels of each window described.
    window : 3 ints
        Window size (voxels); the window of voxel ``p`` spans ``p - w // 2``
        to ``p - w // 2 + w - 1`` along each axis, clipped to the volume.
    groups : sequence of str
        ``firstorder`` and/or ``glcm``.
    dtype : torch dtype
        Precision of the features (the counts are exact in any case); float64
        keeps the moments, taken from sums of powers, exact to float32 output.
    device : str or torch.device
    progress : callable, optional
        ``progress(done, total, "radiomic maps")`` after each tile of at most
        :data:`TILE_BUDGET_BYTES` of counts; raise
        :class:`~diffseglung_core.errors.Cancelled` from it to stop.

    Returns
    -------
    (n, F) float32 ndarray
        One row per lung voxel in C order (``np.argwhere(lung)``), the columns
        of the asked groups in the order of :data:`~.names.FEATURE_NAMES`.
    """
    hu = np.asarray(hu)
    lung = np.asarray(lung, bool)
    groups = [g for g in DENSE_GROUPS if g in groups]
    if not lung.any():
        return np.zeros((0, sum(len(range(34)[N.GROUPS[g]]) for g in groups)), np.float32)
    window = [int(w) for w in window]
    lo, hi = _window_box(window)
    values = np.round(hu[lung])
    span = int(np.ptp(np.floor(values / N.BIN_WIDTH))) + 1
    if span > N.MAX_LEVELS:
        raise ValueError("the lung's HU span more gray levels than the GLCM keeps: use the "
                         "window-by-window maps")
    # tiles of centres whose counts fit the budget: per voxel of a tile with its margins,
    # one count per HU value (first order) or per level pair (GLCM)
    channels = max(int(np.ptp(values)) + 1, span * span // 2 + 1)
    voxels = max(TILE_BUDGET_BYTES // (4 * 3 * channels), 1)
    margin = [h - a for a, h in zip(lo, hi)]
    side = max(int(round(voxels ** (1 / 3))) - max(margin), 4)
    box = ndi.find_objects(lung.astype(np.uint8))[0]
    tiles = [tuple(slice(s, min(s + side, b.stop)) for s, b in zip(start, box))
             for start in itertools.product(*(range(b.start, b.stop, side) for b in box))]
    tiles = [cz for cz in tiles if lung[cz].any()]
    rows = []
    report(progress, 0, len(tiles), "radiomic maps")
    for done, cz in enumerate(tiles, start=1):
        tile = tuple(slice(max(c.start + a, 0), min(c.stop + h, n))
                     for c, a, h, n in zip(cz, lo, hi, hu.shape))
        centre = tuple(slice(c.start - t.start, c.stop - t.start) for c, t in zip(cz, tile))
        f = _tile_features(hu[tile], lung[tile], centre, window, groups, dtype, device)
        rows.append((cz, f.float().cpu().numpy()))
        report(progress, done, len(tiles), "radiomic maps")
    # back to C order of the whole volume
    index = np.full(lung.shape, -1, np.int64)
    index[lung] = np.arange(int(lung.sum()))
    out = np.empty((int(lung.sum()), rows[0][1].shape[1]), np.float32)
    for cz, f in rows:
        sub = index[cz]
        out[sub[sub >= 0]] = f
    return out
