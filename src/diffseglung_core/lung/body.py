"""The body: outside air, the filled body outline and its midline."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy import ndimage as ndi

from ..binary import distance_inside, label
from ..parallel import thread_map
from .coarse import bbox
from .components import inside_bony_thorax
from .morphology import closing, fill_holes_nd


def outside_air(air: np.ndarray) -> np.ndarray:
    """Air connected to the edge of its axial slice."""
    outside = np.empty_like(air)

    def connected(z: int) -> None:  # what filling the holes of the rest leaves out
        outside[z] = ~fill_holes_nd(~air[z])

    thread_map(connected, range(air.shape[0]))
    return outside


def cut_lung(outside: np.ndarray, hu: np.ndarray, spacing: Sequence[float], *,
             air_hu: float = -1000.0, lung_margin_hu: float = 80.0, min_area_mm2: float = 500.0,
             min_depth_mm: float = 5.0, min_vessel_share: float = 0.005) -> np.ndarray:
    """The part of the edge-connected air that is lung which the field of view cuts.

    Outside air and the padding around the reconstruction circle reach the
    image's edge; so does a lung that a small field of view cuts (a large
    patient, a reconstruction targeted on one lung or on the heart). Such a
    lung is told from outside air as a radiologist tells them: it reads as
    parenchyma, well above air, and vessels cross it. In each slice, the pieces
    of ``outside`` whose median reads at least ``lung_margin_hu`` above
    ``air_hu``, padding left out (the constant value outside the
    reconstruction circle, the slice's lowest, which a lung the circle cuts
    touches) and closed by a 2 mm disk (which joins the cells of a fibrotic
    net), are lung where such a region covers at least
    ``min_area_mm2``, is at least ``2 * min_depth_mm`` thick, reads (median)
    at least ``lung_margin_hu`` above ``air_hu``, holds dense structures
    (vessels, walls) of at least ``min_vessel_share`` of its area and lies
    partly (a quarter) inside the convex hull of the patient's bone
    (:func:`~.components.inside_bony_thorax`: the foam and the hollow core of
    the table read as a lung does, with walls, but lie below the patient; the
    cut takes away part of the rib cage). Outside air reads as air as a whole,
    even where streaks from the shoulders lift parts of it.

    Parameters
    ----------
    outside : (Z, Y, X) bool
        :func:`outside_air` of the scan.
    hu : (Z, Y, X) float
        The scan in HU.
    spacing : (3,) float, mm.
    air_hu : float
        HU of air in this scan.

    Returns
    -------
    (Z, Y, X) bool, within ``outside``.
    """
    sampling = (float(spacing[1]), float(spacing[2]))
    least_px = min_area_mm2 / (sampling[0] * sampling[1])
    found = np.zeros(outside.shape, bool)

    def of_slice(z: int) -> None:
        # the padding holds one value, the slice's lowest: without it, a lung the circle
        # cuts is a piece of its own
        air = outside[z] & (hu[z] > hu[z].min())
        # (with the air at that value inside the regions found)
        found[z] = outside[z] & _cut_lung(air, hu[z], sampling, air_hu, lung_margin_hu, least_px,
                                          min_depth_mm, min_vessel_share)

    thread_map(of_slice, range(outside.shape[0]))
    return found


def _cut_lung(air: np.ndarray, hu: np.ndarray, sampling, air_hu: float, margin_hu: float,
              least_px: float, min_depth_mm: float, min_vessel_share: float,
              closing_mm: float = 2.0) -> np.ndarray:
    """The regions of one slice's edge-connected air ``air`` (padding left out) that are
    lung, closed (see :func:`cut_lung`)."""
    found = np.zeros(air.shape, bool)
    # pieces whose median reads above air (at least half their voxels do): outside air and
    # padding never, so most slices end here
    lab, n = label(air)
    above = (np.asarray(hu) >= air_hu + margin_hu) & air
    lifted = np.bincount(lab[above], minlength=n + 1) >= 0.5 * np.bincount(lab.ravel(), minlength=n + 1)
    lifted[0] = False
    if not lifted.any():
        return found
    pieces = lifted[lab]
    # (a closing joins the cells of a fibrotic net, which its walls cut into small pieces)
    box = bbox(pieces, [int(np.ceil(2 * closing_mm / s)) + 1 for s in sampling])
    region = np.zeros(air.shape, bool)
    region[box] = closing(pieces[box][None], (1.0, *sampling), closing_mm)[0]
    lab, n = label(region)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        if sizes[i] < least_px:
            continue
        comp = lab[sl] == i
        # dense structures: the walls and vessels the closing crossed, and the larger ones it holds
        dense = np.count_nonzero(fill_holes_nd(comp) & ~pieces[sl])
        if (dense >= min_vessel_share * sizes[i]
                and np.median(hu[sl][comp]) >= air_hu + margin_hu
                and distance_inside(np.pad(comp, 1), sampling).max() >= min_depth_mm
                and inside_bony_thorax(hu[None], comp[None], sl, (1.0, *sampling), min_share=0.25)):
            found[sl] |= comp
    return found


def filled_body(not_outside: np.ndarray) -> np.ndarray:
    """The body: everything not outside air, holes filled slice by slice."""
    body = np.empty_like(not_outside)

    def fill(z: int) -> None:
        body[z] = fill_holes_nd(not_outside[z])

    thread_map(fill, range(not_outside.shape[0]))
    return body


def body_mid_x(body: np.ndarray, airway: Optional[np.ndarray] = None, *, cut: bool = False) -> float:
    """The x (voxels) of the body's mid-line: the middle of its extent or, where the field of
    view cuts the body (``cut``: a lung reaches its edge), the trachea's (the upper half of the
    ``airway`` tree)."""
    cols = np.flatnonzero(body.any(axis=(0, 1)))
    if cols.size == 0:
        return body.shape[2] / 2.0
    if cut and airway is not None and airway.any():
        zs = np.flatnonzero(airway.any(axis=(1, 2)))
        return float(np.nonzero(airway[zs[len(zs) // 2]:])[2].mean())
    return 0.5 * (cols[0] + cols[-1])


def spine_in_front(body: np.ndarray, hu: np.ndarray, spacing: Sequence[float], x_mid: float, *,
                   bone_hu: float = 200.0, column_mm: float = 25.0, min_slices: int = 8,
                   limit: float = -0.05) -> bool:
    """Whether the bone down the body's mid-line lies in front of the body's centre.

    In the canonical layout (``y`` towards the patient's back) the vertebral
    column lies behind the centre of the body's cross-section: the bone within
    ``column_mm`` of the mid-line has its centre 0.15-0.21 of the body's depth
    behind it (median over the slices of A0001 and of CIP's chest; the
    sternum pulls it forward in a few slices). A file whose orientation swaps
    front and back shows it in front.

    Parameters
    ----------
    body : (Z, Y, X) bool
        The filled body.
    hu : (Z, Y, X) array
        CT in HU.
    spacing : 3 floats, mm.
    x_mid : float
        The mid-line's x (voxels), :func:`body_mid_x`.
    bone_hu : float
        Voxels above this HU are bone.
    column_mm : float
        Half-width (mm) of the band about the mid-line.
    min_slices : int
        Fewer slices with bone in the band tell nothing (a single slice may
        show more sternum than spine).
    limit : float
        Swapped when the median offset of the band's bone behind the body's
        centre, over its depth, is below this.

    Returns
    -------
    bool
    """
    band = np.flatnonzero(np.abs(np.arange(body.shape[2]) - x_mid) * float(spacing[2]) < column_mm)
    if band.size == 0:
        return False
    depth = body.sum(axis=2, dtype=np.float64)  # (Z, Y) body voxels per row
    column = (np.asarray(hu)[:, :, band[0]:band[-1] + 1] > bone_hu).sum(axis=2, dtype=np.float64)
    used = (depth.sum(axis=1) > 0) & (column.sum(axis=1) >= 20)
    if np.count_nonzero(used) < min_slices:
        return False
    depth, column = depth[used], column[used]
    rows = np.arange(body.shape[1], dtype=np.float64)
    centre = depth @ rows / depth.sum(axis=1)
    filled = depth > 0  # the body's front and back row in each slice
    front, back = np.argmax(filled, axis=1), filled.shape[1] - 1 - np.argmax(filled[:, ::-1], axis=1)
    offsets = (column @ rows / column.sum(axis=1) - centre) / np.maximum(back - front, 1)
    return float(np.median(offsets)) < limit
