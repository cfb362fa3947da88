"""Sobel-Diffusion Fusion: edge-aware smoothing of label posteriors, then clean-up.

Voxel-wise clustering gives ragged boundaries and isolated voxels. Sobel-
Diffusion Fusion smooths the label posteriors *along* tissue but not *across*
density edges:

1. **Sobel.** The 3D Sobel gradient magnitude ``G`` of the HU (after a light
   Gaussian of ``smooth_mm``), in HU per mm (each axis divided by its spacing).
2. **Edge stopping.** A conductance ``c = 1 / (1 + (G / kappa)^2)``
   (Perona-Malik); ``kappa`` (HU/mm) is the gradient at which ``c = 1/2``.
   By default (``kappa=None``) it is ``kappa_noise`` times the median gradient
   inside the lung (the noise level of this scan), at least 20 HU/mm: lesion
   borders (hundreds of HU over 1-2 mm) get ``c`` near 0, parenchymal noise
   near 1, on smooth and on sharp kernels alike.
3. **Diffusion.** ``iterations`` explicit steps of
   ``p += step * sum_faces w_axis * min(c_i, c_j) * (p_j - p_i)`` over the 6
   face neighbours, only between two lung voxels (no flux through the lung
   boundary). ``w_axis = (min spacing / spacing_axis)^2`` makes it spacing
   aware; ``step <= 1/6`` keeps it stable and mass-preserving.
4. **Argmax** of the diffused posteriors inside the lung. With
   ``keep_emphysema`` (the engine sets it when the structure evidence decided
   emphysema as regions, :mod:`.evidence`) emphysema is not moved: the edges
   of those regions are too faint (about 80 HU against healthy lung) for the
   edge stopping, so the diffusion would erode small ones. A voxel whose
   posteriors' argmax is emphysema stays emphysema, and no other voxel
   becomes emphysema.
5. **Small components.** Connected components (6-connectivity) of one label
   smaller than ``min_component_mm3`` take the label of the nearest voxel
   outside any small component (with ``keep_emphysema``, emphysema is neither
   removed nor spread: the evidence judged the size of its regions).

Defaults: ``smooth_mm=0.7``, ``kappa=None`` (``kappa_noise=3``), ``iterations=4``,
``step=1/6``, ``min_component_mm3=20``. The work is done in z-slabs of the
lung's bounding box with a halo of ``iterations`` slices (exact, bounded memory).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy import ndimage as ndi

from ..binary import label
from ..labels import Tissue
from ..lung.coarse import bbox
from ..parallel import thread_map
from ..progress import ProgressCallback, report
from .features import lung_bbox
from .options import RefineOptions

_EMPHYSEMA = int(Tissue.EMPHYSEMA)

__all__ = ["sobel_magnitude", "edge_conductance", "diffuse_posteriors",
           "remove_small_components", "fill_from_nearest", "refine_labels", "refine_slice", "argmax_labels"]


def sobel_magnitude(hu: np.ndarray, spacing: Sequence[float], *, smooth_mm: float = 0.7) -> np.ndarray:
    """(Z, Y, X) float32 3D Sobel gradient magnitude of ``hu`` in HU/mm."""
    h = np.asarray(hu, np.float32)
    if smooth_mm > 0:
        h = ndi.gaussian_filter(h, [smooth_mm / float(s) for s in spacing], mode="nearest")
    g2 = np.zeros(h.shape, np.float32)
    for ax, s in enumerate(spacing):
        if h.shape[ax] < 2:
            continue
        # the 3x3x3 Sobel applied to a unit slope gives 32
        d = ndi.sobel(h, axis=ax, mode="nearest") / (32.0 * float(s))
        g2 += d * d
    return np.sqrt(g2)


def edge_conductance(grad: np.ndarray, kappa: float = 60.0) -> np.ndarray:
    """Perona-Malik conductance ``1 / (1 + (grad / kappa)^2)`` (float32, 0..1)."""
    return (1.0 / (1.0 + (np.asarray(grad, np.float32) / np.float32(kappa)) ** 2)).astype(np.float32)


def diffuse_posteriors(prob: np.ndarray, cond: np.ndarray, lung: np.ndarray,
                       spacing: Sequence[float], *, iterations: int = 4,
                       step: float = 1.0 / 6.0) -> np.ndarray:
    """Edge-stopping diffusion of posteriors inside the lung.

    Parameters
    ----------
    prob : (C, Z, Y, X) float32 posteriors (modified copy returned).
    cond : (Z, Y, X) float32 conductance (see :func:`edge_conductance`).
    lung : (Z, Y, X) bool; no flux leaves it.
    spacing : mm ``(z, y, x)``.
    """
    p = np.array(prob, np.float32, copy=True)
    lung = np.asarray(lung, bool)
    smin = min(spacing)
    faces = []
    for ax in range(3):
        if lung.shape[ax] < 2:
            continue
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[ax], b[ax] = slice(None, -1), slice(1, None)
        a, b = tuple(a), tuple(b)
        w = (smin / float(spacing[ax])) ** 2
        c = np.minimum(cond[a], cond[b]) * (lung[a] & lung[b]) * np.float32(w * step)
        faces.append(((slice(None),) + a, (slice(None),) + b, c.astype(np.float32)))
    delta, buffer = np.empty_like(p), np.empty_like(p)
    for _ in range(int(iterations)):
        delta.fill(0.0)
        for a, b, c in faces:
            flux = np.subtract(p[b], p[a], out=buffer[a])  # in place: no fresh pages to touch
            flux *= c
            delta[a] += flux
            delta[b] -= flux
        p += delta
    return p


def argmax_labels(label_prob_vox: np.ndarray, lung: np.ndarray) -> np.ndarray:
    """(Z, Y, X) uint8 labels: argmax over labels 1..5 of (N, 6) voxel posteriors, 0 outside."""
    out = np.zeros(lung.shape, np.uint8)
    out[np.asarray(lung) > 0] = (label_prob_vox[:, 1:].argmax(1) + 1).astype(np.uint8)
    return out


def remove_small_components(labels: np.ndarray, spacing: Sequence[float], *,
                            min_component_mm3: float = 20.0,
                            fixed: Sequence[int] = ()) -> np.ndarray:
    """Relabel components smaller than ``min_component_mm3`` with their nearest other label.

    ``labels`` is (Z, Y, X) uint8 with 0 outside the lung (0 is never changed
    nor used to fill); the labels in ``fixed`` are neither changed nor used to
    fill either. Returns a new array.
    """
    labels = np.asarray(labels)
    min_vox = float(min_component_mm3) / float(np.prod(spacing))
    if min_vox <= 1 or not labels.any():
        return labels.copy()
    box = lung_bbox(labels > 0)
    sub = labels[box]

    def too_small(lab: int) -> np.ndarray:
        comp, n = label(sub == lab)
        sizes = np.bincount(comp.ravel(), minlength=n + 1)
        tiny = sizes < min_vox
        tiny[0] = False
        return tiny[comp]

    small = np.zeros(sub.shape, bool)
    for part in thread_map(too_small, [lab for lab in np.unique(sub) if lab != 0 and lab not in fixed]):
        small |= part
    out = labels.copy()
    out[box] = fill_from_nearest(sub, small, (sub > 0) & ~small & ~np.isin(sub, fixed), spacing)
    return out


def fill_from_nearest(labels: np.ndarray, change: np.ndarray, source: np.ndarray,
                      spacing: Sequence[float], *, margin: int = 4) -> np.ndarray:
    """``labels`` with every ``change`` voxel given the label of its nearest ``source`` voxel.

    Each connected region of ``change`` looks for its sources in its box grown
    by ``margin`` voxels, grown again until every voxel's nearest source is
    nearer than anything outside the box (small regions of a large scan cost
    their boxes, not the scan). Between equally near sources the choice is
    arbitrary.

    Parameters
    ----------
    labels : (Z, Y, X) uint8
    change, source : (Z, Y, X) bool
        Voxels to relabel; voxels whose labels may be taken (distances in mm).
    spacing : (3,) float, mm.
    margin : int
        First growth of each region's box, in voxels.

    Returns
    -------
    (Z, Y, X) uint8
        A new array (a copy of ``labels`` when there is nothing to change or no source).
    """
    out = labels.copy()
    if not change.any() or not source.any():
        return out
    sp = np.asarray(spacing, float)
    regions, _ = label(change)

    def fill(i: int, where: tuple[slice, ...]) -> None:
        grow = margin
        while True:
            box = tuple(slice(max(w.start - grow, 0), min(w.stop + grow, n))
                        for w, n in zip(where, labels.shape))
            src = source[box]
            own = regions[box] == i
            if src.any():
                dist, idx = ndi.distance_transform_edt(~src, sampling=sp, return_indices=True)
                pts = np.nonzero(own)
                # anything outside the box lies at least this far (the array's edge: nothing)
                reach = np.full(len(pts[0]), np.inf)
                for k, (b, n) in enumerate(zip(box, labels.shape)):
                    if b.start > 0:
                        reach = np.minimum(reach, (pts[k] + 1) * sp[k])
                    if b.stop < n:
                        reach = np.minimum(reach, (b.stop - b.start - pts[k]) * sp[k])
                if (dist[pts] <= reach).all():
                    out[box][own] = labels[box][tuple(j[pts] for j in idx)]
                    return
            grow *= 2

    thread_map(lambda item: fill(*item), list(enumerate(ndi.find_objects(regions), start=1)))
    return out


def refine_labels(
    label_prob_vox: np.ndarray,
    lung: np.ndarray,
    hu: np.ndarray,
    spacing: Sequence[float],
    *,
    kappa: Optional[float] = RefineOptions.kappa,
    kappa_noise: float = RefineOptions.kappa_noise,
    iterations: int = RefineOptions.iterations,
    step: float = RefineOptions.step,
    smooth_mm: float = RefineOptions.smooth_mm,
    min_component_mm3: float = RefineOptions.min_component_mm3,
    keep_emphysema: bool = False,
    slab: int = 48,
    progress: Optional[ProgressCallback] = None,
) -> np.ndarray:
    """Sobel-Diffusion Fusion of voxel label posteriors (see the module docstring).

    Parameters
    ----------
    label_prob_vox : (N, 6) ndarray
        Label posteriors of the lung voxels (``np.nonzero(lung)`` order).
    lung : (Z, Y, X) ndarray
        Lung mask (nonzero inside).
    hu : (Z, Y, X) ndarray
        HU.
    spacing : (3,) sequence of float
        mm ``(z, y, x)``.
    kappa, kappa_noise, iterations, step, smooth_mm, min_component_mm3
        See :class:`~.options.RefineOptions` (the defaults come from it).
    keep_emphysema : bool
        Emphysema (argmax of ``label_prob_vox``) is kept as it is, neither
        eroded nor grown (step 4 of the module notes).
    slab : int
        Slices of the lung's box processed at a time (bounded memory).
    progress : callable, optional
        ``progress(done, total, stage)``.

    Returns
    -------
    (Z, Y, X) uint8 ndarray
        Labels, 0 outside the lung.

    References
    ----------
    .. [1] Khiati, Brillet, Fetita. DiffSegLung. arXiv:2605.11758.
    """
    lung = np.asarray(lung) > 0
    box = lung_bbox(lung)
    lung_b = lung[box]
    n_lab = label_prob_vox.shape[1] - 1
    # voxel rows of each z-plane of the box, in np.nonzero order
    per_z = lung_b.reshape(lung_b.shape[0], -1).sum(1)
    row_start = np.concatenate([[0], np.cumsum(per_z)])
    halo = int(iterations) + 2
    nz = lung_b.shape[0]
    out = np.zeros(lung.shape, np.uint8)
    if kappa is None:
        mid = slice(max(0, nz // 2 - slab // 2), min(nz, nz // 2 + slab // 2 + 1))
        g = sobel_magnitude(np.asarray(hu[box][mid], np.float32), spacing, smooth_mm=smooth_mm)
        inner = g[lung_b[mid]]
        kappa = max(20.0, kappa_noise * float(np.median(inner))) if inner.size else 60.0
    starts = list(range(0, nz, slab))
    done = []

    # the Sobel magnitude of a lung voxel reads the HU within the smoothing's reach and one
    # voxel further: each slab works in the box of its lung grown by that much
    reach = [int(4.0 * smooth_mm / float(sp) + 0.5) + 2 for sp in spacing[1:]]

    def fuse(s: int) -> None:  # slabs are independent: one per thread
        e = min(s + slab, nz)
        a, b = max(0, s - halo), min(nz, e + halo)
        lungs = lung_b[a:b].any(axis=0)
        plane = (slice(None),) + (bbox(lungs, reach) if lungs.any() else (slice(None),) * 2)
        m = lung_b[a:b][plane]
        h = np.asarray(hu[box][a:b][plane], np.float32)
        cond = edge_conductance(sobel_magnitude(h, spacing, smooth_mm=smooth_mm), kappa)
        prob = np.zeros((n_lab,) + m.shape, np.float32)
        rows = label_prob_vox[row_start[a]:row_start[b], 1:]
        prob[:, m] = rows.T
        kept = (prob.argmax(0) + 1 == _EMPHYSEMA) & m if keep_emphysema else None
        prob = diffuse_posteriors(prob, cond, m, spacing, iterations=iterations, step=step)
        if kept is not None:
            prob[_EMPHYSEMA - 1] = -1.0
        lab = (prob.argmax(0) + 1).astype(np.uint8) * m
        if kept is not None:
            lab[kept] = _EMPHYSEMA
        out[box][s:e][plane] = lab[s - a:e - a]
        done.append(s)
        report(progress, len(done), len(starts), "sobel-diffusion fusion")

    thread_map(fuse, starts)
    if min_component_mm3 > 0:
        out = remove_small_components(out, spacing, min_component_mm3=min_component_mm3,
                                      fixed=(_EMPHYSEMA,) if keep_emphysema else ())
    return out


def refine_slice(label_prob_vox: np.ndarray, lung: np.ndarray, hu: np.ndarray,
                 spacing: Sequence[float], z: int, **options) -> np.ndarray:
    """Sobel-Diffusion Fusion of one axial slice, for a quick preview.

    Runs :func:`refine_labels` on the slab of slices within ``iterations + 2``
    of ``z`` only (the diffusion cannot reach further), so a preview costs a
    few slices, not the scan. The small-component clean-up sees only the slab,
    so a preview may differ from the full refinement where a component crosses
    the slab's ends.

    Parameters
    ----------
    label_prob_vox : (N, 6) ndarray
        Label posteriors of the lung voxels, ``np.nonzero(lung)`` order.
    lung : (Z, Y, X) ndarray
        Lung mask (nonzero inside).
    hu : (Z, Y, X) ndarray
        HU.
    spacing : (3,) sequence of float
        mm ``(z, y, x)``.
    z : int
        The slice.
    **options
        Keyword arguments of :func:`refine_labels` (``kappa``, ``iterations``, ...).

    Returns
    -------
    (Y, X) uint8 ndarray
        Labels of slice ``z``.
    """
    lung = np.asarray(lung) > 0
    if not 0 <= z < lung.shape[0]:
        raise IndexError(f"slice {z} outside 0..{lung.shape[0] - 1}")
    halo = int(options.get("iterations", RefineOptions.iterations)) + 2
    a, b = max(0, z - halo), min(lung.shape[0], z + halo + 1)
    if not lung[z].any():
        return np.zeros(lung.shape[1:], np.uint8)
    per_z = lung.reshape(lung.shape[0], -1).sum(1)
    start = int(per_z[:a].sum())
    rows = np.asarray(label_prob_vox)[start:start + int(per_z[a:b].sum())]
    slab = refine_labels(rows, lung[a:b], np.asarray(hu)[a:b], spacing, **options)
    return slab[z - a]
