"""Tube, blob and plate measures from the multi-scale Hessian of a CT volume.

Bright tubes (vessels, airway walls seen along their length), bright blobs
(nodules, masses) and bright plates (fissures, bronchial walls seen
tangentially) bend the HU surface in three different ways. At a scale
``sigma`` (mm) the scale-normalised Hessian ``sigma**2 * d2 (G_sigma * hu)``
has, on the axis of a bright tube, two large negative eigenvalues and one
near zero; at the centre of a bright blob three similar negative eigenvalues;
inside a bright plate one large negative eigenvalue. This module measures
that, Frangi-style, at several scales and keeps the maximum over scales:

* :func:`hessian_eigenvalues`: the three eigenvalues per voxel, sorted by
  absolute value, at one scale (full grid; arrays in, arrays out);
* :func:`structure_maps`: the named maps of :data:`STRUCTURE_NAMES` for every
  voxel of a (sub-)volume;
* :func:`structure_features`: the same as ``(N, F)`` float32 rows for the
  lung voxels in ``np.nonzero(lung)`` order, like
  :mod:`diffseglung_core.segment.features`;
* :func:`eigenvalues_sym3`: closed-form eigenvalues of many symmetric 3x3
  matrices (torch, any device).

Method
------
*Physical scales on anisotropic grids.* A scale is a Gaussian sigma in mm;
along axis ``a`` it is ``sigma_mm / spacing[a]`` voxels. Derivatives are per
mm and the Hessian is scale-normalised (Lindeberg [3]_): ``d2 / (da db)`` is
multiplied by ``s_a s_b`` with ``s_a = max(sigma_mm, min_scale_voxels *
spacing[a])``, so its unit is HU and one contrast threshold serves every
scale and every scan. On fine grids ``s_a = sigma_mm`` (the usual
``sigma**2``). Along 5 mm slices a 1 mm sigma cannot be had: the data are
already averaged over the slice profile and the second difference spans two
slices (together a Gaussian of about 0.6-0.7 slice spacings), so the
curvature across slices is normalised with that scale (``min_scale_voxels``
0.7 by default). Normalised with 1 mm instead, a vessel lying in the slice
plane looks more like a plate (its curvature across the slices is divided
by 12): of the thin dense lung voxels of the real scan A0001 (HU > -500,
gone after an opening of 3 mm radius: vessels and their walls), 36 % were
more tube than plate with the plain ``sigma**2``, 60 % with 0.7.

*Separable banded matrices.* Each axis is filtered by one small matrix per
derivative order (0, 1, 2), built from the sampled Gaussian (or its
derivatives) with edge replication; the three axes are applied in turn as
block-banded matrix products (BLAS on the CPU, the same code on CUDA or MPS):
the 6 Hessian components from 15 one-dimensional passes, the gradient (for
the plate measure) from 3 more. Edge replication reads a single slice as a
structure constant across slices (an in-plane vessel is then a plate, not a
tube). The derivative kernels
are moment-corrected: each row responds exactly to polynomials of degree two
(``sum k = 0``, ``sum k d = 1`` for the first derivative; ``sum k d^2 / 2 = 1``
for the second), so a kernel far below one voxel (1 mm along 5 mm slices)
degrades to the central differences ``[-1, 0, 1] / 2`` and ``[1, -2, 1]``
instead of to noise. With ``derivatives="difference"`` the Hessian is that of
scikit-image's ``hessian_matrix(..., use_gaussian_derivatives=False)``
(Gaussian smoothing, then ``np.gradient`` twice), to float32 rounding.

*Coarser grids for coarser scales.* A matrix row may sit at a fractional
position of the input, so smoothing and resampling are one product. Scale
``sigma`` is computed on a grid of step ``max(spacing, sigma / samples_per_sigma)``
mm per axis and the measures are interpolated back to the voxels
(trilinear). The default, 2 samples per sigma, computes 1 mm on the voxel
grid, 2 mm on a 1 mm grid and 4 mm on a 2 mm grid. It keeps the maps close to
those of the voxel grid (``samples_per_sigma=inf``): on the lung voxels of
the real scan A0001 (0.84 x 0.84 x 5 mm) Pearson r = 0.99 (tube), 0.98
(blob), 0.995 (plate) in 75 % of the CPU time (less is saved there: the 5 mm
slices are never resampled); with 1 sample per sigma r = 0.92, 0.83, 0.92
in 52 % (the measures peak on structures about a sigma wide, and a grid of
a sigma's step blurs the peaks). Grids are anchored at voxel
0 of the volume, so a crop, a z-slab or the lung's bounding box give the
same values as the whole scan.

*Closed-form eigenvalues* (trigonometric solution of the characteristic
cubic, float32), sorted by absolute value ``|l1| <= |l2| <= |l3|``.

*Measures*, all in ``[0, 1]``, with ``R_A = |l2| / |l3|``,
``R_B = |l1| / sqrt(|l2 l3|)``, ``S^2 = l1^2 + l2^2 + l3^2`` (HU^2) and the
contrast term ``C = 1 - exp(-S^2 / (2 c^2))``:

* ``tube`` (bright on dark; Frangi et al. 1998):
  ``[l2 < 0, l3 < 0] (1 - exp(-R_A^2 / 2 alpha^2)) exp(-R_B^2 / 2 beta^2) C``;
* ``blob``: ``[l1, l2, l3 < 0] (1 - exp(-R_B^2 / 2 beta^2)) C`` (``R_B`` is 1
  at a sphere's centre and ``R_B <= sqrt(R_A)``, so it is small for tubes
  and plates);
* ``plate``: ``[l3 < 0] exp(-R_A^2 / 2 alpha^2) exp(-R_G^2 / 2 gamma^2) C``
  with ``R_G = |g| / |l3|``, ``g`` the scale-normalised gradient: on the
  bright side of any edge (the flank of a vessel, the pleura) the Hessian
  has one large negative eigenvalue too, but there ``R_G`` is about 1,
  while at the middle of a thin plate ``g = 0`` (without this term the
  median plate measure of the thin dense lung voxels of A0001 was 0.87);
* ``tube_scale_mm``: the sigma (mm) at which ``tube`` is largest; 0 where
  ``tube`` stays below :data:`MIN_TUBE_FOR_SCALE` (0.05) at every scale.

The constant ``c`` is fixed in HU (``c_hu``, default 50 HU), not taken from
the image as in Frangi's paper: the measures then mean the same on every
scan and every z-slab. A Gaussian vessel of 800 HU at its matched scale has
``l2 = l3 = -200`` HU; in the aerated parenchyma of A0001 ``S`` at 1 mm has a
median of 40 HU (noise, texture and the smallest vessels), where the signs
and ratios of the eigenvalues, not ``C``, keep the measures low.

Near tubes of a synthetic volume ``tube`` ranks voxels as scikit-image's
``frangi`` (Spearman 0.87) and ``sato`` (0.79; Sato et al.'s line filter [2]_)
do; those two agree with each other at 0.77.

All work is done in z-slabs with a halo (the kernel radius plus a grid
step), so memory grows with a slab, not with the scan; results do not
depend on the slab size (to float rounding).

*Speed* (``benchmarks/bench_structure.py``, 2 threads of a 2-core machine
that other jobs were using): the Hessian eigenvalues at 1, 2 and 4 mm of a
24 x 384 x 384 crop of A0001 took 0.8 s against 7-9 s for scikit-image's
``hessian_matrix`` + ``hessian_matrix_eigvals`` (the same operator through
``derivatives="difference"``: 1.5 s); :func:`structure_features` of the 12
million lung voxels of a 300 x 512 x 512 scan took 6-7 s of CPU time (9-19 s
wall under that load) and 0.5-0.6 GB above the input.

References
----------
.. [1] Frangi AF, Niessen WJ, Vincken KL, Viergever MA. Multiscale vessel
   enhancement filtering. MICCAI 1998, LNCS 1496:130-137.
.. [2] Sato Y, Nakajima S, Shiraga N, et al. Three-dimensional multi-scale
   line filter for segmentation and visualization of curvilinear structures
   in medical images. Medical Image Analysis 1998;2(2):143-168.
.. [3] Lindeberg T. Feature detection with automatic scale selection.
   International Journal of Computer Vision 1998;30(2):79-116.
.. [4] Smith OK. Eigenvalues of a symmetric 3 x 3 matrix. Communications of
   the ACM 1961;4(4):168.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..device import get_device
from ..errors import NoLungFoundError
from ..progress import ProgressCallback, report
from .features import HU_CLIP, lung_bbox

__all__ = ["STRUCTURE_NAMES", "DEFAULT_SIGMAS_MM", "MIN_TUBE_FOR_SCALE", "hessian_eigenvalues",
           "structure_maps", "structure_features", "eigenvalues_sym3"]

#: Names of the maps of :func:`structure_maps` and the columns of :func:`structure_features`.
STRUCTURE_NAMES = ("tube", "blob", "plate", "tube_scale_mm")
#: Default Gaussian scales (mm): small vessels and airway walls to segmental vessels.
DEFAULT_SIGMAS_MM = (1.0, 2.0, 4.0)
#: ``tube_scale_mm`` is 0 where the tube measure stays below this at every scale.
MIN_TUBE_FOR_SCALE = 0.05

#: Hessian components, as derivative orders along (z, y, x).
_COMPONENTS = ((2, 0, 0), (0, 2, 0), (0, 0, 2), (1, 1, 0), (1, 0, 1), (0, 1, 1))
#: The gradient's components.
_GRADIENT = ((1, 0, 0), (0, 1, 0), (0, 0, 1))
#: Output rows per block of a banded matrix product (interpolation).
_BLOCK = 32
#: About this many input columns per block of a filter matrix product.
_BLOCK_COLS = 32

Device = Union[str, torch.device]


# --------------------------------------------------------------------------- kernels

def _moment_corrected(d: np.ndarray, base: np.ndarray, weight: np.ndarray,
                      target: Sequence[float]) -> np.ndarray:
    """Add ``weight * (c0 + c1 d + c2 d^2)`` to each row of ``base`` so that its
    moments ``sum k d^q`` (q = 0, 1, 2) equal ``target`` (float64)."""
    mom_w = np.stack([(weight * d ** q).sum(1) for q in range(5)], 1)          # (R, 5)
    mom_k = np.stack([(base * d ** q).sum(1) for q in range(3)], 1)            # (R, 3)
    a = np.stack([mom_w[:, i:i + 3] for i in range(3)], 1)                     # (R, 3, 3)
    c = np.linalg.solve(a, (np.asarray(target, np.float64)[None, :] - mom_k)[..., None])[..., 0]
    return base + weight * (c[:, :1] + c[:, 1:2] * d + c[:, 2:3] * d * d)


def _gaussian_rows(pos: np.ndarray, sigma: float, truncate: float, lo: int, hi: int) -> np.ndarray:
    """Moment-corrected Gaussian and derivative kernels at positions ``pos``.

    Parameters
    ----------
    pos : (R,) float, positions in (absolute) voxel units where the rows sit.
    sigma : Gaussian sigma in voxels.
    truncate : kernel radius in sigmas (at least 1.5 voxels).
    lo, hi : the input samples are the voxels ``lo .. hi - 1``; outside taps
        are folded onto the end samples (edge replication).

    Returns
    -------
    (3, R, hi - lo) float64: smoothing, first and second derivative (per voxel).
    """
    radius = max(truncate * sigma, 1.5)
    first = np.ceil(pos - radius).astype(np.int64)
    width = int(np.max(np.floor(pos + radius).astype(np.int64) - first)) + 1
    idx = first[:, None] + np.arange(width)[None, :]                           # (R, L)
    d = idx - pos[:, None]
    inside = np.abs(d) <= radius + 1e-9
    g = np.where(inside, np.exp(-0.5 * (d / sigma) ** 2), 0.0)
    # moment corrections weighted by a Gaussian of at least one voxel: well posed
    # even when sigma is far below a voxel (the kernels become finite differences)
    w = np.where(inside, np.exp(-0.5 * (d / max(sigma, 1.0)) ** 2), 0.0)
    k0 = _moment_corrected(d, g, w, (1.0, 0.0, sigma * sigma))
    k1 = _moment_corrected(d, g * d / sigma ** 2, w, (0.0, 1.0, 0.0))
    k2 = _moment_corrected(d, g * (d * d / sigma ** 4 - 1.0 / sigma ** 2), w, (0.0, 0.0, 2.0))
    out = np.zeros((3, len(pos), hi - lo))
    cols = np.clip(idx, lo, hi - 1) - lo
    rows = np.broadcast_to(np.arange(len(pos))[:, None], idx.shape)
    for o, k in enumerate((k0, k1, k2)):
        np.add.at(out[o], (rows, cols), np.where(inside, k, 0.0))
    return out


def _scipy_gaussian_rows(pos: np.ndarray, sigma: float, truncate: float, lo: int,
                         hi: int) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter1d(mode="nearest")`` as matrix rows at integer ``pos``."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (sigma * sigma) * x ** 2) if sigma > 0 else (x == 0).astype(float)
    phi /= phi.sum()
    out = np.zeros((len(pos), hi - lo))
    idx = np.round(pos).astype(np.int64)[:, None] + x[None, :]
    cols = np.clip(idx, lo, hi - 1) - lo
    rows = np.broadcast_to(np.arange(len(pos))[:, None], idx.shape)
    np.add.at(out, (rows, cols), np.broadcast_to(phi, idx.shape))
    return out


def _np_gradient_matrix(n: int) -> np.ndarray:
    """``np.gradient`` (central inside, one-sided at the ends) as an ``(n, n)`` matrix."""
    m = np.zeros((n, n))
    if n == 1:
        return m
    i = np.arange(1, n - 1)
    m[i, i - 1], m[i, i + 1] = -0.5, 0.5
    m[0, 0], m[0, 1], m[-1, -2], m[-1, -1] = -1.0, 1.0, -1.0, 1.0
    return m


class _AxisPlan:
    """One axis of one scale: filter matrices onto a grid and interpolation back.

    ``kern`` (3, n_grid, n_in) maps the input samples ``in_lo .. in_hi - 1`` to
    the smoothed value and the first and second derivative (per mm) at the
    grid points; ``interp`` (n_out, n_grid) maps grid values to the voxels
    ``out_lo .. out_hi - 1`` (``None``: the grid is those voxels).
    """

    def __init__(self, in_lo: int, in_hi: int, out_lo: int, out_hi: int, n_total: int,
                 spacing: float, sigma_mm: float, step_mm: float, truncate: float,
                 derivatives: str):
        r = max(1.0, step_mm / spacing)          # grid step in voxels
        sigma = sigma_mm / spacing                # sigma in voxels
        # grid point j sits at voxel j * r of the whole volume; "difference" takes
        # np.gradient on the grid, so it needs two more grid points each side
        j_last = math.ceil((n_total - 1) / r - 1e-9)
        pad = 2 if derivatives == "difference" else 0
        j0 = max(0, math.floor(out_lo / r + 1e-9) - pad)
        j1 = min(j_last, math.ceil((out_hi - 1) / r - 1e-9) + pad)
        grid = np.arange(j0, j1 + 1)
        pos = grid * r
        if derivatives == "gaussian":
            kern = _gaussian_rows(pos, sigma, truncate, in_lo, in_hi)
        elif derivatives == "difference":
            g = _scipy_gaussian_rows(pos, sigma, truncate, in_lo, in_hi)
            dg = _np_gradient_matrix(len(grid)) / r
            kern = np.stack([g, dg @ g, dg @ (dg @ g)])
        else:
            raise ValueError(f"derivatives must be 'gaussian' or 'difference', got {derivatives!r}")
        kern[1] /= spacing
        kern[2] /= spacing * spacing
        self.kern = kern
        if r == 1.0 and j0 == out_lo and j1 == out_hi - 1:
            self.interp = None
        else:
            t = np.arange(out_lo, out_hi) / r - j0
            base = np.clip(np.floor(t + 1e-9).astype(np.int64), 0, len(grid) - 1)
            frac = np.clip(t - base, 0.0, 1.0)
            m = np.zeros((out_hi - out_lo, len(grid)))
            rows = np.arange(out_hi - out_lo)
            m[rows, base] += 1.0 - frac
            nxt = np.minimum(base + 1, len(grid) - 1)
            m[rows, nxt] += frac
            self.interp = m


def _halo(spacing: float, sigma_mm: float, step_mm: float, truncate: float,
          derivatives: str) -> int:
    """Input voxels needed on each side of an output range along one axis.

    The grid points used reach one grid step (three with ``"difference"``)
    beyond the range, and their kernels reach ``radius`` voxels further.
    """
    r = max(1.0, step_mm / spacing)
    sigma = sigma_mm / spacing
    if derivatives == "difference":
        return math.ceil(3 * r + int(truncate * sigma + 0.5)) + 1
    return math.ceil(r + max(truncate * sigma, 1.5)) + 1


# --------------------------------------------------------------------------- banded products

def _apply(x: torch.Tensor, mats: np.ndarray, axis: int, device: torch.device,
           block: int = _BLOCK) -> torch.Tensor:
    """Apply ``K`` matrices ``mats`` (K, m, n) along ``axis`` of ``x``.

    Returns ``(K,) + x.shape`` with ``x.shape[axis]`` replaced by ``m``. The
    matrices are banded; each block of ``block`` rows is multiplied with the
    slice of ``x`` its nonzero columns cover.
    """
    k, m, n = mats.shape
    shape = x.shape
    pre = int(np.prod(shape[:axis], dtype=np.int64))
    post = int(np.prod(shape[axis + 1:], dtype=np.int64))
    last = post == 1
    if last:   # filter the rows of the transpose: contiguous block writes below
        x3 = x.reshape(pre, n).T.contiguous().reshape(1, n, pre)
        pre, post = 1, pre
    else:
        x3 = x.reshape(pre, n, post)
    out = torch.empty((k, pre, m, post), dtype=x.dtype, device=device)
    nz = np.abs(mats).sum(0) > 0                                               # (m, n)
    for r0 in range(0, m, block):
        r1 = min(m, r0 + block)
        cols = np.flatnonzero(nz[r0:r1].any(0))
        if len(cols) == 0:
            out[:, :, r0:r1] = 0
            continue
        c0, c1 = int(cols[0]), int(cols[-1]) + 1
        sub = torch.as_tensor(mats[:, r0:r1, c0:c1].reshape(k * (r1 - r0), c1 - c0),
                              dtype=x.dtype, device=device)
        res = torch.matmul(sub, x3[:, c0:c1, :])                                # (pre, K*B, post)
        out[:, :, r0:r1, :] = res.reshape(pre, k, r1 - r0, post).transpose(0, 1)
    if last:   # the dimensions after ``axis`` are all of size 1
        return out.reshape(k, m, post).transpose(1, 2).reshape(
            (k,) + shape[:axis] + (m,) + shape[axis + 1:])
    return out.reshape((k,) + shape[:axis] + (m,) + shape[axis + 1:])


def _axis_order(x: torch.Tensor, plans: Sequence[_AxisPlan]) -> list[int]:
    """Axes in the order that shrinks the data fastest (the first pass is on the full input)."""
    shrink = [x.shape[ax] / plans[ax].kern.shape[1] for ax in range(3)]
    return sorted(range(3), key=lambda ax: -shrink[ax])


def _derivatives_on_grid(
    x: torch.Tensor,
    plans: Sequence[_AxisPlan],
    norm_mm: Sequence[float],
    device: torch.device,
    orders: Sequence[tuple[int, int, int]] = _COMPONENTS,
) -> list[torch.Tensor]:
    """Gaussian derivatives of ``x`` on the grid, one per derivative order ``(z, y, x)``.

    By default the six Hessian components ``zz, yy, xx, zy, zx, yx``. The
    derivative of orders ``(i, j, k)`` is multiplied by
    ``norm_mm[0]**i * norm_mm[1]**j * norm_mm[2]**k`` (scale normalisation;
    ones for none).
    """
    order = _axis_order(x, plans)
    comps = [tuple(c[ax] for ax in order) for c in orders]        # orders in processing order
    stage = {(): x}
    for step, axis in enumerate(order):
        nxt = {}
        for key, val in stage.items():
            need = sorted({c[step] for c in comps if c[:step] == key})
            kern = plans[axis].kern
            rows = max(16, min(256, round(_BLOCK_COLS * kern.shape[1] / kern.shape[2])))
            res = _apply(val, kern[need], axis, device, block=rows)
            for i, o in enumerate(need):
                nxt[key + (o,)] = res[i]
        stage = nxt
    out = []
    for c, key in zip(orders, comps):
        f = float(np.prod([float(norm_mm[a]) ** c[a] for a in range(3)]))
        out.append(stage[key] * f)
    return out


# --------------------------------------------------------------------------- eigenvalues

def eigenvalues_sym3(hzz: torch.Tensor, hyy: torch.Tensor, hxx: torch.Tensor, hzy: torch.Tensor,
                     hzx: torch.Tensor, hyx: torch.Tensor,
                     sort: str = "abs") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eigenvalues of symmetric 3x3 matrices given by their six entries (closed form).

    Parameters
    ----------
    hzz, hyy, hxx, hzy, hzx, hyx : tensors of one shape (any device, float32 or float64)
        Diagonal and off-diagonal entries.
    sort : ``"abs"`` (``|l1| <= |l2| <= |l3|``) or ``"value"`` (``l1 >= l2 >= l3``).

    Returns
    -------
    l1, l2, l3 : tensors of the input shape and dtype.

    Notes
    -----
    Trigonometric solution of the characteristic cubic of the traceless,
    normalised matrix ``(H - q I) / p`` (Smith 1961), elementwise (any device). In
    float32 the error against ``torch.linalg.eigvalsh`` in float64 is at most
    about ``1e-5 * ||H||_F`` on random matrices and ``2e-4 * ||H||_F`` when two
    eigenvalues nearly coincide (``acos`` near +-1 loses half the digits),
    as on a tube's axis (``l2 = l3``): about 0.06 HU for ``l2 = l3 = -200`` HU.
    """
    q = (hzz + hyy + hxx) / 3.0
    a, b, c = hzz - q, hyy - q, hxx - q
    p2 = a * a + b * b + c * c + 2.0 * (hzy * hzy + hzx * hzx + hyx * hyx)
    p = torch.sqrt(p2 / 6.0)
    inv = 1.0 / torch.clamp(p, min=torch.finfo(p.dtype).tiny)   # p = 0: every entry below is 0
    a, b, c = a * inv, b * inv, c * inv
    d, e, f = hzy * inv, hzx * inv, hyx * inv
    det = a * (b * c - f * f) - d * (d * c - f * e) + e * (d * f - b * e)
    phi = torch.acos(torch.clamp(0.5 * det, -1.0, 1.0)) / 3.0
    e1 = q + 2.0 * p * torch.cos(phi)
    e3 = q + 2.0 * p * torch.cos(phi + 2.0 * math.pi / 3.0)
    e2 = 3.0 * q - e1 - e3
    if sort == "value":
        return e1, e2, e3
    if sort != "abs":
        raise ValueError(f"sort must be 'abs' or 'value', got {sort!r}")
    return _sort_abs(e1, e2, e3)


def _sort_abs(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor):
    def swap(x, y):
        m = x.abs() > y.abs()
        return torch.where(m, y, x), torch.where(m, x, y)

    a, b = swap(a, b)
    b, c = swap(b, c)
    a, b = swap(a, b)
    return a, b, c


def _measures_from_sorted(e1: torch.Tensor, e2: torch.Tensor, e3: torch.Tensor, g2: torch.Tensor,
                          alpha: float, beta: float, gamma: float,
                          c_hu: float) -> tuple[torch.Tensor, ...]:
    """Tube, blob and plate measures of eigenvalues sorted by value (``e1 >= e2 >= e3``).

    ``g2`` is the squared norm of the scale-normalised gradient; None: the tube
    measure alone (it does not read the gradient). With
    ``|l1| <= |l2| <= |l3|`` the same eigenvalues sorted by magnitude:
    ``l3 < 0`` iff ``e1 + e3 < 0``; ``l2, l3 < 0`` iff ``e1 + e2 < 0``; all
    three negative iff ``e1 < 0`` (no per-voxel sort is needed).
    """
    b1, b2, b3 = e1.abs(), e2.abs(), e3.abs()
    a3 = torch.maximum(b1, b3)
    a1 = torch.minimum(torch.minimum(b1, b2), b3)
    a2 = b1 + b2 + b3 - a1 - a3
    s2 = b1 * b1 + b2 * b2 + b3 * b3
    tiny = 1e-12
    a3sq = a3 * a3 + tiny
    ra2 = a2 * a2 / a3sq
    rb2 = a1 * a1 / (a2 * a3 + tiny)
    contrast = 1.0 - torch.exp(s2 * (-0.5 / (c_hu * c_hu)))
    not_blob = torch.exp(rb2 * (-0.5 / (beta * beta)))
    plate_shape = torch.exp(ra2 * (-0.5 / (alpha * alpha)))
    tube = (1.0 - plate_shape) * not_blob * contrast * ((e1 + e2) < 0)
    if g2 is None:
        return (tube,)
    not_edge = torch.exp(g2 / a3sq * (-0.5 / (gamma * gamma)))
    blob = (1.0 - not_blob) * contrast * (e1 < 0)
    plate = plate_shape * not_edge * contrast * ((e1 + e3) < 0)
    return tube, blob, plate


def _eigenvalues_chunked(comps: Sequence[torch.Tensor], chunk: int = 1 << 18) -> torch.Tensor:
    """``(3,) + shape`` eigenvalues sorted by magnitude, in chunks on the CPU (small temporaries)."""
    shape = comps[0].shape
    flat = [c.reshape(-1) for c in comps]
    n = flat[0].numel()
    out = torch.empty((3, n), dtype=flat[0].dtype, device=flat[0].device)
    step = n if flat[0].device.type != "cpu" else chunk
    for s in range(0, n, step):
        for i, e in enumerate(eigenvalues_sym3(*(f[s:s + step] for f in flat))):
            out[i, s:s + step] = e
    return out.reshape((3,) + tuple(shape))


def _eig_measures(comps: Sequence[torch.Tensor], alpha: float, beta: float, gamma: float,
                  c_hu: float, chunk: int = 1 << 18) -> torch.Tensor:
    """``(3,) + shape`` tube, blob and plate maps from the Hessian and gradient components.

    Six components (the Hessian's alone): ``(1,) + shape``, the tube map.
    Worked in chunks of ``chunk`` voxels: the temporaries stay small (in cache,
    no fresh pages per operation).
    """
    shape = comps[0].shape
    flat = [c.reshape(-1) for c in comps]
    n = flat[0].numel()
    n_out = 3 if len(flat) > 6 else 1
    out = torch.empty((n_out, n), dtype=flat[0].dtype, device=flat[0].device)
    step = n if flat[0].device.type != "cpu" else chunk
    for s in range(0, n, step):
        part = [f[s:s + step] for f in flat]
        e = eigenvalues_sym3(*part[:6], sort="value")
        g2 = part[6] * part[6] + part[7] * part[7] + part[8] * part[8] if n_out == 3 else None
        for i, m in enumerate(_measures_from_sorted(*e, g2, alpha, beta, gamma, c_hu)):
            out[i, s:s + step] = m
    return out.reshape((n_out,) + tuple(shape))


# --------------------------------------------------------------------------- slabs

def _norm(spacing: Sequence[float], sigma_mm: float, min_voxels: float) -> tuple[float, ...]:
    """Per-axis scale (mm) of the normalisation: ``max(sigma, min_voxels * spacing)``."""
    return tuple(max(float(sigma_mm), float(min_voxels) * float(s)) for s in spacing)


def _steps(spacing: Sequence[float], sigma_mm: float,
           samples_per_sigma: float) -> tuple[float, ...]:
    if not samples_per_sigma > 0:
        raise ValueError(f"samples_per_sigma must be > 0, got {samples_per_sigma!r}")
    return tuple(max(float(s), sigma_mm / samples_per_sigma) for s in spacing)


def _check(vol: np.ndarray, spacing, sigmas_mm) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if np.ndim(vol) != 3:
        raise ValueError(f"expected a (Z, Y, X) volume, got shape {np.shape(vol)}")
    sp = tuple(float(s) for s in spacing)
    if len(sp) != 3 or min(sp) <= 0:
        raise ValueError(f"spacing must be 3 positive numbers (mm), got {spacing!r}")
    sig = tuple(float(s) for s in np.atleast_1d(sigmas_mm))
    if not sig or min(sig) <= 0:
        raise ValueError(f"sigmas must be positive (mm), got {sigmas_mm!r}")
    return sp, sig  # type: ignore[return-value]


def _slab_ranges(z0: int, z1: int, slab: int) -> list[tuple[int, int]]:
    if slab < 1:
        raise ValueError(f"slab must be >= 1, got {slab}")
    return [(s, min(s + slab, z1)) for s in range(z0, z1, slab)]


def _prepare(vol: np.ndarray, a: int, b: int, box_yx, clip_hu, device) -> torch.Tensor:
    sub = np.asarray(vol[a:b, box_yx[0], box_yx[1]], np.float32)
    t = torch.as_tensor(np.ascontiguousarray(sub), device=device)
    if clip_hu is not None:
        t = t.clamp(float(clip_hu[0]), float(clip_hu[1]))
    return t


def _halos(spacing, sigmas, rho, truncate, derivatives) -> list[int]:
    return [max(_halo(spacing[ax], s, _steps(spacing, s, rho)[ax], truncate, derivatives)
                for s in sigmas) for ax in range(3)]


class _Slabber:
    """Computes per-scale results for z-slabs of an output box of a volume."""

    def __init__(self, vol, spacing, out_box, sigmas, rho, truncate, derivatives, clip_hu, device):
        self.vol, self.spacing, self.sigmas = vol, spacing, sigmas
        self.rho, self.truncate, self.derivatives = rho, truncate, derivatives
        self.clip_hu, self.device = clip_hu, device
        self.halo = _halos(spacing, sigmas, rho, truncate, derivatives)
        shape = vol.shape
        self.out_box = out_box
        self.in_yx = tuple(slice(max(0, out_box[ax].start - self.halo[ax]),
                                 min(shape[ax], out_box[ax].stop + self.halo[ax]))
                           for ax in (1, 2))
        self._yx_plans: dict = {}

    def _plan(self, ax, in_rng, out_rng, sigma):
        step = _steps(self.spacing, sigma, self.rho)[ax]
        return _AxisPlan(in_rng[0], in_rng[1], out_rng[0], out_rng[1], self.vol.shape[ax],
                         self.spacing[ax], sigma, step, self.truncate, self.derivatives)

    def plans(self, z_in, z_out, sigma):
        if sigma not in self._yx_plans:
            self._yx_plans[sigma] = [
                self._plan(ax, (self.in_yx[ax - 1].start, self.in_yx[ax - 1].stop),
                           (self.out_box[ax].start, self.out_box[ax].stop), sigma)
                for ax in (1, 2)]
        return [self._plan(0, z_in, z_out, sigma)] + self._yx_plans[sigma]

    def slab_input(self, s, e):
        a = max(0, s - self.halo[0])
        b = min(self.vol.shape[0], e + self.halo[0])
        return (a, b), _prepare(self.vol, a, b, self.in_yx, self.clip_hu, self.device)


def _upsample(maps: torch.Tensor, plans: Sequence[_AxisPlan], device) -> torch.Tensor:
    """Interpolate ``(F, gz, gy, gx)`` grid maps to the output voxels (trilinear)."""
    for ax in range(3):
        if plans[ax].interp is not None:
            maps = _apply(maps, plans[ax].interp[None], ax + 1, device)[0]
    return maps


def _resolve_device(device: Device) -> torch.device:
    return device if isinstance(device, torch.device) else get_device(device)


# --------------------------------------------------------------------------- public API

@torch.no_grad()
def hessian_eigenvalues(
    volume: np.ndarray,
    spacing: Sequence[float],
    sigma_mm: float,
    *,
    truncate: float = 3.0,
    derivatives: str = "gaussian",
    normalized: bool = True,
    min_scale_voxels: float = 0.0,
    clip_hu: Optional[tuple[float, float]] = None,
    slab: int = 16,
    device: Device = "cpu",
    progress: Optional[ProgressCallback] = None,
) -> np.ndarray:
    """Eigenvalues of the Gaussian-smoothed Hessian at every voxel, at one scale.

    Parameters
    ----------
    volume : (Z, Y, X) array
        Image (HU for CT).
    spacing : (3,) float
        Voxel size in mm ``(z, y, x)``.
    sigma_mm : float
        Gaussian sigma in mm (``sigma_mm / spacing[a]`` voxels along axis ``a``).
    truncate : float
        Kernel radius in sigmas (at least 1.5 voxels with ``"gaussian"``).
    derivatives : ``"gaussian"`` or ``"difference"``
        Moment-corrected sampled Gaussian derivatives, or Gaussian smoothing
        followed by ``np.gradient`` twice (scikit-image's
        ``hessian_matrix(..., use_gaussian_derivatives=False)``).
    normalized : bool
        Scale-normalise: multiply ``d2 / (da db)`` by ``s_a s_b`` with
        ``s_a = max(sigma_mm, min_scale_voxels * spacing[a])`` (``sigma_mm**2``
        by default).
    min_scale_voxels : float
        Smallest normalisation scale along an axis, in voxels of that axis.
    clip_hu : (2,) float, optional
        Clip the volume to this range first.
    slab : int
        Slices per z-chunk (a halo of the kernel radius is added).
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ``"mps"`` or ``"auto"``.
    progress : ProgressCallback, optional
        Called as ``progress(done, total, stage)`` after each slab; raise
        :class:`~diffseglung_core.errors.Cancelled` from it to stop.

    Returns
    -------
    (3, Z, Y, X) float32
        ``l1, l2, l3`` with ``|l1| <= |l2| <= |l3|``, in units of the volume
        per mm^2 (times mm^2, i.e. HU, when ``normalized``).
    """
    sp, (sigma,) = _check(volume, spacing, [sigma_mm])
    dev = _resolve_device(device)
    vol = np.asarray(volume)
    z, y, x = vol.shape
    box = (slice(0, z), slice(0, y), slice(0, x))
    sl = _Slabber(vol, sp, box, (sigma,), math.inf, truncate, derivatives, clip_hu, dev)
    out = np.empty((3,) + vol.shape, np.float32)
    ranges = _slab_ranges(0, z, slab)
    for i, (s, e) in enumerate(ranges):
        z_in, t = sl.slab_input(s, e)
        plans = sl.plans(z_in, (s, e), sigma)
        norm = _norm(sp, sigma, min_scale_voxels) if normalized else (1.0, 1.0, 1.0)
        comps = _derivatives_on_grid(t, plans, norm, dev)
        ev = _upsample(_eigenvalues_chunked(comps), plans, dev)
        out[:, s:e] = ev.cpu().numpy()
        report(progress, i + 1, len(ranges), "Hessian eigenvalues")
    return out


def _structure_slabs(vol, spacing, out_box, sigmas, samples_per_sigma, min_scale_voxels, alpha,
                     beta, gamma, c_hu, truncate, clip_hu, slab, device, progress, stage,
                     tube_only=False):
    """Yield ``(s, e, maps)`` for each z-slab of ``out_box``.

    ``maps`` is a (4, e - s, Y_out, X_out) float32 tensor (reused: copy it
    before the next slab); ``tube_only``: (1, ...), the tube map, from the
    Hessian alone (no gradient, no other measure).
    """
    sp, sig = _check(vol, spacing, sigmas)
    dev = _resolve_device(device)
    sl = _Slabber(vol, sp, out_box, sig, float(samples_per_sigma), truncate, "gaussian", clip_hu,
                  dev)
    ranges = _slab_ranges(out_box[0].start, out_box[0].stop, slab)
    buf = None   # one buffer for every slab: no fresh pages per slab
    for i, (s, e) in enumerate(ranges):
        z_in, t = sl.slab_input(s, e)
        for k, sigma in enumerate(sig):
            plans = sl.plans(z_in, (s, e), sigma)
            comps = _derivatives_on_grid(t, plans, _norm(sp, sigma, min_scale_voxels), dev,
                                         _COMPONENTS if tube_only else _COMPONENTS + _GRADIENT)
            m = _eig_measures(comps, alpha, beta, gamma, c_hu)
            del comps
            m = _upsample(m, plans, dev)
            if buf is None:
                n_z = min(slab, out_box[0].stop - out_box[0].start)
                buf = torch.empty((1 if tube_only else len(STRUCTURE_NAMES), n_z) + tuple(m.shape[2:]),
                                  dtype=m.dtype, device=dev)
            best = buf[:, :e - s]
            if tube_only:
                if k == 0:
                    best.copy_(m)
                else:
                    torch.maximum(best, m, out=best)
            elif k == 0:
                best[:3] = m
                best[3] = torch.where(m[0] >= MIN_TUBE_FOR_SCALE, sigma, 0.0)
            else:
                best[3].masked_fill_((m[0] > best[0]) & (m[0] >= MIN_TUBE_FOR_SCALE), sigma)
                torch.maximum(best[:3], m, out=best[:3])
        yield s, e, best
        report(progress, i + 1, len(ranges), stage)


@torch.no_grad()
def structure_maps(
    hu: np.ndarray,
    spacing: Sequence[float],
    *,
    sigmas_mm: Sequence[float] = DEFAULT_SIGMAS_MM,
    samples_per_sigma: float = 2.0,
    min_scale_voxels: float = 0.7,
    alpha: float = 0.5,
    beta: float = 0.5,
    gamma: float = 0.5,
    c_hu: float = 50.0,
    truncate: float = 3.0,
    clip_hu: Optional[tuple[float, float]] = HU_CLIP,
    slab: int = 16,
    device: Device = "cpu",
    progress: Optional[ProgressCallback] = None,
    names: Sequence[str] = STRUCTURE_NAMES,
) -> dict[str, np.ndarray]:
    """Tube, blob and plate measures of every voxel of a (sub-)volume.

    Parameters
    ----------
    hu : (Z, Y, X) array
        CT in HU.
    spacing : (3,) float
        Voxel size in mm ``(z, y, x)``.
    sigmas_mm : sequence of float
        Gaussian scales (mm); the measures are the maximum over scales.
    samples_per_sigma : float
        Scale ``sigma`` is computed on a grid of step
        ``max(spacing, sigma / samples_per_sigma)`` mm and interpolated back;
        ``math.inf``: on the voxel grid.
    min_scale_voxels : float
        Smallest normalisation scale along an axis, in voxels of that axis
        (matters across thick slices only; see the module notes).
    alpha, beta : float
        Frangi's sensitivities to ``R_A`` and ``R_B``.
    gamma : float
        Sensitivity of the plate measure to ``R_G = |gradient| / |l3|`` (edges).
    c_hu : float
        Contrast constant (HU) of the term ``1 - exp(-S^2 / (2 c^2))``.
    truncate : float
        Kernel radius in sigmas.
    clip_hu : (2,) float, optional
        HU are clipped to this range first (bone and metal would dominate).
    slab : int
        Output slices per z-chunk.
    device : str or torch.device
        ``"cpu"``, ``"cuda"``, ``"mps"`` or ``"auto"``.
    progress : ProgressCallback, optional
        Called as ``progress(done, total, stage)`` after each slab; raise
        :class:`~diffseglung_core.errors.Cancelled` from it to stop.
    names : sequence of str
        The maps to return, of :data:`STRUCTURE_NAMES`. ``("tube",)`` alone is
        computed from the Hessian alone (the gradient serves the plate measure):
        the same values, about two thirds of the work and a quarter of the memory.

    Returns
    -------
    dict of str to (Z, Y, X) float32
        Keys ``names``: ``tube``, ``blob``, ``plate`` in ``[0, 1]`` and
        ``tube_scale_mm`` (mm; 0 where no scale shows a tube).
    """
    vol = np.asarray(hu)
    _check(vol, spacing, sigmas_mm)
    names = tuple(names)
    if not names or not set(names) <= set(STRUCTURE_NAMES):
        raise ValueError(f"names must be some of {STRUCTURE_NAMES}, got {names!r}")
    computed = ("tube",) if names == ("tube",) else STRUCTURE_NAMES
    box = tuple(slice(0, n) for n in vol.shape)
    out = np.empty((len(computed),) + vol.shape, np.float32)
    for s, e, maps in _structure_slabs(vol, spacing, box, sigmas_mm, samples_per_sigma,
                                       min_scale_voxels, alpha, beta, gamma, c_hu,
                                       truncate, clip_hu, slab, device, progress,
                                       "structure maps", tube_only=computed == ("tube",)):
        out[:, s:e] = maps.cpu().numpy()
    return {name: m for name, m in zip(computed, out) if name in names}


@torch.no_grad()
def structure_features(
    hu: np.ndarray,
    lung: np.ndarray,
    spacing: Sequence[float],
    *,
    sigmas_mm: Sequence[float] = DEFAULT_SIGMAS_MM,
    samples_per_sigma: float = 2.0,
    min_scale_voxels: float = 0.7,
    alpha: float = 0.5,
    beta: float = 0.5,
    gamma: float = 0.5,
    c_hu: float = 50.0,
    truncate: float = 3.0,
    clip_hu: Optional[tuple[float, float]] = HU_CLIP,
    slab: int = 16,
    device: Device = "cpu",
    progress: Optional[ProgressCallback] = None,
) -> np.ndarray:
    """Tube, blob and plate measures of every lung voxel, as feature rows.

    The measures are computed in the lung's bounding box (plus the kernels'
    halo of real image around it, so the chest wall and mediastinum count as
    they do in :func:`structure_maps`) and equal ``structure_maps(hu, ...)``
    at the lung voxels to float rounding.

    Parameters
    ----------
    hu : (Z, Y, X) array
        CT in HU.
    lung : (Z, Y, X) array
        Nonzero inside the lung.
    spacing, sigmas_mm, samples_per_sigma, min_scale_voxels, alpha, beta, gamma, c_hu, truncate, \
clip_hu, slab, device, progress
        As in :func:`structure_maps`.

    Returns
    -------
    (N, 4) float32
        Columns :data:`STRUCTURE_NAMES` (``tube``, ``blob``, ``plate`` in
        ``[0, 1]``; ``tube_scale_mm`` in mm), rows in ``np.nonzero(lung)`` order.

    Raises
    ------
    NoLungFoundError
        The mask is empty.
    """
    vol = np.asarray(hu)
    lung = np.asarray(lung) > 0
    if lung.shape != vol.shape:
        raise ValueError(f"lung mask shape {lung.shape} != volume shape {vol.shape}")
    if not lung.any():
        raise NoLungFoundError("the lung mask is empty")
    box = lung_bbox(lung)
    out = np.empty((int(lung.sum()), len(STRUCTURE_NAMES)), np.float32)
    row = 0
    for s, e, maps in _structure_slabs(vol, spacing, box, sigmas_mm, samples_per_sigma,
                                       min_scale_voxels, alpha, beta, gamma, c_hu,
                                       truncate, clip_hu, slab, device, progress,
                                       "structure features"):
        inner = lung[s:e, box[1], box[2]]
        k = int(inner.sum())
        if k:
            sel = torch.as_tensor(inner, device=maps.device)
            out[row:row + k] = maps[:, sel].T.cpu().numpy()
        row += k
    return out
