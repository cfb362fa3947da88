"""Branching tubes (vessels, airways) grown to fill a region and drawn anti-aliased."""

from __future__ import annotations

import numpy as np

from .grid import Grid

#: A tube segment: start (3,), end (3,) in nominal mm, start and end radius (mm).
Segment = tuple[np.ndarray, np.ndarray, float, float]


def grow_tree(root: np.ndarray, radius: float, targets: np.ndarray, *, min_radius: float = 0.0,
              leaf_size: int = 2, reach: float = 0.55) -> list[Segment]:
    """Grow a bifurcating tree from ``root`` towards a cloud of target points.

    Each branch heads for the centroid of its targets, then splits them in two
    along their main axis; a child's radius follows Murray's law with the flow
    proportional to its share of the targets. Branching, not voxels, drives the
    loop: a tree over ``n`` targets has about ``n`` segments.

    Parameters
    ----------
    root : (3,) nominal mm where the trunk starts (the hilum).
    radius : trunk radius in mm.
    targets : (N, 3) nominal mm of points the tree should reach (inside the lung).
    min_radius : branches thinner than this are not grown.
    leaf_size : a branch with this many targets or fewer ends at their centroid.
    reach : fraction of the way to the centroid covered by an inner branch.
    """
    segments: list[Segment] = []
    stack = [(np.asarray(root, np.float64), float(radius), np.asarray(targets, np.float64))]
    while stack:
        start, r, pts = stack.pop()
        if r < min_radius or len(pts) == 0:
            continue
        centre = pts.mean(axis=0)
        if len(pts) <= leaf_size:
            segments.append((start, centre, r, 0.8 * r))
            continue
        end = start + reach * (centre - start)
        segments.append((start, end, r, 0.95 * r))
        d = pts - centre
        _, _, vt = np.linalg.svd(d, full_matrices=False)
        proj = d @ vt[0]
        side = proj < np.median(proj)
        if side.all() or not side.any():
            side = np.arange(len(pts)) < len(pts) // 2
        n = len(pts)
        for part in (pts[side], pts[~side]):
            stack.append((end, 0.95 * r * (len(part) / n) ** (1 / 3), part))
    return segments


def draw_tubes(out: np.ndarray, grid: Grid, segments: list[Segment], *, scale: float = 1.0) -> None:
    """Draw tube occupancy (0..1, anti-aliased) into ``out`` in place (maximum).

    ``out`` is a ``(Z, Y, X)`` float32 array on ``grid``; ``scale`` multiplies
    every radius (e.g. 0.7 for an airway lumen inside its wall).
    """
    h = np.float32(grid.h)
    shape = np.asarray(grid.shape)
    for a, b, ra, rb in segments:
        ra, rb = ra * scale, rb * scale
        rmax = max(ra, rb) + h
        lo_mm = np.minimum(a, b) - rmax
        hi_mm = np.maximum(a, b) + rmax
        lo = np.clip(np.floor(grid.to_index(lo_mm)).astype(int), 0, shape)
        hi = np.clip(np.ceil(grid.to_index(hi_mm)).astype(int) + 1, 0, shape)
        if np.any(hi <= lo):
            continue
        zz = grid.axis(0, lo[0], hi[0]) - np.float32(a[0])
        yy = grid.axis(1, lo[1], hi[1]) - np.float32(a[1])
        xx = grid.axis(2, lo[2], hi[2]) - np.float32(a[2])
        d = (b - a).astype(np.float32)
        length2 = float(d @ d) or 1e-6
        t = np.clip((zz * d[0] + yy * d[1] + xx * d[2]) / np.float32(length2), 0, 1)
        dist2 = (zz - t * d[0]) ** 2 + (yy - t * d[1]) ** 2 + (xx - t * d[2]) ** 2
        r = np.float32(ra) + t * np.float32(rb - ra)
        occ = np.clip((r - np.sqrt(dist2)) / h + np.float32(0.5), 0, 1)
        # thin tubes fill only part of a voxel: dim them (partial volume)
        occ *= np.minimum(np.float32(1), 2 * r / h)
        box = out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        np.maximum(box, occ, out=box)
