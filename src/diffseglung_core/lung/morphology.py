"""Binary morphology in mm: disks, balls by distance maps, hole filling."""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import ndimage as ndi

from ..binary import distance_inside, label
from ..parallel import thread_map
from .coarse import bbox


def disk(radius: int) -> np.ndarray:
    """A 2D disk footprint of ``radius`` pixels."""
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius * radius


def axial_disk(radius_mm: float, spacing) -> np.ndarray:
    """A (1, Y, X) disk footprint of ``radius_mm`` in the axial plane (at least 1 pixel)."""
    return disk(max(1, int(round(radius_mm / min(float(spacing[1]), float(spacing[2]))))))[None]


#: The midpoints of a pixel's edges, relative to its centre (as scikit-image's hull takes them).
_EDGE_MIDPOINTS = np.array([[-0.5, 0.0], [0.5, 0.0], [0.0, -0.5], [0.0, 0.5]])


def convex_hull_2d(image: np.ndarray) -> np.ndarray:
    """Convex hull of the pixels of a 2D mask, as ``skimage.morphology.convex_hull_image``.

    The hull of the midpoints of the pixels' edges, borders included: the same
    pixels as scikit-image's function, filled row by row in integer arithmetic
    (the hull's vertices lie on half pixels) instead of testing every pixel
    against the polygon, several times faster.

    Parameters
    ----------
    image : (Y, X) bool

    Returns
    -------
    (Y, X) bool
    """
    from scipy.spatial import ConvexHull, QhullError

    rows = np.flatnonzero(image.any(axis=1))
    if rows.size == 0:
        return np.zeros(image.shape, bool)
    cols = np.flatnonzero(image.any(axis=0))
    # the hull of the pixels is the hull of the first and last pixel of every row and column
    ends = [np.stack([rows, image[rows].argmax(axis=1)], 1),
            np.stack([rows, image.shape[1] - 1 - image[rows, ::-1].argmax(axis=1)], 1),
            np.stack([image[:, cols].argmax(axis=0), cols], 1),
            np.stack([image.shape[0] - 1 - image[::-1, cols].argmax(axis=0), cols], 1)]
    points = np.unique(np.concatenate(ends), axis=0)
    try:
        corners = points[ConvexHull(points).vertices]
    except QhullError:  # fewer than 3 pixels, or all in one line: scikit-image decides
        from skimage.morphology import convex_hull_image

        return convex_hull_image(image)
    corners = np.unique((corners[:, None, :] + _EDGE_MIDPOINTS).reshape(-1, 2), axis=0)
    hull = ConvexHull(corners)
    # twice the vertices (integers), counterclockwise in (y, x): pixel (i, j) is in the hull
    # when dy * (2j - p_x) >= dx * (2i - p_y) for every edge p -> p + (dy, dx)
    p = np.rint(2.0 * corners[hull.vertices]).astype(np.int64)
    dy, dx = (np.roll(p, -1, axis=0) - p).T
    rhs = dy * p[:, 1] + dx * (2 * np.arange(image.shape[0], dtype=np.int64)[:, None] - p[:, 0])
    up, down, n = dy > 0, dy < 0, image.shape[1]
    first = np.where(up, -(-rhs // np.where(up, 2 * dy, 1)), 0).max(axis=1, initial=0)
    last = np.where(down, rhs // np.where(down, 2 * dy, -1), n - 1).min(axis=1, initial=n - 1)
    empty = ((dy == 0) & (rhs > 0)).any(axis=1)
    j = np.arange(n)
    return (j >= first[:, None]) & (j <= last[:, None]) & ~empty[:, None]


def axial_convex_hull(mask: np.ndarray) -> np.ndarray:
    """Convex hull of each axial slice of ``mask`` (Z, Y, X) bool (empty below 3 voxels)."""

    def hull_of(z: int) -> None:
        # the hull of the pixels lies in their bounding box: rasterise it there only
        box = bbox(mask[z], (0, 0))
        hull[z][box] = convex_hull_2d(mask[z][box])

    hull = np.zeros(mask.shape, bool)
    thread_map(hull_of, np.flatnonzero(np.count_nonzero(mask, axis=(1, 2)) >= 3))
    return hull


def axial_depth(mask: np.ndarray, spacing) -> np.ndarray:
    """Distance (mm) of each voxel of ``mask`` to the nearest voxel outside it in its axial slice.

    The array's edge counts as outside; 0 outside ``mask``.

    Parameters
    ----------
    mask : (Z, Y, X) bool
    spacing : (3,) float, mm.

    Returns
    -------
    (Z, Y, X) float32
    """
    sampling = (float(spacing[1]), float(spacing[2]))

    def depth_of(z: int) -> None:
        # the nearest voxel outside lies in the slice's box or on the ring just outside it
        box = bbox(mask[z], (0, 0))
        out[z][box] = distance_inside(np.pad(mask[z][box], 1), sampling)[1:-1, 1:-1]

    out = np.zeros(mask.shape, np.float32)
    thread_map(depth_of, np.flatnonzero(mask.any(axis=(1, 2))))
    return out


def fill_holes_nd(mask: np.ndarray) -> np.ndarray:
    """``mask`` plus the background components that do not touch the array's edge.

    Same result as :func:`scipy.ndimage.binary_fill_holes`, by labelling
    instead of iterated dilation (much faster on large arrays).
    """
    if not mask.any():
        return mask.copy()
    # in the mask's box grown by one voxel: what touches its faces reaches the array's edge
    box = bbox(mask, (1,) * mask.ndim)
    sub = mask[box]
    lab, n = label(~sub)
    if n == 0:
        return mask.copy()
    edge = np.zeros(n + 1, bool)
    for axis in range(sub.ndim):
        for end in (0, -1):
            edge[np.take(lab, end, axis=axis)] = True
    edge[0] = True
    out = mask.copy()
    out[box] = sub | ~edge[lab]
    return out


def gaps_through_slices(mask: np.ndarray, max_slices: int) -> np.ndarray:
    """Voxels outside ``mask`` in a gap of at most ``max_slices`` slices between two of its voxels.

    A one-dimensional closing along ``z``: a voxel is in the result when, in its
    ``(y, x)`` column, it lies between two voxels of ``mask`` that are at most
    ``max_slices + 1`` slices apart (the gap between them at most ``max_slices``).

    Parameters
    ----------
    mask : (Z, Y, X) bool
    max_slices : int
        The longest gap (slices) that is filled; 0 fills none.

    Returns
    -------
    (Z, Y, X) bool
    """
    mask = np.asarray(mask, bool)
    z_count = mask.shape[0]
    if max_slices < 1 or z_count < 3:
        return np.zeros(mask.shape, bool)
    # no gap is longer than the column; a column's ends are never gaps (the sentinels below)
    max_slices = min(int(max_slices), z_count - 2)
    dtype = np.int16 if 3 * z_count < 2 ** 15 else np.int32
    z = np.arange(z_count, dtype=dtype).reshape(-1, *([1] * (mask.ndim - 1)))
    # the nearest slice of the mask at or below each voxel, and at or above it
    below = np.maximum.accumulate(np.where(mask, z, dtype(-2 * z_count)), axis=0)
    above = np.minimum.accumulate(np.where(mask, z, dtype(3 * z_count))[::-1], axis=0)[::-1]
    return ~mask & (above - below - 1 <= max_slices)


def axial_opening(mask: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_opening(mask, footprint)`` for a (1, k, k) footprint, slice by slice.

    Each slice is opened in the box around its voxels, padded by the footprint's
    reach: the same result as on the whole array (outside the box there is
    nothing to erode or grow), at the cost of the voxels' extent only. A disk
    (:func:`disk`) of 5 pixels or more opens by distance maps: a pixel survives
    the erosion when no pixel outside lies within the radius, and the opening is
    what lies within the radius of a survivor (the same pixels, in time
    independent of the radius). scipy's is faster for smaller disks, the more so
    on threads: it releases the GIL, the distance maps (``edt``) hold it
    (``benchmarks/bench_gil.py``).
    """
    ry, rx = footprint.shape[1] // 2, footprint.shape[2] // 2
    by_distance = ry == rx >= 5 and footprint.shape[1:] == (2 * ry + 1,) * 2 and \
        np.array_equal(footprint[0], disk(ry))

    def open_slice(z: int) -> None:
        ys, xs = np.nonzero(mask[z])
        box = (slice(max(ys.min() - ry, 0), ys.max() + ry + 1),
               slice(max(xs.min() - rx, 0), xs.max() + rx + 1))
        if not by_distance:
            out[z][box] = ndi.binary_opening(mask[z][box], footprint[0])
            return
        # (squared distances are integers: the comparisons with the radius are exact)
        core = distance_inside(np.pad(mask[z][box], 1))[1:-1, 1:-1] > ry
        if core.any():
            out[z][box] = distance_inside(~core) <= ry

    out = np.zeros_like(mask)
    thread_map(open_slice, np.flatnonzero(mask.any(axis=(1, 2))))
    return out


def closing(mask: np.ndarray, spacing, radius_mm: float) -> np.ndarray:
    """Binary closing with a ball of ``radius_mm`` (via distance maps, edges replicated).

    An axis of one voxel (a single slice) is not padded: replicated, it is the
    same along that axis, and the closing by the ball is the closing by its
    widest section.
    """
    pad = [0 if n == 1 else int(np.ceil(radius_mm / s)) + 1 for s, n in zip(spacing, mask.shape)]
    m = np.pad(mask, [(p, p) for p in pad], mode="edge")
    dilated = distance_inside(~m, spacing) <= radius_mm
    closed = distance_inside(dilated, spacing) > radius_mm
    closed |= m
    return closed[tuple(slice(p, p + n) for p, n in zip(pad, mask.shape))]


def thick_parts(added: np.ndarray, spacing, r_mm: float, *, lung: Optional[np.ndarray] = None,
                 medial_x: Optional[float] = None) -> np.ndarray:
    """The parts of ``added`` at least ``2 * r_mm`` thick (an opening by a ball).

    The opened region is grown back by ``r_mm`` inside ``added``. With
    ``medial_x`` (the body's middle, in voxels) parts whose centre lies from
    the centre of ``lung`` towards it (mediastinum, hilum) are dropped.
    """
    if not added.any():
        return added.copy()
    core = distance_inside(added, spacing) > r_mm
    if not core.any():
        return core
    opened = distance_inside(~core, spacing) <= r_mm
    grown = (distance_inside(~opened, spacing) <= r_mm) & added
    if medial_x is None or lung is None:
        return grown
    lab, n = label(grown)
    _, cy, cx = ndi.center_of_mass(lung)
    inward = np.array([0.0, np.sign(medial_x - cx)])
    keep = np.zeros(n + 1, bool)
    for i, (_, y, x) in enumerate(ndi.center_of_mass(grown, lab, range(1, n + 1)), start=1):
        d = np.array([(y - cy) * spacing[1], (x - cx) * spacing[2]])
        keep[i] = d @ inward < 0.3 * np.linalg.norm(d)
    return keep[lab]
