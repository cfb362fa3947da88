"""The 34 features of a batch of patches in torch, on any device.

Same definitions as :mod:`.reference` (tested to agree to 1e-4 relative),
vectorised over the batch: masked moments and sorted-value percentiles for the
HU statistics, one ``scatter_add`` over a flat ``(batch, direction, level,
level)`` index for all co-occurrence matrices, shifted comparisons for LBP and
``conv2d`` for the Gabor filters.
"""

from __future__ import annotations

from functools import cache
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import names as N
from .reference import gabor_kernels

_EPS = float(np.spacing(1))


def _default_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def _prepare(patches: torch.Tensor, masks: Optional[torch.Tensor], dtype):
    x = torch.as_tensor(patches)
    if x.ndim == 3:  # (B, H, W): one-slice patches
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"patches must be (B, D, H, W) or (B, H, W), got {tuple(x.shape)}")
    dtype = dtype or _default_dtype(x.device)
    exact32 = x.dtype in _FLOAT32_EXACT
    x = x.to(dtype)
    if masks is None:
        m = torch.ones(x.shape, dtype=torch.bool, device=x.device)
    else:
        m = torch.as_tensor(masks, device=x.device).reshape(x.shape)
        m = m > 0.5 if m.is_floating_point() else m.bool()
    empty = ~m.flatten(1).any(1)
    if bool(empty.any()):
        m = m | empty.view(-1, 1, 1, 1)
    return x, m, exact32


#: Input dtypes whose values float32 holds exactly (percentiles then sort in float32, faster).
_FLOAT32_EXACT = (torch.float32, torch.float16, torch.bfloat16, torch.int16, torch.int8,
                  torch.uint8, torch.bool)


def _masked_percentiles(x: torch.Tensor, m: torch.Tensor, n: torch.Tensor, qs,
                        sort_float32: bool = False) -> torch.Tensor:
    """(B, len(qs)) percentiles with numpy's linear rule over the masked values of each row."""
    xk = x.float() if sort_float32 else x
    xs = torch.where(m, xk, torch.full_like(xk, float("inf"))).sort(dim=1).values.to(x.dtype)
    q = torch.tensor(qs, dtype=x.dtype, device=x.device) / 100.0
    pos = q[None, :] * (n[:, None].to(x.dtype) - 1)
    lo = pos.floor().long()
    hi = torch.minimum(lo + 1, (n[:, None] - 1).long())
    frac = pos - lo.to(x.dtype)
    a = xs.gather(1, lo)
    b = xs.gather(1, hi)
    return a + (b - a) * frac


def gray_levels(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """(B, D, H, W) int64 gray levels 1..MAX_LEVELS (see :func:`.reference.gray_levels`)."""
    big = torch.finfo(x.dtype).max
    mn = torch.where(m, x, torch.full_like(x, big)).flatten(1).min(1).values
    low = N.BIN_WIDTH * torch.floor(mn / N.BIN_WIDTH)
    levels = torch.floor((x - low.view(-1, 1, 1, 1)) / N.BIN_WIDTH).long() + 1
    return levels.clamp(1, N.MAX_LEVELS)


def firstorder_features(x: torch.Tensor, m: torch.Tensor, levels: torch.Tensor,
                        sort_float32: bool = False) -> torch.Tensor:
    """(B, 12) HU statistics; ``x`` (B, D, H, W), ``m`` bool, ``levels`` from :func:`gray_levels`.

    ``sort_float32``: the values are exact in float32 (percentiles sort a float32 copy).
    """
    b = x.shape[0]
    xf, mf = x.flatten(1), m.flatten(1)
    w = mf.to(x.dtype)
    n = mf.sum(1)
    nf = n.to(x.dtype)
    mean = (xf * w).sum(1) / nf
    d = (xf - mean[:, None]) * w
    d2 = d * d
    m2 = d2.sum(1) / nf
    m3 = (d2 * d).sum(1) / nf
    m4 = (d2 * d2).sum(1) / nf
    safe = torch.where(m2 > 0, m2, torch.ones_like(m2))
    skew = torch.where(m2 > 0, m3 / safe ** 1.5, torch.zeros_like(m2))
    kurt = torch.where(m2 > 0, m4 / safe ** 2, torch.zeros_like(m2))
    p10, p25, p50, p75, p90 = _masked_percentiles(xf, mf, n, N.PERCENTILES, sort_float32).unbind(1)
    lv = levels.flatten(1)
    hist = torch.zeros(b, N.MAX_LEVELS + 1, dtype=x.dtype, device=x.device)
    hist.scatter_add_(1, lv, w)
    p = hist / nf[:, None]
    entropy = -(p * torch.log2(p + _EPS)).sum(1)
    below950 = ((xf < N.FRACTION_BELOW[0]) & mf).sum(1) / nf
    below910 = ((xf < N.FRACTION_BELOW[1]) & mf).sum(1) / nf
    lo, hi = N.FRACTION_BETWEEN
    between = ((xf >= lo) & (xf <= hi) & mf).sum(1) / nf
    return torch.stack([mean, m2.sqrt(), skew, kurt, p10, p50, p90, p75 - p25, entropy,
                        below950.to(x.dtype), below910.to(x.dtype), between.to(x.dtype)], 1)


def usable_offsets(shape) -> list[tuple[int, int, int]]:
    """The GLCM offsets that can pair two voxels of a (D, H, W) patch (4 for one slice)."""
    return [o for o in N.GLCM_OFFSETS if all(abs(d) < size for d, size in zip(o, shape))]


def offset_slices(offset: Sequence[int], shape: Sequence[int]) -> tuple[tuple, tuple]:
    """``(first, second)`` slices of an array of ``shape``: ``x[second]`` is ``x[first]``
    moved by ``offset`` (voxels), over the voxels both cover."""
    first = tuple(slice(max(0, -o), n - max(0, o)) for o, n in zip(offset, shape))
    second = tuple(slice(max(0, o), n - max(0, -o)) for o, n in zip(offset, shape))
    return first, second


def _pairs(levels: torch.Tensor, m: torch.Tensor, n_levels: int, dtype):
    """Yield ``(a, first, second, weight)`` for each usable offset: the levels (0-based,
    clipped below ``n_levels``) of the two voxels of every pair and 1.0 where both are masked."""
    b, d, h, w = levels.shape
    lv = (levels - 1).clamp(max=n_levels - 1)
    mf = m.to(dtype)
    for a, offset in enumerate(usable_offsets((d, h, w))):
        src, dst = offset_slices((0,) + offset, (b, d, h, w))
        yield a, lv[src].reshape(b, -1), lv[dst].reshape(b, -1), (mf[src] * mf[dst]).reshape(b, -1)


def glcm_matrices(levels: torch.Tensor, m: torch.Tensor, n_levels: int, dtype):
    """Unordered co-occurrence counts and the sum / difference histograms, by ``scatter_add``.

    One matrix per offset of :func:`usable_offsets` (the other directions of
    the 13 have no pair and are left out of the mean anyway). Each voxel pair
    with levels i, j adds its weight (1 if both voxels are in the mask, else 0)
    at ``[min(i, j), max(i, j)]`` of the counts and at ``i + j`` and ``|i - j|``
    of the two histograms. The symmetric GLCM of pyradiomics is ``U + U^T``.

    Returns
    -------
    unordered : (B, A, L, L) int64 upper-triangular counts.
    sums : (B, A, 2L - 1) pairs per ``i + j - 2``, ``dtype``.
    diffs : (B, A, L) pairs per ``|i - j|``, ``dtype``.
    """
    b = levels.shape[0]
    a_n = len(usable_offsets(levels.shape[1:]))
    ll = n_levels * n_levels
    dev = levels.device
    # counts are integers: float32 holds them exactly below 2**24 pairs per patch and
    # scatters about twice as fast as float64
    exact = torch.float32 if levels[0].numel() < 2 ** 24 else torch.float64
    # direction-major so that each direction scatters into a contiguous block
    counts = torch.zeros(a_n, b * ll, dtype=exact, device=dev)
    sums = torch.zeros(a_n, b * (2 * n_levels - 1), dtype=exact, device=dev)
    diffs = torch.zeros(a_n, b * n_levels, dtype=exact, device=dev)
    row = torch.arange(b, device=dev)[:, None]
    for a, i, j, weight in _pairs(levels, m, n_levels, exact):
        weight = weight.reshape(-1)
        lo, hi = torch.minimum(i, j), torch.maximum(i, j)
        counts[a].scatter_add_(0, (row * ll + lo * n_levels + hi).reshape(-1), weight)
        sums[a].scatter_add_(0, (row * (2 * n_levels - 1) + lo + hi).reshape(-1), weight)
        diffs[a].scatter_add_(0, (row * n_levels + hi - lo).reshape(-1), weight)
    counts = counts.view(a_n, b, n_levels, n_levels).transpose(0, 1).to(torch.int64)
    sums = sums.view(a_n, b, -1).transpose(0, 1).to(dtype)
    diffs = diffs.view(a_n, b, -1).transpose(0, 1).to(dtype)
    return counts, sums, diffs


def glcm_features_from_counts(unordered: torch.Tensor, sums: torch.Tensor,
                              diffs: torch.Tensor) -> torch.Tensor:
    """(B, 10) GLCM features, mean over the non-empty directions.

    ``unordered`` (B, A, L, L) and the pair histograms come from
    :func:`glcm_matrices`. With the symmetric counts ``S = U + U^T`` and
    ``T = 2 * pairs``: ``sum S log S = 2 sum U log U + 2 log(2) trace(U)``,
    ``sum S^2 = 2 sum U^2 + 2 sum diag(U)^2`` and the marginal is
    ``rowsum(U) + colsum(U)``; the other features use the sum and difference
    marginals ``p_{x+y}``, ``p_{x-y}`` and ``ux == uy``. :mod:`.reference`
    computes the textbook sums and the tests hold the two together.
    """
    b, a_n, ng, _ = unordered.shape
    dtype, dev = sums.dtype, sums.device
    pairs = diffs.sum(2)                                        # (B, A)
    used = pairs > 0
    inv = 1.0 / torch.where(used, pairs, torch.ones_like(pairs))
    ps = sums * inv[..., None]                                  # p_{x+y}, i + j = 2 .. 2L
    pd = diffs * inv[..., None]                                 # p_{x-y}, |i - j| = 0 .. L-1
    flat = unordered.reshape(b, a_n, ng * ng)
    diag = unordered.diagonal(dim1=2, dim2=3)                   # (B, A, L)
    # c log2 c of the integer counts, exactly, by table look-up
    top = int(flat.max()) if flat.numel() else 0
    c = torch.arange(top + 1, dtype=dtype, device=dev)
    table = torch.special.xlogy(c, c) / np.log(2.0)
    ulogu = table[flat].sum(2)
    slogs = 2 * ulogu + 2 * diag.sum(2).to(dtype)               # sum S log2 S
    total = 2 * pairs
    # -sum p log2 p = log2 T - sum S log2 S / T
    joint_entropy = torch.where(used, torch.log2(total.clamp(min=1)) - slogs * inv / 2,
                                torch.zeros_like(pairs))
    s2 = 2 * (flat * flat).sum(2) + 2 * (diag * diag).sum(2)    # int64, exact
    energy = s2.to(dtype) * (inv / 2) ** 2
    px = (unordered.sum(3) + unordered.sum(2)).to(dtype) * (inv / 2)[..., None]  # (B, A, L)
    g = torch.arange(1, ng + 1, dtype=dtype, device=dev)
    k = torch.arange(ng, dtype=dtype, device=dev)
    s = torch.arange(2, 2 * ng + 1, dtype=dtype, device=dev)
    ux = (px * g).sum(2)                                        # (B, A) == uy
    var = (px * (g - ux[..., None]) ** 2).sum(2)                # sx * sy
    sc = s - 2 * ux[..., None]                                  # (i - ux) + (j - uy)
    sc2 = sc * sc
    k2 = k * k
    contrast = (pd * k2).sum(2)
    cov = ((ps * sc2).sum(2) - contrast) / 4
    correlation = torch.where(var == 0, torch.ones_like(var), cov / (var + _EPS))
    idm = (pd / (1.0 + k2)).sum(2)
    autocorr = ((ps * s * s).sum(2) - contrast) / 4
    shade = (ps * sc2 * sc).sum(2)
    prominence = (ps * sc2 * sc2).sum(2)
    diff_entropy = -(pd * torch.log2(pd + _EPS)).sum(2)
    feats = torch.stack([contrast, joint_entropy, correlation, idm, energy, ux, autocorr,
                         shade, prominence, diff_entropy], 2)  # (B, A, 10)
    w = used.to(dtype)
    n_used = w.sum(1, keepdim=True)
    return (feats * w[..., None]).sum(1) / n_used.clamp(min=1)


def glcm_features(levels: torch.Tensor, m: torch.Tensor, dtype) -> torch.Tensor:
    """(B, 10) GLCM features; the matrix side is the largest level in the batch."""
    n_levels = int(torch.where(m, levels, torch.zeros_like(levels)).max())
    return glcm_features_from_counts(*glcm_matrices(levels, m, max(n_levels, 1), dtype))


def lbp_features(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """(B, 6) uniform LBP histogram over masked voxels and the usable orthogonal planes."""
    b, d, h, w = x.shape
    padded = F.pad(x[:, None], (1, 1, 1, 1, 1, 1), mode="replicate")[:, 0]
    lut = torch.tensor(N.LBP_BIN_OF_CODE, device=x.device)
    hist = torch.zeros(b, len(N.LBP_NAMES), dtype=x.dtype, device=x.device)
    shape = (d, h, w)
    for axes in N.LBP_PLANES:
        if shape[axes[0]] < 2 or shape[axes[1]] < 2:
            continue
        bits = []
        for da, db in N.LBP_RING:
            index = [slice(None)] + [slice(1, 1 + s) for s in shape]
            index[1 + axes[0]] = slice(1 + da, 1 + da + shape[axes[0]])
            index[1 + axes[1]] = slice(1 + db, 1 + db + shape[axes[1]])
            bits.append(padded[tuple(index)] >= x)
        bits = torch.stack(bits).to(torch.uint8)
        ones = bits.sum(0, dtype=torch.int64)
        transitions = (bits != bits.roll(-1, 0)).sum(0, dtype=torch.int64)
        codes = torch.where(transitions <= 2, ones, torch.full_like(ones, 9))
        hist.scatter_add_(1, lut[codes].flatten(1), m.flatten(1).to(x.dtype))
    total = hist.sum(1, keepdim=True)
    return hist / torch.where(total > 0, total, torch.ones_like(total))


@cache
def _gabor_weights_np(wavelength: float) -> np.ndarray:
    ks = [k for pair in gabor_kernels(wavelength) for k in pair]  # re0, im0, re1, im1, ...
    return np.stack(ks)[:, None]


def gabor_features(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """(B, 6) mean Gabor magnitude (HU) over masked voxels, per wavelength and angle."""
    b, d, h, w = x.shape
    mf = m.to(x.dtype)
    nf = mf.flatten(1).sum(1)
    mean = (x * mf).flatten(1).sum(1) / nf
    # the convolution runs in float32 whatever the dtype (fast kernels; ~1e-6 relative), but
    # in float64 on CUDA, where cuDNN runs float32 convolutions in TF32 by default (about
    # 1e-3 relative): the GPU's features stay those of the CPU
    conv = torch.float64 if x.device.type == "cuda" else torch.float32
    centred = (x - mean.view(-1, 1, 1, 1)).reshape(b * d, 1, h, w).to(conv)
    mconv = mf.to(conv)
    out = []
    for wavelength in N.GABOR_WAVELENGTHS:
        weight = torch.as_tensor(_gabor_weights_np(wavelength), dtype=conv, device=x.device)
        r = weight.shape[-1] // 2
        resp = F.conv2d(centred, weight, padding=r).view(b, d, -1, 2, h, w)
        mag = (resp[:, :, :, 0] ** 2 + resp[:, :, :, 1] ** 2).sqrt()  # (B, D, n_angles, H, W)
        out.append((mag * mconv[:, :, None]).sum((1, 3, 4)).to(x.dtype) / nf[:, None])
    return torch.cat(out, 1)


_GROUP_FUNCTIONS = {
    "firstorder": lambda x, m, lv, e: firstorder_features(x, m, lv, e),
    "glcm": lambda x, m, lv, e: glcm_features(lv, m, x.dtype),
    "lbp": lambda x, m, lv, e: lbp_features(x, m),
    "gabor": lambda x, m, lv, e: gabor_features(x, m),
}


@torch.no_grad()
def batched_features(patches: torch.Tensor, masks: Optional[torch.Tensor] = None, *,
                     dtype: Optional[torch.dtype] = None,
                     groups: Sequence[str] = tuple(N.GROUPS)) -> torch.Tensor:
    """The 34 features of each patch of a batch.

    Parameters
    ----------
    patches : (B, D, H, W) or (B, H, W) tensor or array
        HU, on any device (the result stays there).
    masks : same shape, optional
        Voxels to describe (bool, or float > 0.5). None, or an empty mask for a
        patch: the whole patch.
    dtype : torch dtype, optional
        Precision of the computation and result; default float64 (float32 on MPS).
    groups : sequence of str
        Feature groups to compute (``firstorder``, ``glcm``, ``lbp``, ``gabor``);
        all by default. Columns follow the order of :data:`~.names.GROUPS`.

    Returns
    -------
    (B, 34) tensor in the order of :data:`~.names.FEATURE_NAMES` (fewer columns
    when ``groups`` leaves some out).
    """
    unknown = set(groups) - set(N.GROUPS)
    if unknown:
        raise ValueError(f"unknown feature groups {sorted(unknown)}; choose from {list(N.GROUPS)}")
    x, m, exact32 = _prepare(patches, masks, dtype)
    n_cols = sum(len(range(34)[N.GROUPS[g]]) for g in N.GROUPS if g in groups)
    if x.shape[0] == 0:
        return torch.zeros(0, n_cols, dtype=x.dtype, device=x.device)
    levels = gray_levels(x, m)
    return torch.cat([_GROUP_FUNCTIONS[g](x, m, levels, exact32) for g in N.GROUPS if g in groups], 1)
