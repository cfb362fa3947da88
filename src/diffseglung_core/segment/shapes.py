"""Shapes on an anisotropic voxel grid: footprints in mm, openings, component measures.

The structure evidence (:mod:`.evidence`) judges connected components by their
size and shape in millimetres, whatever the voxel size: footprints of a given
radius in mm, openings by a ball (by morphology, or by distance maps for large
radii), a component's volume as far as the scan shows it, its thickness, its
principal axes and how much of its convex hull it fills. Arrays in, arrays out.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy import ndimage as ndi

from ..binary import distance_inside, label
from ..lung.coarse import bbox
from ..parallel import by_slabs

__all__ = ["ball_footprint", "ellipsoid_footprint", "disk_footprint", "dilate_parts", "opening_by",
           "opening_mm", "kept_components", "component_ml", "in_plane_depth", "principal_axes", "elongation",
           "solidity"]


def ball_footprint(radius_mm: float, spacing: Sequence[float], shape: Sequence[int]) -> np.ndarray:
    """A ball of ``radius_mm`` on the grid, no wider than the array along any axis."""
    return ellipsoid_footprint([radius_mm] * len(spacing), spacing, shape)


def ellipsoid_footprint(radii_mm: Sequence[float], spacing: Sequence[float],
                        shape: Sequence[int]) -> np.ndarray:
    """An ellipsoid of semi-axes ``radii_mm`` (one per axis) on the grid, no wider than
    the array along any axis."""
    radii = [min(int(np.floor(r / float(s))), (n - 1) // 2) for r, s, n in zip(radii_mm, spacing, shape)]
    grids = np.ogrid[tuple(slice(-r, r + 1) for r in radii)]
    dist = np.zeros([2 * r + 1 for r in radii])
    for g, s, r in zip(grids, spacing, radii_mm):
        dist = dist + (g * float(s) / r) ** 2
    return dist <= 1.0


def disk_footprint(radius_mm: float, spacing: Sequence[float], shape: Sequence[int]) -> np.ndarray:
    """An axial disk of ``radius_mm`` as a ``(1, Y, X)`` footprint, no wider than the array."""
    return ball_footprint(radius_mm, spacing, (1,) + tuple(shape[1:]))


def dilate_parts(mask: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_dilation(mask, footprint)``, one connected part at a time.

    Each part is dilated in its box padded by the footprint's reach: the same
    result, at the cost of the parts' extent (fast for a sparse mask such as
    the cores of thick structures).
    """
    out = np.zeros(mask.shape, bool)
    reach = [n // 2 for n in footprint.shape]
    lab, _ = label(mask)
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        box = tuple(slice(max(s.start - r, 0), min(s.stop + r, n)) for s, r, n in zip(sl, reach, mask.shape))
        out[box] |= ndi.binary_dilation(lab[box] == i, footprint)
    return out


def opening_by(mask: np.ndarray, ball: np.ndarray) -> np.ndarray:
    """The parts of ``mask`` a ``ball`` fits in: its opening, on slabs of slices."""
    return by_slabs(lambda m: dilate_parts(ndi.binary_erosion(m, ball), ball), [mask],
                    2 * (ball.shape[0] // 2)) & mask


def kept_components(mask: np.ndarray, keep) -> np.ndarray:
    """The connected components of ``mask`` for which ``keep(comp, box)`` is true (``comp``
    the component's bool mask within ``box``, its bounding box)."""
    out = np.zeros(mask.shape, bool)
    lab, _ = label(mask)
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        comp = lab[sl] == i
        if keep(comp, sl):
            out[sl] |= comp
    return out


def component_ml(comp: np.ndarray, spacing: Sequence[float], cut: bool) -> float:
    """Volume (mL) of a connected component, as far as the scan shows it.

    ``cut``: the component runs through every slice of the scan, so the stack is
    thinner than it (a crop of a few thin slices) and its volume says little of
    its size; it counts as a ball as wide as its largest cross-section when
    that is more.
    """
    ml = np.count_nonzero(comp) * float(np.prod(spacing)) / 1000.0
    if not cut:
        return ml
    area = float(comp.sum(axis=(1, 2)).max()) * float(spacing[1]) * float(spacing[2])
    return max(ml, 4.0 / 3.0 * np.pi * (area / np.pi) ** 1.5 / 1000.0)


def in_plane_depth(comp: np.ndarray, spacing: Sequence[float]) -> float:
    """Largest in-plane distance (mm) from a voxel of ``comp`` to its outside: half its thickness."""
    return max(float(distance_inside(np.pad(c, 1), spacing[1:]).max())
               for c in comp if c.any())


def principal_axes(comp: np.ndarray, spacing: Sequence[float]) -> Optional[np.ndarray]:
    """Variances (mm², ascending) of a component's voxel positions along its principal axes."""
    pts = np.argwhere(comp) * np.asarray(spacing, float)
    if len(pts) < 10:
        return None
    return np.linalg.eigvalsh(np.cov(pts.T) + 1e-6 * np.eye(pts.shape[1]))


def elongation(comp: np.ndarray, spacing: Sequence[float]) -> Optional[float]:
    """How much longer than thick a component is: the standard deviation of its voxel
    positions along its longest principal axis over that along its shortest (None for
    fewer than 10 voxels)."""
    axes = principal_axes(comp, spacing)
    return None if axes is None else float(np.sqrt(axes[-1] / max(axes[0], 1e-6)))


def opening_mm(mask: np.ndarray, spacing: Sequence[float], radius_mm: float) -> np.ndarray:
    """Opening of ``mask`` by a ball of ``radius_mm`` (distance maps in mm; none for 0)."""
    if radius_mm <= 0:
        return np.zeros_like(mask)

    reach = [int(np.ceil(radius_mm / float(s))) + 1 for s in spacing]

    def opened(part: np.ndarray) -> np.ndarray:
        m = np.pad(part, 1)
        core = distance_inside(m, spacing) > radius_mm
        if not core.any():
            return np.zeros_like(part)
        # what lies within the radius of the core lies in its box grown by the radius
        near = np.zeros_like(core)
        box = bbox(core, reach)
        near[box] = distance_inside(~core[box], spacing) <= radius_mm
        return near[1:-1, 1:-1, 1:-1] & part

    # the opening at a voxel depends on the mask within 2 radii (and the pad's slice)
    return by_slabs(opened, [mask], int(2 * radius_mm / float(spacing[0])) + 2)


def solidity(comp: np.ndarray, spacing: Sequence[float]) -> float:
    """Volume of ``comp`` over that of the convex hull of its voxels (cubes), in (0, 1]."""
    from scipy.spatial import ConvexHull, QhullError

    surface = comp & ~ndi.binary_erosion(comp)
    corners = np.array([[a, b, c] for a in (-0.5, 0.5) for b in (-0.5, 0.5) for c in (-0.5, 0.5)])
    points = ((np.argwhere(surface)[:, None, :] + corners[None]) * np.asarray(spacing)).reshape(-1, 3)
    try:
        hull_mm3 = ConvexHull(points).volume
    except (QhullError, ValueError):
        return 1.0
    return min(1.0, float(np.count_nonzero(comp) * np.prod(spacing)) / max(hull_mm3, 1e-9))
