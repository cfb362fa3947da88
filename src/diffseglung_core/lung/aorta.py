"""The descending aorta, traced down the slices beside the vertebral column.

Dependent consolidation of a lower lobe lies against the mediastinal pleura:
on the left, against the descending aorta. Without contrast the aorta and the
consolidated lung read the same (30-50 HU), so the boundary between them is
not an edge but a shape: the aorta is a round tube of 18-40 mm that runs down
the front of the vertebral column through every slice of the chest, beside
and in front of the vertebral body. A radiologist follows it from slice to
slice; so does :func:`descending_aorta`:

1. per axial slice, circles of the aorta's size are found by a Hough transform
   of the soft-tissue edges in front of and beside the vertebral body
   (scikit-image's :func:`~skimage.transform.hough_circle`); a candidate's
   inside must read as blood (soft tissue, not fat, air or bone);
2. one circle per slice (or none) is chosen by dynamic programming over the
   slices: the sum of the circles' edge support, less a cost for a centre or a
   radius that jumps between neighbouring slices. A circle that no edge
   supports all round (where consolidation abuts the aorta) is kept by the
   slices above and below.

The aorta is returned per slice as a centre and a radius (voxels), NaN where
none was traced (above the arch, below the hiatus, or a scan too thin to
trace a tube).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..binary import distance_inside, label
from ..parallel import thread_map

__all__ = ["aorta_candidates", "trace_tube", "descending_aorta", "aorta_masks", "aorta_on_the_right"]


def aorta_candidates(hu_smooth: np.ndarray, vertebra: tuple, sampling: Sequence[float], *,
                     radius_mm: tuple[float, float] = (8.0, 20.0),
                     blood_hu: tuple[float, float] = (-30.0, 700.0), gap_mm: float = 15.0,
                     grid_mm: float = 1.5, n: int = 6) -> np.ndarray:
    """Circles of the aorta's size in front of and beside the vertebral body of one slice.

    Parameters
    ----------
    hu_smooth : (Y, X) float
        HU of the slice, smoothed about 1 mm.
    vertebra : tuple
        :func:`.skeleton.vertebral_body` of the slice.
    sampling : (2,) floats
        Pixel size (mm) along ``(y, x)``.
    radius_mm : (low, high)
        Radii (mm) searched: a descending aorta of 16-40 mm.
    blood_hu : (low, high)
        At least 90 % of the inner part of a circle must read in this range
        (blood, with or without contrast; not fat, air or bone).
    gap_mm : float
        A circle lies at most this far (mm) from the vertebra's bone: the
        descending aorta runs against the column (the oesophagus, the azygos
        vein and the heart lie further forward or to the right).
    grid_mm : float
        The search runs on every k-th pixel, k the largest step of at most
        this size (mm).
    n : int
        At most this many candidates, best first.

    Returns
    -------
    (M, 4) float ndarray
        ``(y, x, radius, score)`` per candidate, in voxels (the radius in
        ``x`` pixels); ``score`` is the share of the circle's outline that lies
        on an edge (0-1).
    """
    from skimage.feature import canny
    from skimage.transform import hough_circle

    front, centre, depth, bone = vertebra
    ny, nx = hu_smooth.shape
    # the descending aorta lies in front of the vertebral body or beside it, on
    # the left (higher x) or, at the hiatus, at the middle
    y0 = max(0, int(front - 70.0 / sampling[0]))
    y1 = min(ny, int(front + depth + 10.0 / sampling[0]))
    x0, x1 = max(0, int(centre - 35.0 / sampling[1])), min(nx, int(centre + 75.0 / sampling[1]))
    # on a grid of about grid_mm (the edges of a vessel of 16 mm or more need no finer one)
    k = max(1, int(grid_mm / max(float(sampling[0]), float(sampling[1]))))
    sy, sx = float(sampling[0]) * k, float(sampling[1]) * k
    tissue = hu_smooth[y0:y1:k, x0:x1:k]
    window = np.clip(tissue, -150.0, 250.0)
    radii = np.arange(max(2, int(np.ceil(radius_mm[0] / sx))), int(np.floor(radius_mm[1] / sx)) + 1)
    if min(window.shape) < 2 * radii[0] + 3:
        return np.zeros((0, 4))
    bone = bone[y0:y1:k, x0:x1:k]
    edges = canny(window, sigma=1.0, low_threshold=20.0, high_threshold=60.0)
    accumulator = hough_circle(edges, radii)
    # the best radius at each centre; centres best first, none within 3 mm of a better one
    best = accumulator.max(axis=0)
    which = accumulator.argmax(axis=0)
    cy, cx = np.nonzero(best >= 0.2)
    order = np.argsort(-best[cy, cx], kind="stable")
    cy, cx = cy[order], cx[order]
    free = np.ones(cy.size, bool)
    kept: list[int] = []
    while len(kept) < 4 * n and free.any():
        i = int(np.argmax(free))  # the best centre not yet suppressed
        kept.append(i)
        free &= np.hypot((cy - cy[i]) * sy, (cx - cx[i]) * sx) >= 3.0
    cy, cx = cy[kept], cx[kept]
    r = radii[which[cy, cx]]
    yy, xx = np.ogrid[:window.shape[0], :window.shape[1]]
    to_bone = distance_inside(~bone, (sy, sx))
    out = []
    for y, x, radius in zip(cy, cx, r):
        if to_bone[y, x] - radius * sx > gap_mm:
            continue
        d2 = ((yy - y) * sy) ** 2 + ((xx - x) * sx) ** 2
        values = tissue[d2 <= (0.7 * radius * sx) ** 2]
        if values.size == 0 or np.mean((values > blood_hu[0]) & (values < blood_hu[1])) < 0.9:
            continue
        disc = d2 <= (radius * sx) ** 2
        if np.count_nonzero(bone & disc) > 0.1 * np.count_nonzero(disc):
            continue  # the vertebral body, not a vessel
        score = accumulator[np.searchsorted(radii, radius), y, x]
        out.append((float(y0 + y * k), float(x0 + x * k), float(radius * k), float(score)))
        if len(out) == n:
            break
    return np.asarray(out, float).reshape(-1, 4)


def trace_tube(candidates: Sequence[np.ndarray], spacing: Sequence[float], *, absent_score: float = 0.3,
               switch_cost: float = 0.3, shift_cost: float = 0.08, radius_cost: float = 0.3,
               tilt: float = 0.5, max_gap_mm: float = 100.0, min_length_mm: float = 30.0) -> np.ndarray:
    """One circle per slice (or none) that runs as a tube through the slices.

    Dynamic programming over the slices: each chosen circle earns its score,
    a slice without one earns ``absent_score``; moving the centre costs
    ``shift_cost`` per mm beyond ``tilt`` mm per mm of slice distance (plus 1
    mm), changing the radius ``radius_cost`` per mm, starting or ending the
    tube ``switch_cost``. A gap of at most ``max_gap_mm`` between two pieces
    whose ends agree (centres within 6 mm, radii within 3 mm) is the same tube
    where no edge shows it (consolidation all round it, over several
    centimetres of a consolidated lower lobe): it is filled by interpolation
    (the descending aorta runs nearly straight down). Pieces of tube shorter than
    ``min_length_mm`` are then dropped, and the gaps they leave between agreeing
    long pieces are filled too (a stray circle on another round structure inside
    a gap, the oesophagus, hid it from the first pass).

    Parameters
    ----------
    candidates : sequence of (M_z, 4) arrays
        Per slice, ``(y, x, radius, score)`` (:func:`aorta_candidates`).
    spacing : 3 floats
        Voxel size (mm) along ``(z, y, x)``.

    Returns
    -------
    (Z, 3) float ndarray
        ``(y, x, radius)`` per slice (voxels), NaN where no tube was traced.
    """
    sz, sy, sx = (float(s) for s in spacing)
    nz = len(candidates)
    best: list[np.ndarray] = []   # best total ending in each state (candidates..., absent)
    back: list[np.ndarray] = []
    for z, cand in enumerate(candidates):
        score = np.append(cand[:, 3], absent_score)
        if z == 0:
            best.append(score.copy())
            back.append(np.full(score.size, -1))
            continue
        prev = candidates[z - 1]
        # transition costs from each previous state (rows) to each state (columns)
        cost = np.full((prev.shape[0] + 1, cand.shape[0] + 1), switch_cost)
        cost[-1, -1] = 0.0
        if prev.size and cand.size:
            dy = (prev[:, None, 0] - cand[None, :, 0]) * sy
            dx = (prev[:, None, 1] - cand[None, :, 1]) * sx
            shift = np.maximum(np.hypot(dy, dx) - (1.0 + tilt * sz), 0.0)
            dr = np.abs(prev[:, None, 2] - cand[None, :, 2]) * sx
            cost[:-1, :-1] = shift_cost * shift + radius_cost * dr
        total = best[-1][:, None] - cost
        back.append(np.argmax(total, axis=0))
        best.append(total.max(axis=0) + score)
    state = int(np.argmax(best[-1]))
    chosen = np.empty(nz, int)
    for z in range(nz - 1, -1, -1):
        chosen[z] = state
        state = int(back[z][state])
    out = np.full((nz, 3), np.nan)
    for z, (cand, s) in enumerate(zip(candidates, chosen)):
        if s < cand.shape[0]:
            out[z] = cand[s, :3]
    # a gap between two agreeing pieces is the same tube; pieces shorter than
    # min_length_mm are not a tube, and once they are gone the long pieces on either
    # side of them may agree across the gap
    out = _bridge(out, spacing, max_gap_mm)
    out = _bridge(_drop_short(out, sz, min_length_mm), spacing, max_gap_mm)
    return out


def _bridge(tube: np.ndarray, spacing: Sequence[float], max_gap_mm: float) -> np.ndarray:
    """``tube`` with each gap of at most ``max_gap_mm`` between agreeing ends (centres
    within 6 mm, radii within 3 mm) filled by linear interpolation."""
    sz, sy, sx = (float(s) for s in spacing)
    out = tube.copy()
    traced = np.flatnonzero(~np.isnan(out[:, 0]))
    for a, b in zip(traced[:-1], traced[1:]):
        if 1 < b - a and (b - a - 1) * sz <= max_gap_mm \
                and np.hypot((out[a, 0] - out[b, 0]) * sy, (out[a, 1] - out[b, 1]) * sx) <= 6.0 \
                and abs(out[a, 2] - out[b, 2]) * sx <= 3.0:
            t = (np.arange(a + 1, b) - a)[:, None] / (b - a)
            out[a + 1:b] = (1 - t) * out[a] + t * out[b]
    return out


def _drop_short(tube: np.ndarray, sz: float, min_length_mm: float) -> np.ndarray:
    """``tube`` without its pieces shorter than ``min_length_mm`` (NaN there)."""
    out = tube.copy()
    lab, n = label(~np.isnan(out[:, 0]))
    for i in range(1, n + 1):
        if np.count_nonzero(lab == i) * sz < min_length_mm:
            out[lab == i] = np.nan
    return out


def descending_aorta(hu_smooth: np.ndarray, vertebrae: Sequence, spacing: Sequence[float], *,
                     max_pixel_mm: float = 2.5, **trace) -> np.ndarray:
    """The descending aorta of a chest CT volume, traced slice by slice.

    Parameters
    ----------
    hu_smooth : (Z, Y, X) float
        HU smoothed about 1 mm in-plane (:func:`.cavity.smooth_axial`).
    vertebrae : sequence
        :func:`.skeleton.vertebral_body` of each slice (None where none).
    spacing : 3 floats
        Voxel size (mm) along ``(z, y, x)``.
    max_pixel_mm : float
        On coarser pixels (a 16 mm aorta under 7 pixels across) no circle is
        sought and nothing is traced.
    **trace
        Options of :func:`trace_tube`.

    Returns
    -------
    (Z, 3) float ndarray
        ``(y, x, radius)`` per slice (voxels; the radius in ``x`` pixels), NaN
        where no aorta was traced.
    """
    sampling = (float(spacing[1]), float(spacing[2]))
    if max(sampling) > max_pixel_mm:
        return np.full((hu_smooth.shape[0], 3), np.nan)
    candidates = thread_map(lambda z: np.zeros((0, 4)) if vertebrae[z] is None else
                            aorta_candidates(hu_smooth[z], vertebrae[z], sampling),
                            range(hu_smooth.shape[0]))
    return trace_tube(candidates, spacing, **trace)


def aorta_masks(aorta: np.ndarray, shape: Sequence[int], spacing: Sequence[float], *,
                margin_mm: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """The aorta's disc per axial slice, split into its front and its back.

    Parameters
    ----------
    aorta : (Z, 3) float
        :func:`descending_aorta`.
    shape : (Z, Y, X)
    spacing : 3 floats, mm.
    margin_mm : float
        The disc reaches this far (mm) beyond the traced radius (its wall).

    Returns
    -------
    front, back : (Z, Y, X) bool
        The disc in front of a line half a radius ahead of its centre, and the
        rest (its sides and its back: where the lower lobes lie against it; the
        hilum and the oesophagus lie in front).
    """
    sy, sx = float(spacing[1]), float(spacing[2])
    front = np.zeros(tuple(shape), bool)
    back = np.zeros(tuple(shape), bool)
    for z in np.flatnonzero(~np.isnan(aorta[:, 0])):
        y, x, r = aorta[z]
        reach = r * sx + margin_mm
        y0, x0 = max(0, int(y - reach / sy) - 1), max(0, int(x - reach / sx) - 1)
        yy = np.arange(y0, min(shape[1], int(y + reach / sy) + 2))[:, None]
        xx = np.arange(x0, min(shape[2], int(x + reach / sx) + 2))[None, :]
        disc = np.hypot((yy - y) * sy, (xx - x) * sx) <= reach
        ahead = (yy - y) * sy < -0.5 * r * sx
        box = (z, slice(y0, y0 + yy.shape[0]), slice(x0, x0 + xx.shape[1]))
        front[box], back[box] = disc & ahead, disc & ~ahead
    return front, back


def aorta_on_the_right(aorta: np.ndarray, x_mid: float, spacing: Sequence[float], *,
                       min_slices: int = 8, limit_mm: float = -5.0) -> bool:
    """Whether the traced descending aorta runs down the patient's right of the mid-line.

    The descending aorta lies left of the vertebral column (its centre 8-21 mm
    left of the body's mid-line, median over the traced slices of A0001 and the
    phantom's seeds), coming to the middle only at the hiatus; a right-sided
    descending aorta is a rare anomaly. In the canonical layout (``x`` towards
    the patient's left) a file whose orientation swaps left and right shows it
    on the right.

    Parameters
    ----------
    aorta : (Z, 3) float
        :func:`descending_aorta` (``(y, x, radius)`` per slice, NaN where none).
    x_mid : float
        The body's left-right middle (column index), on the same grid.
    spacing : 3 floats, mm.
    min_slices : int
        Fewer traced slices tell nothing.
    limit_mm : float
        On the right when the median of the centres' offsets towards the
        patient's left is below this (mm).

    Returns
    -------
    bool
    """
    x = np.asarray(aorta, float)[:, 1]
    x = x[~np.isnan(x)]
    if x.size < min_slices:
        return False
    return bool(np.median(x - x_mid) * float(spacing[2]) < limit_mm)
