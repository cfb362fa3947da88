"""Diseased lung that holds little or no air: ground glass, consolidation.

An air threshold finds aerated lung only. A lung that is mostly ground glass
or consolidation ("white lung") is still lung, and a radiologist finds it as
the part of the thoracic cavity between the aerated lung and the rib cage.
Two steps, each on what the scan shows:

* :func:`grow_into_ground_glass`: ground glass (about -700 to -250 HU) is
  denser than aerated lung but lighter than any tissue around the lung (fat
  is about -100 HU). Regions of it that touch the aerated lung and are
  thicker than a partial-volume rim are lung.
* :func:`costal_fill`: dense lung (consolidation, atelectasis, a mass) lies
  between the aerated lung and the inner surface of the ribs. Rays along the
  outward normals of each lung's contour are followed; where a ray crosses
  dense tissue without a fat plane up to the rib cage (:func:`rib_cage`),
  the tissue beyond the chest wall's own inner layer is lung. Rays towards
  the mediastinum and the heart are not used, except in the mode that follows
  rays towards the body's middle to the traced aorta (``inward_deg``).

Pleural fluid is not lung: :mod:`.effusion` finds and reports it.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy import ndimage as ndi

from ..binary import distance_inside, label
from ..parallel import gaussian_filter, thread_map
from .coarse import bbox
from .morphology import axial_depth, axial_disk, axial_opening, disk

__all__ = ["smooth_axial", "grow_into_ground_glass", "costal_fill", "outside_rib_line", "skin_depth",
           "solid_organs", "lighter_than_organ", "recess_lung", "fat_planes"]


def smooth_axial(hu: np.ndarray, spacing: Sequence[float], sigma_mm: float) -> np.ndarray:
    """Gaussian smoothing of each axial slice (none across slices).

    Parameters
    ----------
    hu : (Z, Y, X) array, HU.
    spacing : 3 floats, mm.
    sigma_mm : standard deviation of the Gaussian in mm.

    Returns
    -------
    (Z, Y, X) float32 array, HU.
    """
    sigma = (0.0, sigma_mm / float(spacing[1]), sigma_mm / float(spacing[2]))
    return gaussian_filter(np.asarray(hu, np.float32), sigma, truncate=3.0)


def grow_into_ground_glass(hu_smooth: np.ndarray, lungs: np.ndarray, allowed: np.ndarray,
                           spacing: Sequence[float], *, below_hu: float = -250.0,
                           min_mm: float = 2.0, soft_hu: float = -100.0) -> np.ndarray:
    """Ground-glass regions that belong to the aerated lung.

    Parameters
    ----------
    hu_smooth : (Z, Y, X) float
        HU smoothed in-plane (about 1 mm), so noise does not decide.
    lungs : (Z, Y, X) bool
        Aerated lung.
    allowed : (Z, Y, X) bool
        Where lung may be (inside the body, off the airways and bowel gas).
    spacing : 3 floats, mm.
    below_hu : float
        Voxels lighter than this are lung-like (aerated lung or ground glass).
    min_mm : float
        Radius (mm) of the axial disk that opens the lung-like voxels outside
        ``lungs`` first: the partial-volume rim around the aerated lung and
        other parts thinner than ``2 * min_mm`` are not ground glass.
    soft_hu : float
        A voxel over or under soft tissue (smoothed HU above this in the slice
        below or above) is not ground glass: partial volume across the slice.

    Returns
    -------
    (Z, Y, X) bool
        Voxels to add (not in ``lungs``).
    """
    extra = (hu_smooth < below_hu) & allowed & ~lungs
    if extra.shape[0] > 1:
        # haze over or under soft tissue is partial volume with that tissue across the slice
        # thickness (the dome of the diaphragm, the heart), not ground glass
        soft = hu_smooth > soft_hu
        extra[1:] &= ~soft[:-1]
        extra[:-1] &= ~soft[1:]
    extra = axial_opening(extra, axial_disk(min_mm, spacing))
    lab, n = label(extra | lungs)
    if n == 0:
        return np.zeros(lungs.shape, bool)
    touched = np.zeros(n + 1, bool)
    touched[lab[lungs]] = True
    touched[0] = False
    return touched[lab] & extra


def costal_fill(hu_smooth: np.ndarray, side: np.ndarray, stop: np.ndarray, body: np.ndarray,
                bone: np.ndarray, spacing: Sequence[float], medial_x: float, *,
                fat: Optional[np.ndarray] = None, fat_hu: tuple[float, float] = (-190.0, -50.0),
                min_gap_mm: float = 3.0, max_gap_mm: float = 80.0, max_layer_mm: float = 15.0,
                min_thick_mm: float = 6.0,
                normal_mm: float = 2.0, medial_deg: float = 60.0,
                anterior_medial_deg: float = 95.0, wall_margin_mm: float = 8.0,
                wall_radius_mm: Optional[float] = None, wall_slice_too: bool = False,
                fan_deg: Sequence[float] = (0.0,), dependent_deg: Optional[float] = None,
                dependent: tuple[float, float] = (1.0, 0.0),
                inward_deg: Optional[float] = None,
                avoid: Optional[np.ndarray] = None, skin: Optional[np.ndarray] = None,
                rib_line_mm: Optional[float] = None, spine: Optional[np.ndarray] = None,
                spine_gap_mm: float = 15.0, mediastinum: Optional[np.ndarray] = None,
                aorta: Optional[np.ndarray] = None, aorta_gap_mm: float = 8.0) -> np.ndarray:
    """Dense lung between one lung and the rib cage, in one axial slice.

    From every point of the lung's contour a ray runs along the outward
    normal. Where it crosses dense tissue (no fat plane, no other lung, not
    leaving the body) and then meets bone (the rib cage) within
    ``max_gap_mm``, the tissue it crossed beyond the chest wall's own inner
    layer is lung: consolidation or atelectasis against the chest wall. Rays
    towards the mediastinum and the heart are not followed; a ray that ends on bone much
    closer to the skin than the ribs that the healthy parts of this lung touch
    went through an intercostal space to a scapula and is dropped. What is
    added must be at least ``min_thick_mm`` thick.

    Parameters
    ----------
    hu_smooth : (Y, X) float
        HU of the slice, smoothed about 1 mm.
    side : (Y, X) bool
        The lung of one side in this slice (aerated and ground glass).
    stop : (Y, X) bool
        Never lung and never crossed: the other lung, airways, gas.
    body : (Y, X) bool
        The body (filled).
    bone : (Y, X) bool
        Bone (the rib cage). With thick slices, bone of the neighbouring slices
        too (:func:`rib_cage`): ribs run obliquely, one slice shows parts of them.
    spacing : 3 floats
        Voxel size (mm) along ``(z, y, x)``.
    medial_x : float
        The body's left-right middle (column index).
    fat : (Y, X) bool, optional
        Fat planes of the slice (:func:`fat_planes`); computed from ``fat_hu`` when None.
    fat_hu : (low, high)
        Smoothed HU of fat; a fat plane thicker than about 3 mm ends a ray.
    min_gap_mm, max_gap_mm : float
        Length (mm) of dense tissue a ray must cross beyond the chest wall's
        inner layer (at most ``max_gap_mm`` in all).
    max_layer_mm : float
        The inner layer of the chest wall (pleura, extrapleural fat, the
        inner intercostal muscle), read as the 25th percentile of the runs
        from this lung to bone, is at most this thick (mm). It is never added.
    min_thick_mm : float
        What is added is opened by a disk of this diameter (mm).
    normal_mm : float
        Smoothing (mm) of the contour before its normals are taken.
    medial_deg : float
        Rays within this angle of the direction towards the body's middle
        (mediastinum) are not followed.
    anterior_medial_deg : float
        Nor anterior rays within this angle of the medial direction (the heart).
    wall_margin_mm : float
        A ray ending on bone more than this much closer to the skin than the
        median of the bone that this lung touches directly is dropped.
    wall_radius_mm : float, optional
        Take that median over the bone the lung touches within this distance
        (mm) of the ray's end, where it touches it at least three times, and
        over the whole slice elsewhere: the chest wall is not equally thick
        all round, and a ray to the back of the cage is judged against the
        ribs there, not against deeper ones elsewhere in the slice.
    wall_slice_too : bool
        With ``wall_radius_mm``, judge the ray against the deepest of the
        medians beside its end, beside where it leaves the lung (the ribs on
        both sides of a gap between two ribs; not for a ray that ends on a
        piece of bone the lung touches, a rib) and over the slice: a single
        slice shows the scapula just outside a rib the lung touches beside it,
        or beyond a gap between two ribs.
    fan_deg : sequence of float
        Angles (degrees) by which each normal is turned to give the rays; the
        default follows the normal only.
    dependent_deg, dependent : float, optional, and (dy, dx)
        Follow only rays within ``dependent_deg`` of the direction ``dependent``
        (the side gravity pulls towards: ``(1, 0)``, straight back, for a supine
        patient), medial ones included, instead of the medial rules above:
        dependent lung (beside the spine, lying supine), which the normals of
        the aerated lung do not face.
    inward_deg : float, optional
        Follow only rays within this angle of the direction towards the body's
        middle, instead of the medial rules above: dense lung against the
        mediastinal pleura, where ``bone`` holds what such a ray may end on (the
        descending aorta, the vertebral body).
    avoid : (Y, X) bool, optional
        A ray that crosses or ends in these voxels is dropped (solid organs, the
        vertebral column).
    skin : (Y, X) float, optional
        Depth (mm) below the skin, :func:`skin_depth` of ``body`` (computed when None).
    rib_line_mm : float, optional
        Close the rib cage of a slice that shows the ribs in fragments (one thin
        slice): the points where this lung touches the ribs, joined to their
        neighbours (around the lung) up to this distance (mm), stop the rays
        like bone (:func:`outside_rib_line`). Without it a ray between two rib
        fragments crosses the intercostal muscles to the muscles and bones
        outside the cage.
    spine, spine_gap_mm : (Y, X) bool and float, optional
        Where a ray may end on the vertebral column (the paravertebral gutter,
        :func:`vertebral_column`; ``bone`` should hold it). Such a ray must cross
        at least ``spine_gap_mm`` of dense tissue beyond the chest wall's inner
        layer, slantwise for a turned ray (the paravertebral soft tissue between a
        healthy lung and the rib heads is thinner: intercostal vessels, nerves,
        fat), and no voxel of ``mediastinum``.
    mediastinum : (Y, X) bool, optional
        The posterior mediastinum in front of the vertebral body (aorta,
        oesophagus, azygos vein).
    aorta, aorta_gap_mm : (Y, X) bool and float, optional
        The part of ``spine`` that is the side or back of the descending aorta,
        where healthy lung lies against its wall (which ``aorta`` includes) with
        only the pleura between: a ray that ends there needs ``aorta_gap_mm`` of
        dense tissue instead of ``spine_gap_mm``, and what it adds reaches the
        aorta (no chest-wall layer is left before it).

    Returns
    -------
    (Y, X) bool
        Dense voxels to add to the lung of this side.
    """
    out = np.zeros(side.shape, bool)
    sy, sx = float(spacing[1]), float(spacing[2])
    if np.count_nonzero(side) < 10:
        return out
    if fat is None:
        fat = fat_planes(hu_smooth[None], spacing, fat_hu)[0]
    # the partial-volume rim around the lung is crossed too, not only dense tissue
    crossable = body & ~fat & ~stop & ~bone & ~side
    crossable[[0, -1], :] = crossable[:, [0, -1]] = False  # a crop shows nothing beyond its edge

    # contour points and their outward normals (in mm), in a box around the lung that
    # holds the smoothing's reach (the same values as on the whole slice)
    sigma = (normal_mm / sy, normal_mm / sx)
    near = bbox(side, [int(4.0 * g + 0.5) + 2 for g in sigma])
    gy, gx = np.gradient(ndi.gaussian_filter(side[near].astype(np.float32), sigma, truncate=4.0), sy, sx)
    ey, ex = np.nonzero(side[near] & ~ndi.binary_erosion(side[near]))
    vy, vx = -gy[ey, ex], -gx[ey, ex]
    ey, ex = ey + near[0].start, ex + near[1].start
    norm = np.hypot(vy, vx)
    keep = norm > 1e-6
    ey, ex, vy, vx = ey[keep], ex[keep], vy[keep] / norm[keep], vx[keep] / norm[keep]
    # rays: each normal turned by the fan's angles
    ang = np.deg2rad(np.asarray(fan_deg, float))
    normal = np.tile(ang == 0, ey.size)
    slant = np.tile(1.0 / np.cos(ang), ey.size)  # a turned ray crosses the chest wall's layer slantwise
    vy, vx = ((vy[:, None] * np.cos(ang) + vx[:, None] * np.sin(ang)).ravel(),
              (vx[:, None] * np.cos(ang) - vy[:, None] * np.sin(ang)).ravel())
    ey, ex = np.repeat(ey, ang.size), np.repeat(ex, ang.size)
    if dependent_deg is not None:
        keep = vy * dependent[0] + vx * dependent[1] >= np.cos(np.deg2rad(dependent_deg))
    elif inward_deg is not None:
        keep = vx * np.sign(medial_x - ex) >= np.cos(np.deg2rad(inward_deg))
    else:
        # not towards the mediastinum or the heart
        medial = vx * np.sign(medial_x - ex)
        keep = (medial <= np.cos(np.deg2rad(medial_deg))) & \
            ~((vy < -0.2) & (medial > np.cos(np.deg2rad(anterior_medial_deg))))
    ey, ex, vy, vx, normal, slant = ey[keep], ex[keep], vy[keep], vx[keep], normal[keep], slant[keep]
    if ey.size == 0:
        return out

    step = 0.5 * min(sy, sx)
    dist = np.arange(1, int(max_gap_mm / step) + 1) * step
    rays = _Rays(ey, ex, vy, vx, dist, (sy, sx), side.shape)
    rows = np.arange(ey.size)

    def run_to(passable, hard):
        # where each ray ends, whether on ``hard`` (bone), and the length it crossed (mm)
        first, end, any_end = rays.march(side, passable)
        end_y, end_x, inside = rays.points(rows, end)
        return first, end, any_end & hard[end_y, end_x] & inside, (end - first) * step, end_y, end_x

    first, end, on_bone, length, end_y, end_x = run_to(crossable, bone)
    # the chest wall's own inner layer (pleura, extrapleural fat, the inner side of
    # the intercostal muscles): what healthy lung keeps between itself and the ribs,
    # read from the shortest runs to bone; only dense tissue beyond it is lung
    layer = 0.0
    if np.count_nonzero(on_bone & normal) >= 10:
        layer = min(float(np.percentile(length[on_bone & normal], 25)), max_layer_mm)
    contact = on_bone & (length <= layer * slant + min_gap_mm)
    if rib_line_mm is not None and np.count_nonzero(contact) >= 2:
        beyond = outside_rib_line(end_y[contact], end_x[contact], side, (sy, sx), rib_line_mm)
        crossable = crossable & ~beyond
        first, end, on_bone, length, end_y, end_x = run_to(crossable, bone | beyond)
        contact = on_bone & (length <= layer * slant + min_gap_mm)
    ok = on_bone & ~contact

    def crosses(mask, which):
        # whether each ray of ``which`` meets ``mask`` from where it leaves the lung to its end
        py, px, in_span = rays.span(np.flatnonzero(which), first, end + 1)
        return (mask[py, px] & in_span).any(axis=1)

    if spine is not None:
        on_spine = spine[end_y, end_x]
        gap = np.full(on_spine.shape, spine_gap_mm)
        if aorta is not None:
            gap[aorta[end_y, end_x]] = aorta_gap_mm
        ok &= ~(on_spine & (length <= (layer + gap) * slant))
        if mediastinum is not None:
            ok[ok & on_spine] = ~crosses(mediastinum, ok & on_spine)
    if avoid is not None:
        ok[ok] = ~crosses(avoid, ok)

    # bone much shallower than the ribs this lung touches is a scapula or an arm
    if skin is None:
        skin = skin_depth(body[None], spacing)[0]
    depth = skin[end_y, end_x]
    wall = _rib_depth(depth, contact & normal, ok, (ey, ex), (end_y, end_x), bone, (sy, sx),
                      wall_radius_mm, wall_slice_too)
    ok &= depth >= wall - wall_margin_mm
    if not ok.any():
        return out
    # a ray crosses only passable tissue from where it leaves the lung to where it ends; the
    # chest wall's inner layer is not lung, but the aorta's disc holds its wall and the pleura
    inner = np.rint(layer * slant / step).astype(np.int64)
    if aorta is not None:
        inner[aorta[end_y, end_x]] = 0
    stop_at = np.maximum(end - inner, first)
    py, px, in_span = rays.span(np.flatnonzero(ok), first, stop_at)
    out[py[in_span], px[in_span]] = True
    if not out.any():
        return out
    # neighbouring rays diverge: join them into one region (in a box around them: the same
    # result as on the whole slice, the box leaves room for both operations)
    join = disk(max(1, int(round(2.0 / min(sy, sx)))))
    thick = disk(max(1, int(round(min_thick_mm / 2 / min(sy, sx)))))
    ys, xs = np.nonzero(out)
    m = 2 * (join.shape[0] + thick.shape[0])
    box = (slice(max(ys.min() - m, 0), ys.max() + m + 1), slice(max(xs.min() - m, 0), xs.max() + m + 1))
    joined = ndi.binary_closing(out[box], join) & crossable[box]
    out[box] = ndi.binary_opening(joined, thick)
    return out


def _rib_depth(depth: np.ndarray, touch: np.ndarray, ok: np.ndarray, start, end, bone: np.ndarray,
               sampling, wall_radius_mm: Optional[float], wall_slice_too: bool) -> np.ndarray:
    """How deep under the skin (mm) the ribs lie that each ray of :func:`costal_fill` is judged against.

    The ribs this lung touches (``touch``: rays that end on bone within the chest
    wall's inner layer, along a normal) lie at ``depth`` (mm under the skin, per
    ray); a ray that ends on bone much shallower than them reached a scapula or
    an arm. The bound is the median depth of the ribs touched in the whole slice
    or, with ``wall_radius_mm``, of those within that distance of the ray's end
    (at least three; ``wall_slice_too``: the deeper of the two, and also of the
    ribs beside where the ray leaves the lung, unless it ends on a piece of bone
    the lung touches somewhere: a rib). Only the rays ``ok`` get a local bound.

    Returns
    -------
    (n_rays,) float
        Depth (mm); ``-inf`` where no bound is known (fewer than ten contacts).
    """
    (ey, ex), (end_y, end_x), (sy, sx) = start, end, sampling
    wall = np.full(depth.size, float(np.median(depth[touch])) if np.count_nonzero(touch) >= 10 else -np.inf)
    if wall_radius_mm is None or not touch.any() or not ok.any():
        return wall
    rays_ok = np.flatnonzero(ok)

    def beside_median(py, px):
        # median depth of the bone the lung touches within ``wall_radius_mm`` of each ray's
        # point (at least three contacts), NaN elsewhere
        near = (np.subtract.outer(py[rays_ok], end_y[touch]) * sy) ** 2 + \
            (np.subtract.outer(px[rays_ok], end_x[touch]) * sx) ** 2 <= wall_radius_mm ** 2
        med = np.full(rays_ok.size, np.nan)
        beside = near.sum(1) >= 3
        if beside.any():
            med[beside] = np.nanmedian(np.where(near[beside], depth[touch], np.nan), axis=1)
        return med

    local = beside_median(end_y, end_x)
    known = ~np.isnan(local)
    wall[rays_ok[known]] = np.maximum(local[known], wall[rays_ok[known]]) if wall_slice_too \
        else local[known]
    if wall_slice_too:
        # where the ray leaves the lung lie the ribs on both sides of the gap between two
        # ribs that a ray to a scapula crosses (its far end may lie too far from them); a
        # ray that ends on a piece of bone the lung touches somewhere ends on a rib
        start_med = beside_median(ey, ex)
        pieces, _ = label(bone, np.ones((3, 3), bool))
        touched = np.zeros(pieces.max() + 1, bool)
        touched[pieces[end_y[touch], end_x[touch]]] = True
        touched[0] = False
        on_rib = touched[pieces[end_y[rays_ok], end_x[rays_ok]]]
        start_med[on_rib] = np.nan
        known = ~np.isnan(start_med)
        wall[rays_ok[known]] = np.maximum(start_med[known], wall[rays_ok[known]])
    return wall


class _Rays:
    """Straight rays sampled every ``dist`` mm from their start pixels, on a ``shape`` grid.

    Sample ``k`` of ray ``i`` is pixel ``rint((ey, ex)[i] + (vy, vx)[i] * dist[k] / (sy, sx))``,
    clipped to the grid; ``inside`` says whether it was on the grid before clipping.
    Most rays end within a few mm: :meth:`march` reads the samples a chunk at a time
    (``chunk`` samples first, twice as many each time after, up to 8 times that) and
    stops following a ray where it ends.
    """

    def __init__(self, ey, ex, vy, vx, dist, sampling, shape, chunk: int = 8):
        self.ey, self.ex, self.vy, self.vx = ey, ex, vy, vx
        self.dist, self.sy, self.sx = dist, float(sampling[0]), float(sampling[1])
        self.shape, self.chunk = shape, chunk

    def points(self, rays: np.ndarray, k: np.ndarray):
        """Pixels (y, x) and ``inside`` of samples ``k`` (broadcast against ``rays[:, None]``)."""
        r = rays[:, None] if k.ndim == 2 else rays
        d = self.dist[np.minimum(k, self.dist.size - 1)]
        py = np.rint(self.ey[r] + self.vy[r] * d / self.sy).astype(np.int64)
        px = np.rint(self.ex[r] + self.vx[r] * d / self.sx).astype(np.int64)
        ny, nx = self.shape
        inside = (py >= 0) & (py < ny) & (px >= 0) & (px < nx)
        return np.clip(py, 0, ny - 1), np.clip(px, 0, nx - 1), inside

    def march(self, side: np.ndarray, passable: np.ndarray):
        """Where each ray leaves ``side`` and where it then first meets what is not ``passable``.

        Returns ``first`` (the first sample off ``side`` or off the grid; 0 for a ray
        that never leaves), ``end`` (the first sample after that, ``first`` included,
        off ``passable`` or off the grid; the last sample if none) and ``any_end``
        (whether such a sample exists), each (n_rays,).
        """
        n = self.ey.size
        first = np.full(n, -1, np.int64)
        end = np.full(n, -1, np.int64)
        active = np.arange(n)
        c0, size = 0, self.chunk
        while c0 < self.dist.size:
            if active.size == 0:
                break
            k = np.arange(c0, min(c0 + size, self.dist.size))[None, :]
            py, px, inside = self.points(active, k)
            off_side = ~(side[py, px] & inside)
            started = np.logical_or.accumulate(off_side, axis=1) | (first[active] >= 0)[:, None]
            new = (first[active] < 0) & started.any(axis=1)
            first[active[new]] = c0 + np.argmax(started[new], axis=1)
            blocked = started & ~(passable[py, px] & inside)
            hit = blocked.any(axis=1)
            end[active[hit]] = c0 + np.argmax(blocked[hit], axis=1)
            active = active[~hit]
            c0, size = c0 + size, min(2 * size, 8 * self.chunk)
        any_end = end >= 0
        end[~any_end] = self.dist.size - 1
        first[first < 0] = 0
        return first, end, any_end

    def span(self, rays: np.ndarray, start: np.ndarray, stop: np.ndarray):
        """The samples ``start <= k < stop`` of ``rays`` (``start``, ``stop``: (n_rays,)).

        Returns their pixels (y, x) as (len(rays), longest span) arrays and which of
        those lie in each ray's span.
        """
        start, stop = start[rays], stop[rays]
        k = start[:, None] + np.arange(max(int((stop - start).max(initial=0)), 1))[None, :]
        py, px, _ = self.points(rays, k)
        return py, px, k < stop[:, None]


def outside_rib_line(ys: np.ndarray, xs: np.ndarray, side: np.ndarray, sampling: Sequence[float],
                     max_mm: float) -> np.ndarray:
    """What lies beyond the rib cage of one slice, between the points where a lung touches it.

    The points, in their order around the lung's centre, are joined by straight
    lines (the rib line) where at most ``max_mm`` apart; a pixel lies beyond the
    rib line when it is farther from the centre than the line in its direction.

    Parameters
    ----------
    ys, xs : (N,) int arrays
        Pixels of bone (or of the chest wall's inner layer) that the lung touches.
    side : (Y, X) bool
        The lung.
    sampling : 2 floats
        Pixel size (mm) along ``(y, x)``.
    max_mm : float
        Longest line (mm): wider gaps, where the lung does not touch the ribs, stay open.

    Returns
    -------
    (Y, X) bool
    """
    if ys.size < 2:
        return np.zeros(side.shape, bool)
    sy, sx = float(sampling[0]), float(sampling[1])
    cy, cx = (float(np.mean(c)) for c in np.nonzero(side))
    # the points in mm about the centre, ordered by angle, each joined to the next
    py, px = (ys - cy) * sy, (xs - cx) * sx
    angle = np.arctan2(py, px)
    order = np.argsort(angle)
    angle, py, px = angle[order], py[order], px[order]
    qy, qx = np.roll(py, -1), np.roll(px, -1)
    span = np.diff(np.append(angle, angle[0] + 2 * np.pi))
    joined = (np.hypot(qy - py, qx - px) <= max_mm) & (span < np.pi)
    gy, gx = np.mgrid[:side.shape[0], :side.shape[1]]
    gy, gx = (gy - cy) * sy, (gx - cx) * sx
    theta = np.arctan2(gy, gx)
    # the segment whose angular span holds each pixel's direction
    seg = (np.searchsorted(angle, theta, side="right") - 1) % angle.size
    ay, ax, by, bx = py[seg], px[seg], qy[seg], qx[seg]
    # distance from the centre to the segment's line along the pixel's direction
    uy, ux = np.sin(theta), np.cos(theta)
    den = ux * (by - ay) - uy * (bx - ax)
    with np.errstate(divide="ignore", invalid="ignore"):
        reach = (ax * (by - ay) - ay * (bx - ax)) / den
    return joined[seg] & (reach > 0) & (np.hypot(gy, gx) > reach)


def skin_depth(body: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Distance (mm) of each voxel of ``body`` (Z, Y, X) from the skin, per axial slice."""
    return axial_depth(body, spacing)


def solid_organs(dense: np.ndarray, spacing: Sequence[float], radius_mm: float = 35.0,
                 grid_mm: float = 2.0) -> np.ndarray:
    """Parts of dense tissue that a disk of ``radius_mm`` fits in, per axial slice.

    The heart and the liver are the large solid organs next to the lung: a disk
    of 70 mm fits in them, not in a dependent band of consolidated lung, the
    aorta or the chest wall's muscles between the ribs.

    Parameters
    ----------
    dense : (Z, Y, X) bool
        Soft tissue (no fat, no air, no bone).
    spacing : 3 floats, mm.
    radius_mm : float
    grid_mm : float
        The opening is computed on every k-th voxel in-plane, k the largest step
        at most this size (mm).

    Returns
    -------
    (Z, Y, X) bool
        The opening of ``dense`` by an axial disk of ``radius_mm``.
    """
    ky, kx = (max(1, int(grid_mm // float(s))) for s in spacing[1:])
    sampling = (ky * float(spacing[1]), kx * float(spacing[2]))
    sub = dense[:, ::ky, ::kx]
    coarse = np.zeros(sub.shape, bool)

    def open_slice(z: int) -> None:
        core = distance_inside(np.pad(sub[z], 1), sampling)[1:-1, 1:-1] > radius_mm
        if core.any():
            coarse[z] = distance_inside(~core, sampling) <= radius_mm

    thread_map(open_slice, range(sub.shape[0]))
    out = coarse.repeat(ky, axis=1).repeat(kx, axis=2)[:, :dense.shape[1], :dense.shape[2]]
    return out & dense


def lighter_than_organ(organs: np.ndarray, hu_smooth: np.ndarray, lung: np.ndarray,
                       spacing: Sequence[float], *, core_mm: float = 10.0, sigma_mm: float = 2.0,
                       sds: float = 4.0, thick_mm: float = 6.0, touch_mm: float = 3.0
                       ) -> np.ndarray:
    """Parts of the solid organs that read lighter than the organ itself: dense lung against it.

    :func:`solid_organs` finds the liver, the spleen and the heart by their size,
    and a disk that fits in the liver also covers the consolidated lung of the
    posterior recess lying against it. A radiologist tells them apart by their
    density: airless lung reads lower than the liver and the spleen (about 20-40
    HU against 45-65 HU without contrast; it enhances less with contrast). In
    each slice, each organ's level and spread are the median and the robust
    standard deviation (from the median absolute deviation) of its deep part
    (``core_mm`` from its edge), so the organ's texture and the scan's noise
    set them; what reads more than ``sds`` spreads below that level (a Gaussian
    mean of the organ's voxels, ``sigma_mm``), is thick (opened by a disk of
    ``thick_mm``) and touches the lung (within ``touch_mm`` in-plane, or in the
    next slice) is returned. An organ that reads as low as the lung beside it (a
    fatty liver) gives nothing there: the rays stay out of it as before.

    Parameters
    ----------
    organs : (Z, Y, X) bool
        :func:`solid_organs` of the soft tissue.
    hu_smooth : (Z, Y, X) float
        HU smoothed about 1 mm in-plane.
    lung : (Z, Y, X) bool
        The lung found so far.
    spacing : 3 floats, mm.
    core_mm, sigma_mm, sds, thick_mm, touch_mm : float

    Returns
    -------
    (Z, Y, X) bool
        Voxels of ``organs`` to treat as not organ.
    """
    lighter = np.zeros(organs.shape, bool)
    sampling = tuple(float(s) for s in spacing[1:])
    sigma = tuple(sigma_mm / s for s in sampling)
    thick = axial_disk(thick_mm / 2.0, spacing)[0]

    def one(z: int) -> None:
        if not organs[z].any():
            return
        box = bbox(organs[z], [int(np.ceil(4.0 * g)) + 2 for g in sigma])
        organ = organs[z][box]
        weight = ndi.gaussian_filter(organ.astype(np.float32), sigma)
        mean = ndi.gaussian_filter(np.where(organ, hu_smooth[z][box], 0.0).astype(np.float32), sigma)
        mean /= np.maximum(weight, 1e-6)
        core = distance_inside(organ, sampling) > core_mm
        parts, n = label(organ)
        low = np.zeros(organ.shape, bool)
        for i in range(1, n + 1):
            part = parts == i
            deep = mean[core & part]
            if deep.size < 50:
                continue
            level = np.median(deep)
            spread = 1.4826 * np.median(np.abs(deep - level))  # robust sd
            low |= part & (mean < level - sds * spread)
        lighter[z][box] = ndi.binary_opening(low, thick)

    thread_map(one, range(organs.shape[0]))
    if not lighter.any():
        return lighter
    # what touches the lung, in its slice or the next (the partial-volume rim and the
    # pleura between: within ``touch_mm``)
    footprint = _reach(touch_mm, spacing)
    box = bbox(lighter, [r // 2 + 1 for r in footprint.shape])
    pieces, n = label(lighter[box])
    near = ndi.binary_dilation(lung[box], footprint) & lighter[box]
    keep = np.zeros(n + 1, bool)
    keep[np.unique(pieces[near])] = True
    keep[0] = False
    out = np.zeros(organs.shape, bool)
    out[box] = keep[pieces]
    return out


def _reach(radius_mm: float, spacing: Sequence[float]) -> np.ndarray:
    """(3, Y, X) footprint: an axial disk of ``radius_mm`` and the voxels above and below its centre."""
    disk2d = axial_disk(radius_mm, spacing)[0]
    footprint = np.zeros((3,) + disk2d.shape, bool)
    footprint[1] = disk2d
    footprint[[0, 2], disk2d.shape[0] // 2, disk2d.shape[1] // 2] = True
    return footprint


def recess_lung(lighter: np.ndarray, cage: np.ndarray, gas: np.ndarray, spacing: Sequence[float], *,
                wall_mm: float = 10.0, gas_mm: float = 5.0, share: float = 0.5) -> np.ndarray:
    """Pieces of :func:`lighter_than_organ` that line the rib cage: dense lung of the recesses.

    The posterior recess runs down between the liver (or the spleen) and the
    ribs; consolidated or atelectatic lung there is a band along the chest wall,
    continuous with the lung above. A piece (26-connected) of ``lighter`` is
    returned when at least ``share`` of it lies within ``wall_mm`` of the rib
    cage in its slice and none of it lies within ``gas_mm`` of gas that is not
    lung (fluid in the stomach or the bowel, under the dome, reads lighter than
    the spleen or the liver it lies against too). Pleural fluid in the recess
    reads lighter than the organ as well: what of it joins the effusion found
    later is taken back (``segment_lungs``).

    Parameters
    ----------
    lighter : (Z, Y, X) bool
        :func:`lighter_than_organ`.
    cage : (Z, Y, X) bool
        The rib cage (:func:`~.skeleton.rib_cage`).
    gas : (Z, Y, X) bool
        Gas in the body that is not lung.
    spacing : 3 floats, mm.
    wall_mm, gas_mm, share : float

    Returns
    -------
    (Z, Y, X) bool
    """
    out = np.zeros(lighter.shape, bool)
    if not lighter.any():
        return out
    sampling = tuple(float(s) for s in spacing[1:])
    box = bbox(lighter, [r // 2 + 1 for r in _reach(max(wall_mm, gas_mm), spacing).shape])
    piece = lighter[box]
    pieces, n = label(piece, np.ones((3, 3, 3), bool))
    wall = np.zeros(piece.shape, bool)
    ribs = cage[box]

    def one(z: int) -> None:
        if ribs[z].any():
            wall[z] = piece[z] & (distance_inside(~ribs[z], sampling) <= wall_mm)

    thread_map(one, np.flatnonzero(piece.any(axis=(1, 2))))
    gassy = ndi.binary_dilation(gas[box], _reach(gas_mm, spacing)) & piece
    total = np.bincount(pieces.ravel(), minlength=n + 1)
    keep = (np.bincount(pieces[wall], minlength=n + 1) >= share * total) & \
        (np.bincount(pieces[gassy], minlength=n + 1) == 0)
    keep[0] = False
    out[box] = keep[pieces]
    return out


def fat_planes(hu_smooth: np.ndarray, spacing: Sequence[float],
               fat_hu: tuple[float, float] = (-190.0, -50.0), *,
               lung: Optional[np.ndarray] = None, min_area_mm2: float = 25.0,
               pleura_mm: float = 2.0) -> np.ndarray:
    """Fat planes: fat thicker than about 3 mm (thinner bands are partial volume).

    With ``lung``, small islands of fat are planes only against the lung.
    Consolidated lung that is partly aerated (lobules and air bronchograms
    inside it) reads in the fat range in patches a few mm across, which would
    end the rays that look for it (:func:`costal_fill`); the fat that parts the
    lung from the chest wall or the mediastinum runs along them, and a small pad
    of extrapleural fat lies right against the aerated lung.

    Parameters
    ----------
    hu_smooth : (Z, Y, X) float
        HU smoothed in-plane about 1 mm.
    spacing : 3 floats, mm.
    fat_hu : (low, high)
        Smoothed HU of fat.
    lung : (Z, Y, X) bool, optional
        The lung found so far.
    min_area_mm2 : float
        Islands (8-connected in their slice) smaller than this (mm²) that come
        no nearer than ``pleura_mm`` to ``lung`` are not fat planes.
    pleura_mm : float
        How near (mm, in-plane) to the lung a small island is still a plane.

    Returns
    -------
    (Z, Y, X) bool
    """
    fat = (hu_smooth >= fat_hu[0]) & (hu_smooth <= fat_hu[1])
    fat = axial_opening(fat, axial_disk(1.5, spacing))
    if lung is None or not fat.any():
        return fat
    min_px = min_area_mm2 / (float(spacing[1]) * float(spacing[2]))
    reach = axial_disk(pleura_mm, spacing)[0]
    eight = np.ones((3, 3), bool)

    def planes(z: int) -> None:  # slices are independent: one per thread
        lab, n = label(fat[z], eight)
        if n == 0:
            return
        near = ndi.binary_dilation(lung[z], reach)
        keep = np.bincount(lab.ravel(), minlength=n + 1) >= min_px
        keep[lab[near]] = True
        keep[0] = False
        fat[z] = keep[lab]

    thread_map(planes, range(fat.shape[0]))
    return fat
