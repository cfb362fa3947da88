"""Select one object from a click (or a box) and relabel it: a mass, not the vessels beside it.

A radiologist correcting a label map thinks in objects: "this mass is
consolidation". Clusters and label remaps cannot say that when the mass and
the hilar vessels share a cluster. :func:`select_object` returns the 3D
connected region around a clicked voxel whose density (or current label) is
like the voxel's, and :func:`relabel_object` the voxels it changes.

Method
------
1. **Search region**: a box of ``search_radius_mm`` around the click (or the
   given box), inside the lung labels (label > 0).
2. **Similar voxels**: smoothed HU (Gaussian of ``smooth_mm``) within
   ``hu_tolerance`` of the clicked voxel's smoothed HU, or, with
   ``criterion="label"``, the clicked voxel's current label.
3. **Thick core**: the voxels of the similar mask deeper than
   ``min_thickness_mm / 2`` from its border (Euclidean distance in mm). Vessels,
   bronchial walls and septa are thinner than that and drop out; a mass or a
   consolidated segment keeps a core. The core component under (or nearest to)
   the click is kept.
4. **Object**: the similar voxels within ``min_thickness_mm / 2`` of that core,
   i.e. the opening of the similar mask restricted to the clicked component:
   the object's own border comes back, vessels touching it stay out.
   ``min_thickness_mm = 0`` skips steps 3-4 (plain connected region).
5. **Edge**: smoothing lowers the HU of the object's outer voxels; voxels
   within ``2 * smooth_mm`` of the object whose own (unsmoothed) HU is within
   the tolerance join it.

Everything is in mm and mL, so the same settings serve thin and thick slices.
The work is done in the search box only: about 0.1-1 s on a 512 x 512 x 64
scan (see ``benchmarks/bench_interaction.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage as ndi

from ..binary import distance_inside, label
from ..labels import TISSUE_NAMES

__all__ = ["ObjectSelection", "select_object", "relabel_object", "box_from_corners", "CRITERIA"]

#: Ways of saying which voxels are "like" the clicked one.
CRITERIA = ("hu", "label")

Box = Sequence[Sequence[int]]


@dataclass
class ObjectSelection:
    """The object found by :func:`select_object`.

    Attributes
    ----------
    box : tuple of slice
        Where the object lies in the volume (its bounding box).
    mask : (z, y, x) bool ndarray
        The object inside ``box``.
    seed : (3,) tuple of int
        The voxel it grew from.
    spacing : (3,) tuple of float
        mm ``(z, y, x)``.
    reference_hu : float
        Smoothed HU of the seed (the centre of the HU tolerance).
    mean_hu : float
        Mean HU of the object.
    label_counts : dict
        Current label -> voxels of the object (when labels were given).
    at_search_edge : bool
        The object touches the edge of the search region: it may go on beyond
        it (raise ``search_radius_mm``).
    message : str
        One line for the user: size, density, current labels, warnings.
    """

    box: tuple
    mask: np.ndarray
    seed: tuple
    spacing: tuple
    reference_hu: float = float("nan")
    mean_hu: float = float("nan")
    label_counts: Optional[dict] = None
    at_search_edge: bool = False
    message: str = ""

    @property
    def n_voxels(self) -> int:
        return int(np.count_nonzero(self.mask))

    @property
    def volume_ml(self) -> float:
        return self.n_voxels * float(np.prod(self.spacing)) / 1000.0

    @property
    def empty(self) -> bool:
        return self.n_voxels == 0

    def full_mask(self, shape: Sequence[int]) -> np.ndarray:
        """The object as a (Z, Y, X) bool mask of the whole volume."""
        out = np.zeros(tuple(int(s) for s in shape), bool)
        out[self.box] = self.mask
        return out

    def indices(self) -> tuple[np.ndarray, ...]:
        """Volume indices ``(z, y, x)`` of the object's voxels (compact integer dtype)."""
        local = np.nonzero(self.mask)
        dtype = _index_dtype(max(s.stop for s in self.box))
        return tuple((i + s.start).astype(dtype) for i, s in zip(local, self.box))


def _index_dtype(n: int) -> type:
    return np.uint16 if n <= np.iinfo(np.uint16).max else np.int64


def _search_box(shape, seed, spacing, radius_mm: float, box: Optional[Box]) -> tuple[slice, ...]:
    if box is not None:
        lo, hi = np.asarray(box[0], int), np.asarray(box[1], int)
        return tuple(slice(max(0, int(min(a, b))), min(n, int(max(a, b)) + 1))
                     for a, b, n in zip(lo, hi, shape))
    out = []
    for c, s, n in zip(seed, spacing, shape):
        r = int(np.ceil(radius_mm / float(s)))
        out.append(slice(max(0, c - r), min(n, c + r + 1)))
    return tuple(out)


def _smooth(hu: np.ndarray, spacing, smooth_mm: float) -> np.ndarray:
    h = np.asarray(hu, np.float32)
    if smooth_mm <= 0:
        return h
    sigma = [smooth_mm / float(s) for s in spacing]
    sigma = [s if s >= 0.3 else 0.0 for s in sigma]  # below a third of a voxel: nothing to do
    return ndi.gaussian_filter(h, sigma, mode="nearest") if any(sigma) else h


def _component_at(mask: np.ndarray, seed: tuple, spacing, reach_mm: float) -> np.ndarray:
    """The connected component of ``mask`` holding ``seed``, or the one nearest to it within ``reach_mm``."""
    if not mask.any():
        return mask
    comp, n = label(mask)
    lab = comp[seed]
    if lab == 0:
        r = [max(1, int(np.ceil(reach_mm / float(s)))) for s in spacing]
        win = tuple(slice(max(0, c - k), c + k + 1) for c, k in zip(seed, r))
        local = comp[win]
        if not local.any():
            return np.zeros_like(mask)
        pts = np.argwhere(local > 0)
        offset = np.array([w.start for w in win])
        d = (((pts + offset - np.asarray(seed)) * np.asarray(spacing, float)) ** 2).sum(1)
        best = pts[int(d.argmin())]
        if d.min() > reach_mm ** 2:
            return np.zeros_like(mask)
        lab = local[tuple(best)]
    return comp == lab


def select_object(
    hu: np.ndarray,
    seed: Optional[Sequence[int]] = None,
    *,
    spacing: Sequence[float],
    labels: Optional[np.ndarray] = None,
    within: Optional[np.ndarray] = None,
    criterion: str = "hu",
    hu_tolerance: float = 200.0,
    min_thickness_mm: float = 6.0,
    search_radius_mm: float = 80.0,
    smooth_mm: float = 1.0,
    box: Optional[Box] = None,
) -> ObjectSelection:
    """The 3D object around a clicked voxel (see the module docstring).

    Parameters
    ----------
    hu : (Z, Y, X) ndarray
        CT in HU.
    seed : (3,) sequence of int, optional
        The clicked voxel ``(z, y, x)``; default the centre of ``box``.
    spacing : (3,) sequence of float
        mm ``(z, y, x)``.
    labels : (Z, Y, X) integer ndarray, optional
        The current labels: the object stays where they are nonzero (the lung)
        and ``criterion="label"`` compares with them.
    within : (Z, Y, X) ndarray, optional
        Another mask (nonzero inside) the object must stay in, e.g. the lung.
    criterion : {"hu", "label"}
        Like the seed in smoothed HU (within ``hu_tolerance``) or in label.
    hu_tolerance : float
        Half-width (HU) of the accepted smoothed-HU range around the seed's.
    min_thickness_mm : float
        Structures thinner than this (vessels, walls) are left out; 0: keep
        the whole connected region.
    search_radius_mm : float
        Half-size (mm) of the search box around the seed (ignored with ``box``).
    smooth_mm : float
        Gaussian sigma (mm) of the HU before comparing.
    box : ((z0, y0, x0), (z1, y1, x1)), optional
        Corners (voxels, inclusive) of the region to search, e.g. a box drawn
        around the object; it replaces the search radius.

    Returns
    -------
    ObjectSelection

    Raises
    ------
    ValueError
        Unknown criterion, no seed and no box, or a seed outside the volume.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    hu = np.asarray(hu)
    shape = hu.shape
    spacing = tuple(float(s) for s in spacing)
    if seed is None:
        if box is None:
            raise ValueError("give a seed voxel or a box")
        seed = tuple(int(round((int(a) + int(b)) / 2)) for a, b in zip(*box))
    seed = tuple(int(round(float(s))) for s in seed)
    if len(seed) != 3 or not all(0 <= s < n for s, n in zip(seed, shape)):
        raise ValueError(f"seed {seed} outside the volume {shape}")
    region = _search_box(shape, seed, spacing, search_radius_mm, box)
    if not all(r.start <= s < r.stop for r, s in zip(region, seed)):
        raise ValueError(f"seed {seed} outside the box {region}")
    local_seed = tuple(s - r.start for s, r in zip(seed, region))
    allowed = np.ones([r.stop - r.start for r in region], bool)
    lab = None
    if labels is not None:
        lab = np.asarray(labels)[region]
        allowed &= lab > 0
    if within is not None:
        allowed &= np.asarray(within)[region] > 0
    # smooth with a margin of real image so the box edges are not darkened
    margin = [int(np.ceil(3 * smooth_mm / s)) if smooth_mm / s >= 0.3 else 0 for s in spacing]
    outer = tuple(slice(max(0, r.start - m), min(n, r.stop + m)) for r, m, n in zip(region, margin, shape))
    inner = tuple(slice(r.start - o.start, r.start - o.start + (r.stop - r.start))
                  for r, o in zip(region, outer))
    smooth = _smooth(hu[outer], spacing, smooth_mm)[inner]
    ref = float(smooth[local_seed])
    if criterion == "hu":
        similar = np.abs(smooth - ref) <= float(hu_tolerance)
    else:
        similar = lab == lab[local_seed] if lab is not None else np.ones_like(allowed)
    similar &= allowed

    if not allowed[local_seed]:
        similar[:] = False  # a click outside the lung (or the mask) selects nothing
    connected = _component_at(similar, local_seed, spacing, reach_mm=2 * max(spacing))
    obj = connected
    radius = 0.5 * float(min_thickness_mm)
    if radius > 0 and connected.any():
        sub = ndi.find_objects(connected.astype(np.uint8))[0]
        pad = [int(np.ceil(radius / s)) + 1 for s in spacing]
        sub = tuple(slice(max(0, a.start - p), min(n, a.stop + p))
                    for a, p, n in zip(sub, pad, connected.shape))
        piece = connected[sub]
        depth = distance_inside(piece, spacing)
        core = depth > radius
        seed_in = tuple(c - a.start for c, a in zip(local_seed, sub))
        core = _component_at(core, seed_in, spacing, reach_mm=radius + 2 * max(spacing))
        if core.any():
            reach = distance_inside(~core, spacing) <= radius + 1e-6
            obj = np.zeros_like(connected)
            obj[sub] = piece & reach
        else:
            obj = np.zeros_like(connected)
    if criterion == "hu" and smooth_mm > 0 and obj.any():
        # smoothing blurs the object's border below the tolerance: take back the voxels next
        # to it whose own HU is within the tolerance (partial volume of the edge)
        rim = distance_inside(~obj, spacing) <= 2.0 * smooth_mm
        raw = np.asarray(hu[region], np.float32)
        obj = obj | (rim & allowed & (np.abs(raw - ref) <= float(hu_tolerance)))
    at_edge = bool(box is None and obj.any() and any(
        (obj.take(0, axis=a).any() and region[a].start > 0)
        or (obj.take(-1, axis=a).any() and region[a].stop < shape[a]) for a in range(3)))
    if obj.any():
        found = ndi.find_objects(obj.astype(np.uint8))[0]
        box_out = tuple(slice(r.start + f.start, r.start + f.stop) for r, f in zip(region, found))
        mask = obj[found]
        mean_hu = float(np.asarray(hu[box_out], np.float64)[mask].mean())
        counts = None
        if lab is not None:
            values = lab[found][mask]
            counts = {int(v): int(c) for v, c in enumerate(np.bincount(values, minlength=6)) if c}
    else:
        box_out = tuple(slice(s, s) for s in seed)
        mask = np.zeros((0, 0, 0), bool)
        mean_hu, counts = float("nan"), ({} if lab is not None else None)
    selection = ObjectSelection(box=box_out, mask=mask, seed=seed, spacing=spacing,
                                reference_hu=ref, mean_hu=mean_hu, label_counts=counts,
                                at_search_edge=at_edge)
    selection.message = _describe(selection, criterion, min_thickness_mm, labels is not None)
    return selection


def _describe(sel: ObjectSelection, criterion: str, min_thickness_mm: float, has_labels: bool) -> str:
    if sel.empty:
        if has_labels and sel.label_counts == {}:
            why = "the voxel is outside the lung labels, or nothing there is thicker than "
        else:
            why = "nothing around the voxel is thicker than "
        return f"no object: {why}{min_thickness_mm:g} mm (lower the minimum thickness)"
    text = f"{sel.volume_ml:.1f} mL ({sel.n_voxels} voxels), mean {sel.mean_hu:.0f} HU"
    if sel.label_counts:
        total = sum(sel.label_counts.values())
        parts = [f"{TISSUE_NAMES[k]} {100.0 * v / total:.0f}%"
                 for k, v in sorted(sel.label_counts.items(), key=lambda kv: -kv[1])]
        text += "; now " + ", ".join(parts)
    if sel.at_search_edge:
        text += "; reaches the edge of the search region (raise the search radius)"
    return text


def relabel_object(labels: np.ndarray, selection: ObjectSelection,
                   label: int) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """The voxels of ``selection`` whose label differs from ``label``, and their new values.

    Parameters
    ----------
    labels : (Z, Y, X) integer ndarray
        The labels shown now.
    selection : ObjectSelection
    label : int
        The new label (1..5).

    Returns
    -------
    where : tuple of (M,) integer ndarray
        Volume indices ``(z, y, x)`` of the voxels that change.
    values : (M,) ndarray of ``labels``' dtype
        Their new label (suits ``napari.layers.Labels.data_setitem``).
    """
    labels = np.asarray(labels)
    if not 1 <= int(label) <= 5:
        raise ValueError(f"label must be a lung tissue 1..5, got {label}")
    where = selection.indices()
    if where[0].size:
        keep = labels[where] != label
        where = tuple(w[keep] for w in where)
    return where, np.full(where[0].shape, label, labels.dtype)


def box_from_corners(lo: Sequence[float], hi: Sequence[float], shape: Sequence[int],
                     spacing: Sequence[float], depth_mm: float = 0.0) -> tuple[tuple, tuple]:
    """Voxel corners of a box drawn in data coordinates, inside the volume.

    A box drawn on one axial slice (no extent along z) reaches ``depth_mm``
    above and below it.

    Returns
    -------
    ((z0, y0, x0), (z1, y1, x1)) : inclusive voxel corners.
    """
    lo = np.floor(np.asarray(lo, float)[-3:])
    hi = np.ceil(np.asarray(hi, float)[-3:])
    if hi[0] - lo[0] < 1:
        reach = int(np.ceil(float(depth_mm) / float(spacing[0])))
        lo[0], hi[0] = lo[0] - reach, hi[0] + reach
    top = np.asarray(shape, int)[-3:] - 1
    lo = np.clip(lo, 0, top).astype(int)
    hi = np.clip(hi, 0, top).astype(int)
    return tuple(int(v) for v in lo), tuple(int(v) for v in hi)
