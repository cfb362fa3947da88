"""The lung border: costal pockets of the convex hull, holes and the diaphragm dome."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage as ndi

from ..binary import distance_inside, label
from .morphology import disk, fill_holes_nd


def costal_pockets(lung: np.ndarray, skin_mm: np.ndarray, spacing, medial_x: float,
                    min_mm: float, wall_margin_mm: float = 20.0, near_mm: float = 30.0,
                    max_contradicted: float = 0.5) -> np.ndarray:
    """Pockets of each axial slice's convex hull of ``lung`` against the chest wall.

    A pocket (a component of hull minus lung, opened by a disk of ``min_mm``)
    passes when the hull's edge across it (its chord) runs along the chest
    wall, no deeper below the skin than ``wall_margin_mm`` more than the
    lung's own surface beside it (within ``near_mm`` of the chord: the chest
    wall's thickness varies around the body, and where a field of view cuts
    the body, depth counts from the image's edge); its centre does not lie
    from the lung's centre towards ``medial_x`` (the body's middle); and it
    is smaller than half the lung in that slice. Failing pockets are medial ones (the mediastinum, the
    heart and the hilum) and holes at least half the lung's size (the dome of
    the liver or spleen rising into the lung base); a lateral pocket that
    opens onto the chest wall but is too large or too deep neither passes nor
    fails (the lung base beside the dome). The slices above and below then
    vote: passing pockets are joined across slices, and a stack is dropped
    whole when at least ``max_contradicted`` of its voxels lie right above or
    below a failing pocket (the same place is the heart or the dome in the
    next slice). A lesion along the chest wall that meets, at one end, the
    pocket of the hilum or of the lung base stays in. Only passing pockets
    are returned.

    ``skin_mm`` is each voxel's in-plane depth below the skin (0 outside the
    body; :func:`.cavity.skin_depth` of the whole body, or of a box wide enough
    that its edge lies beyond the chest wall).
    """
    from skimage.morphology import convex_hull_image

    passed = np.zeros_like(lung)
    failed = np.zeros_like(lung)
    footprint = disk(max(1, int(round(min_mm / min(spacing[1:])))))
    for z in range(lung.shape[0]):
        sl = lung[z]
        area = np.count_nonzero(sl)
        if area < 10:
            continue
        hull = convex_hull_image(sl)
        pockets = ndi.binary_opening(hull & ~sl, footprint)
        lab, n = label(pockets)
        if n == 0:
            continue
        depth = skin_mm[z]
        surface = sl & ~ndi.binary_erosion(sl)
        chord = pockets & ~ndi.binary_erosion(hull)
        cy, cx = ndi.center_of_mass(sl)
        inward = np.array([0.0, np.sign(medial_x - cx)])
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        centres = ndi.center_of_mass(pockets, lab, range(1, n + 1))
        chord_depth = ndi.maximum(depth, lab * chord, range(1, n + 1))
        has_chord = np.bincount(lab[chord], minlength=n + 1) > 0
        ok = np.zeros(n + 1, bool)
        bad = np.zeros(n + 1, bool)
        for i, (y, x) in enumerate(centres, start=1):
            d = np.array([(y - cy) * spacing[1], (x - cx) * spacing[2]])
            lateral = d @ inward < 0.3 * np.linalg.norm(d)
            wall = _wall_depth(depth, surface, chord & (lab == i), spacing[1:], near_mm)
            ok[i] = lateral and chord_depth[i - 1] <= wall + wall_margin_mm and sizes[i] < 0.5 * area
            # a large or deep lateral pocket that opens onto the chest wall neither
            # passes nor sinks its stack: the lung base around the dome of the diaphragm
            bad[i] = not ok[i] and not (lateral and has_chord[i])
        passed[z] = ok[lab]
        failed[z] = bad[lab]
    if not passed.any():
        return passed
    beside = np.zeros_like(failed)  # a failing pocket right above or below
    beside[:-1] |= failed[1:]
    beside[1:] |= failed[:-1]
    lab, n = label(passed)
    contradicted = np.bincount(lab[passed & beside], minlength=n + 1)
    bad = contradicted >= max_contradicted * np.bincount(lab[passed], minlength=n + 1)
    bad[0] = True
    return ~bad[lab] & passed


def _wall_depth(depth: np.ndarray, surface: np.ndarray, chord: np.ndarray, sampling,
                near_mm: float) -> float:
    """Depth (mm) below the skin of the lung's surface beside a chord (its 10th percentile).

    The surface within ``near_mm`` of ``chord`` (all of it when none lies that near).
    """
    near = surface & (distance_inside(~chord, sampling) <= near_mm)
    return float(np.percentile(depth[near if near.any() else surface], 10))


def fill_holes(mask: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0),
                min_open_mm2: float = np.inf) -> np.ndarray:
    """Fill holes in each axial slice, then in 3D.

    A slice's hole of at least ``min_open_mm2`` that continues into a hole or
    the outside of the slice below (at least 90 % of it lying over either) is
    left open: that is the dome of the diaphragm (liver, spleen) rising into
    the lung base, not a vessel. Such holes are followed upwards from the
    bottom slice; the bottom slice's holes themselves are always filled.
    """
    out = np.empty_like(mask)
    pixel_mm2 = float(spacing[1]) * float(spacing[2])
    below = None  # the slice below: its outside plus its open holes
    for z in range(mask.shape[0]):
        filled = fill_holes_nd(mask[z])
        holes = filled & ~mask[z]
        open_ = ~filled
        if below is not None and np.isfinite(min_open_mm2) and holes.any():
            lab, n = label(holes)
            areas = np.bincount(lab.ravel(), minlength=n + 1)
            over = np.bincount(lab[below], minlength=n + 1)
            is_open = (areas * pixel_mm2 >= min_open_mm2) & (over >= 0.9 * areas)
            is_open[0] = False
            if is_open.any():
                dome = is_open[lab]
                filled &= ~dome
                open_ |= dome
        out[z] = filled
        below = open_
    return fill_holes_nd(out)
