"""The radiomic teacher of stage 2: patches in, ``(B, 34)`` feature vectors out.

:func:`get_teacher` returns :func:`diffseglung_core.radiomics.batched_features`
(HU, GLCM, LBP and Gabor features, docs/radiomics.md). Otherwise it returns
:func:`fallback_teacher`, a documented stand-in computing 34 first-order HU and
gradient statistics (it is NOT the paper's GLCM / LBP / Gabor descriptor).
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch

TeacherFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

_HU_THRESHOLDS = (-950.0, -910.0, -856.0, -700.0, -500.0, -300.0, -100.0)
_QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)


def _masked_quantiles(x: torch.Tensor, m: torch.Tensor, qs) -> torch.Tensor:
    out = []
    for xi, mi in zip(x, m):
        v = xi[mi] if mi.any() else xi.flatten()
        out.append(torch.quantile(v.float(), torch.tensor(qs, device=v.device)))
    return torch.stack(out)


@torch.no_grad()
def fallback_teacher(hu: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """34 first-order and gradient statistics of HU inside the mask.

    Parameters
    ----------
    hu : (B, D, H, W) HU.
    mask : (B, D, H, W) lung mask (voxels used; the whole patch if empty).

    Returns
    -------
    (B, 34) float32: mean, std, skewness, kurtosis, min, max, 9 quantiles,
    7 fractions below HU thresholds, energy-like mean square / 1e6, entropy of
    a 32-bin histogram, gradient magnitude mean / std / 3 quantiles, mean
    absolute Laplacian, lung fraction, 3 axis gradient means.
    """
    b = hu.shape[0]
    m = mask > 0.5
    m = torch.where(m.flatten(1).any(1).view(-1, 1, 1, 1), m, torch.ones_like(m))
    x = hu.float()
    w = m.float()
    n = w.flatten(1).sum(1)
    mean = (x * w).flatten(1).sum(1) / n
    d = (x - mean.view(-1, 1, 1, 1)) * w
    var = (d ** 2).flatten(1).sum(1) / n
    std = var.clamp_min(1e-6).sqrt()
    skew = (d ** 3).flatten(1).sum(1) / n / std ** 3
    kurt = (d ** 4).flatten(1).sum(1) / n / std ** 4
    big = torch.finfo(torch.float32).max
    mn = torch.where(m, x, torch.full_like(x, big)).flatten(1).min(1).values
    mx = torch.where(m, x, torch.full_like(x, -big)).flatten(1).max(1).values
    q = _masked_quantiles(x.flatten(1), m.flatten(1), _QUANTILES)
    fr = torch.stack([((x < t) & m).flatten(1).sum(1) / n for t in _HU_THRESHOLDS], 1)
    energy = (x ** 2 * w).flatten(1).sum(1) / n / 1e6
    bins = ((x.clamp(-1100, 500) + 1100) / 1600 * 31).long()
    hist = torch.zeros(b, 32, device=x.device).scatter_add_(1, bins.flatten(1), w.flatten(1)) / n[:, None]
    entropy = -(hist * torch.log2(hist.clamp_min(1e-12))).sum(1)
    gz, gy, gx = torch.gradient(x, dim=(1, 2, 3))
    g = (gz ** 2 + gy ** 2 + gx ** 2).sqrt()
    gmean = (g * w).flatten(1).sum(1) / n
    gstd = (((g - gmean.view(-1, 1, 1, 1)) * w) ** 2).flatten(1).sum(1).div(n).sqrt()
    gq = _masked_quantiles(g.flatten(1), m.flatten(1), (0.25, 0.5, 0.9))
    lap = sum(torch.gradient(gi, dim=k + 1)[0] for k, gi in enumerate((gz, gy, gx)))
    lap = (lap.abs() * w).flatten(1).sum(1) / n
    frac = (mask > 0.5).float().flatten(1).mean(1)
    axes = [(a.abs() * w).flatten(1).sum(1) / n for a in (gz, gy, gx)]
    feats = [mean, std, skew, kurt, mn, mx, *q.t(), *fr.t(), energy, entropy, gmean, gstd,
             *gq.t(), lap, frac, *axes]
    return torch.stack(feats, 1).float()


def get_teacher() -> TeacherFn:
    """The project's batched radiomic teacher, or :func:`fallback_teacher` with a warning."""
    try:
        from ..radiomics import batched_features as fn
    except ImportError:
        fn = None
    if fn is None:
        warnings.warn("diffseglung_core.radiomics has no batched teacher; using the first-order "
                      "HU fallback teacher", stacklevel=2)
        return fallback_teacher
    return fn
