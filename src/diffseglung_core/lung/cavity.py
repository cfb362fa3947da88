"""Diseased lung that holds little or no air: ground glass, consolidation, effusion.

An air threshold finds aerated lung only. A lung that is mostly ground glass
or consolidation ("white lung") is still lung, and a radiologist finds it as
the part of the thoracic cavity between the aerated lung and the rib cage.
Three steps, each on what the scan shows:

* :func:`grow_into_ground_glass`: ground glass (about -700 to -250 HU) is
  denser than aerated lung but lighter than any tissue around the lung (fat
  is about -100 HU). Regions of it that touch the aerated lung and are
  thicker than a partial-volume rim are lung.
* :func:`costal_fill`: dense lung (consolidation, atelectasis, a mass) lies
  between the aerated lung and the inner surface of the ribs. Rays from the
  deepest point of each lung are followed outwards; where a ray leaves the
  lung through dense tissue that runs without a fat plane up to the rib cage,
  that tissue is lung. Rays towards the mediastinum and the heart are not
  used, and only runs of neighbouring rays that agree are kept.
* :func:`find_effusion`: a pleural effusion is fluid (about 0-20 HU) in a
  crescent along the chest wall, thin for its extent; it is reported, not
  called lung.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy import ndimage as ndi

from .morphology import disk

__all__ = ["smooth_axial", "grow_into_ground_glass", "costal_fill", "find_effusion"]


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
    return ndi.gaussian_filter(np.asarray(hu, np.float32), sigma, output=np.float32, truncate=3.0)


def _axial_footprint(radius_mm: float, spacing: Sequence[float]) -> np.ndarray:
    return disk(max(1, int(round(radius_mm / min(float(spacing[1]), float(spacing[2]))))))[None]


def grow_into_ground_glass(hu_smooth: np.ndarray, lungs: np.ndarray, allowed: np.ndarray,
                           spacing: Sequence[float], *, below_hu: float = -250.0,
                           min_mm: float = 2.0) -> np.ndarray:
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

    Returns
    -------
    (Z, Y, X) bool
        Voxels to add (not in ``lungs``).
    """
    extra = (hu_smooth < below_hu) & allowed & ~lungs
    extra = ndi.binary_opening(extra, _axial_footprint(min_mm, spacing))
    lab, n = ndi.label(extra | lungs)
    if n == 0:
        return np.zeros(lungs.shape, bool)
    touched = np.zeros(n + 1, bool)
    touched[np.unique(lab[lungs])] = True
    touched[0] = False
    return touched[lab] & extra


def costal_fill(hu_smooth: np.ndarray, side: np.ndarray, stop: np.ndarray, body: np.ndarray,
                bone: np.ndarray, spacing: Sequence[float], medial_x: float, *,
                fat_hu: tuple[float, float] = (-190.0, -50.0), dense_hu: float = -250.0,
                n_rays: int = 720, min_depth_mm: float = 8.0, min_gap_mm: float = 4.0,
                min_thick_mm: float = 7.0,
                max_gap_mm: float = 110.0, wall_tolerance_mm: float = 6.0,
                rib_window_deg: float = 30.0, intercostal_deg: float = 8.0,
                envelope_deg: float = 90.0, min_arc_mm: float = 15.0, medial_deg: float = 60.0,
                anterior_medial_deg: float = 95.0) -> np.ndarray:
    """Dense lung between one lung and the rib cage, in one axial slice.

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
        too: ribs run obliquely, so one slice shows only parts of them.
    spacing : 3 floats
        Voxel size (mm) along ``(z, y, x)``.
    medial_x : float
        The body's left-right middle (column index).
    fat_hu : (low, high)
        Smoothed HU of fat: a fat plane thicker than about 3 mm ends a ray
        before the ribs (the mediastinum, pericardial fat), so nothing is
        added along it.
    dense_hu : float
        Smoothed HU above which a voxel that is not fat or bone may be added
        (the ground-glass limit: consolidation mixed with air reads from here).
    n_rays : int
        Number of rays around the lung's deepest point.
    min_depth_mm : float
        The lung must be at least this deep somewhere in the slice (a thin
        crescent around the dome of the diaphragm gives no reliable centre).
    min_gap_mm, max_gap_mm : float
        The dense run between the lung and the ribs must be this long (mm).
    min_thick_mm : float
        What is added is opened by a disk of this diameter (mm): bands along
        the chest wall thinner than that are left out.
    wall_tolerance_mm : float
        The dense run must reach within this distance of the rib cage.
    rib_window_deg : float
        Window (degrees) in which the innermost bone is the rib cage: a hit
        more than 5 mm beyond the window's 20th percentile went through an
        intercostal space to a scapula or an arm.
    intercostal_deg : float
        A ray that meets no bone takes the rib cage of rays at most this far
        (degrees) away; farther, it is not used.
    envelope_deg : float
        The lung's costal contour is bridged across recesses up to this wide
        (degrees, a closing of the lung's radius along the rays); nothing is
        added beyond that contour, nor beyond the rib cage.
    min_arc_mm : float
        Neighbouring rays that pass must cover at least this length of chest
        wall (mm); single rays are never used.
    medial_deg : float
        Rays within this angle of the direction towards the body's middle
        (mediastinum) are not used.
    anterior_medial_deg : float
        Anterior rays within this angle of the medial direction (the heart)
        are not used either.

    Returns
    -------
    (Y, X) bool
        Dense voxels to add to the lung of this side.
    """
    out = np.zeros(side.shape, bool)
    sy, sx = float(spacing[1]), float(spacing[2])
    if np.count_nonzero(side) < 10:
        return out
    depth = ndi.distance_transform_edt(side, sampling=(sy, sx))
    if depth.max() < min_depth_mm:
        return out
    oy, ox = np.unravel_index(int(np.argmax(depth)), side.shape)
    yy, xx = np.nonzero(body)
    r = np.hypot((yy - oy) * sy, (xx - ox) * sx)
    b = ((np.arctan2((yy - oy) * sy, (xx - ox) * sx) + np.pi) * (n_rays / (2 * np.pi))).astype(np.int64)
    b %= n_rays
    h = hu_smooth[yy, xx]

    in_lung = side[yy, xx]
    r_lung = np.full(n_rays, -1.0)
    np.maximum.at(r_lung, b[in_lung], r[in_lung])
    has_lung = r_lung >= 0
    beyond = r > r_lung[b]
    fat = (hu_smooth >= fat_hu[0]) & (hu_smooth <= fat_hu[1])
    fat = ndi.binary_opening(fat, disk(max(1, int(round(1.5 / min(sy, sx))))))
    r_bone = _first_radius(b, r, beyond & bone[yy, xx], n_rays)
    # the image edge ends a ray too: a crop shows no ribs beyond it
    frame = np.zeros(side.shape, bool)
    frame[[0, -1], :] = frame[:, [0, -1]] = True
    r_stop = _first_radius(b, r, beyond & (fat[yy, xx] | stop[yy, xx] | frame[yy, xx]), n_rays)
    rib = _rib_radius(np.where(has_lung, r_bone, np.inf), rib_window_deg, intercostal_deg, n_rays)

    centre = (np.arange(n_rays) + 0.5) * (2 * np.pi / n_rays) - np.pi
    medial = np.cos(centre) * np.sign(medial_x - ox)
    anterior = np.sin(centre) < -0.2
    excluded = (medial > np.cos(np.deg2rad(medial_deg))) | \
        (anterior & (medial > np.cos(np.deg2rad(anterior_medial_deg))))
    # the lung's own costal contour, recesses bridged: where healthy lung touches
    # the chest wall on both sides of a recess, the wall runs across it
    width = max(3, int(round(envelope_deg / 360.0 * n_rays)))
    envelope = ndi.grey_closing(np.maximum(r_lung, 0.0), size=width, mode="wrap")
    limit = np.minimum(rib, envelope)
    gap = limit - r_lung
    with np.errstate(invalid="ignore"):
        ok = has_lung & np.isfinite(rib) & ~excluded & (r_stop >= limit - wall_tolerance_mm) & \
            (gap >= min_gap_mm) & (gap <= max_gap_mm)
    limit = np.where(np.isfinite(limit), limit, 0.0)
    ok &= _long_runs(ok, limit * (2 * np.pi / n_rays), min_arc_mm)
    if not ok.any():
        return out
    dense = (h > dense_hu) & ~fat[yy, xx] & ~bone[yy, xx]
    sel = ok[b] & beyond & (r < limit[b]) & dense
    out[yy[sel], xx[sel]] = True
    # what is added must be thick: a ray that grazes the chest wall crosses its
    # inner layer obliquely and would add a thin band along it
    out = ndi.binary_opening(out, disk(max(1, int(round(min_thick_mm / 2 / min(sy, sx))))))
    # keep what touches the lung
    lab, n = ndi.label(out)
    if n:
        touch = np.zeros(n + 1, bool)
        touch[np.unique(lab[ndi.binary_dilation(side, iterations=2)])] = True
        touch[0] = False
        out = touch[lab]
    return out


def _first_radius(bins: np.ndarray, r: np.ndarray, sel: np.ndarray, n: int) -> np.ndarray:
    """Smallest ``r`` of the selected points in each bin (inf where none)."""
    out = np.full(n, np.inf)
    np.minimum.at(out, bins[sel], r[sel])
    return out


def _rib_radius(first_bone: np.ndarray, window_deg: float, gap_deg: float, n: int) -> np.ndarray:
    """Inner radius of the rib cage per ray, intercostal spaces and outliers mended.

    The ribs are the innermost bone around the lung: a hit more than 5 mm
    beyond the 20th percentile of the hits within ``window_deg`` went through
    an intercostal space to a scapula or an arm and takes that percentile. A
    ray without a hit takes the lowest hit within ``gap_deg / 2`` on either
    side. Rays left without a value are inf.
    """
    vals = np.where(np.isfinite(first_bone), first_bone, np.nan)
    low = _ring_percentile(vals, 20, window_deg, n)
    near = _ring_percentile(vals, 0, gap_deg, n, min_count=1)
    with np.errstate(invalid="ignore"):
        rib = np.where(np.isfinite(vals), np.where(vals <= low + 5.0, vals, low), near)
        rib = np.where(np.isfinite(low) | ~np.isfinite(vals), rib, np.nan)
    return np.where(np.isfinite(rib), rib, np.inf)


def _ring_percentile(vals: np.ndarray, q: float, window_deg: float, n: int, *,
                     min_count: Optional[int] = None) -> np.ndarray:
    """Running ``q``-th percentile of the finite ``vals`` around a ring of ``n`` rays.

    NaN where fewer than ``min_count`` rays of the window have a value (by
    default a fifth of the window, at least 3).
    """
    from numpy.lib.stride_tricks import sliding_window_view

    half = max(1, int(round(window_deg / 360.0 * n / 2)))
    ring = np.concatenate([vals[-half:], vals, vals[:half]])
    win = sliding_window_view(ring, 2 * half + 1)
    count = np.count_nonzero(np.isfinite(win), axis=1)
    out = np.full(n, np.nan)
    if min_count is None:
        min_count = max(3, int(0.2 * (2 * half + 1)))
    enough = count >= min_count
    if enough.any():
        out[enough] = np.nanpercentile(win[enough], q, axis=1)
    return out


def _long_runs(ok: np.ndarray, arc_mm: np.ndarray, min_mm: float, bridge: int = 4) -> np.ndarray:
    """Circular runs of ``ok`` whose summed ``arc_mm`` is at least ``min_mm``.

    Runs separated by at most ``bridge`` failing rays count as one (a vessel
    or a speck of bone on one ray does not cut a consolidation in two); the
    failing rays themselves stay out.
    """
    if ok.all() or not ok.any():
        return ok.copy()
    ring = np.concatenate([ok[-bridge:], ok, ok[:bridge]])
    joined = ndi.binary_closing(ring, np.ones(2 * bridge + 1, bool))[bridge:-bridge] | ok
    if joined.all():
        return ok.copy()
    shift = int(np.argmin(joined))  # start the ring on a False so no run wraps around
    rolled, arc = np.roll(joined, -shift), np.roll(np.where(ok, arc_mm, 0.0), -shift)
    lab, n = ndi.label(rolled)
    length = ndi.sum(arc, lab, np.arange(1, n + 1))
    keep = np.concatenate([[False], np.asarray(length) >= min_mm])
    return np.roll(keep[lab], shift) & ok


def find_effusion(hu_smooth: np.ndarray, dense_lung: np.ndarray, spacing: Sequence[float], *,
                  fluid_hu: tuple[float, float] = (-15.0, 22.0), min_ml: float = 5.0,
                  min_thick_mm: float = 4.0, max_roundness: float = 0.5) -> np.ndarray:
    """Pleural effusion among the dense voxels of a lung mask.

    Parameters
    ----------
    hu_smooth : (Z, Y, X) float
        HU smoothed in-plane about 2 mm (fluid is homogeneous).
    dense_lung : (Z, Y, X) bool
        Voxels of the lung mask that hold no air (added by the steps above).
    spacing : 3 floats, mm.
    fluid_hu : (low, high)
        Smoothed HU of pleural fluid; consolidation and masses are denser.
    min_ml : float
        Smallest effusion (mL) (for one slice: the area of a ``min_ml`` ball's
        section).
    min_thick_mm : float
        Radius (mm) of the axial disk that opens the fluid region: thin
        partial-volume bands at lung borders are not fluid.
    max_roundness : float
        An effusion is a crescent: its largest inscribed radius is below this
        fraction of the radius of a ball of the same volume (a disk of the
        same area for one slice). Rounder fluid-density regions are left to
        the lung (a mass or fluid-filled lung).

    Returns
    -------
    (Z, Y, X) bool
        Effusion voxels.
    """
    fluid = dense_lung & (hu_smooth >= fluid_hu[0]) & (hu_smooth <= fluid_hu[1])
    fluid = ndi.binary_opening(fluid, _axial_footprint(min_thick_mm, spacing))
    out = np.zeros(fluid.shape, bool)
    lab, n = ndi.label(fluid)
    if n == 0:
        return out
    voxel_ml = float(np.prod(spacing)) / 1000.0
    single = fluid.shape[0] == 1
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        comp = lab[sl] == i
        count = np.count_nonzero(comp)
        if single:
            area = count * spacing[1] * spacing[2]
            if area < np.pi * (3 * min_ml * 1000 / (4 * np.pi)) ** (2 / 3):
                continue
            r_eq = np.sqrt(area / np.pi)
            inner = ndi.distance_transform_edt(np.pad(comp[0], 1), sampling=spacing[1:]).max()
        else:
            if count * voxel_ml < min_ml:
                continue
            r_eq = (3 * count * voxel_ml * 1000 / (4 * np.pi)) ** (1 / 3)
            inner = ndi.distance_transform_edt(np.pad(comp, 1), sampling=spacing).max()
        if inner < max_roundness * r_eq:
            out[sl] |= comp
    return out


def rib_cage(bone: np.ndarray, spacing: Sequence[float], *, slab_mm: float = 12.0) -> np.ndarray:
    """Bone of each axial slice and of the slices within ``slab_mm`` of it.

    Ribs run obliquely and about 20 mm apart: one 5 mm slice shows parts of
    them, a slab of +-12 mm closes the cage on most sides. Inside the cage
    nothing but calcifications is that dense, so the innermost bone around the
    lung stays the rib cage.

    Parameters
    ----------
    bone : (Z, Y, X) bool
    spacing : 3 floats, mm.
    slab_mm : float
        Half-thickness of the slab (mm).

    Returns
    -------
    (Z, Y, X) bool
    """
    k = int(np.floor(slab_mm / float(spacing[0])))
    if k < 1 or bone.shape[0] == 1:
        return bone.copy()
    return ndi.maximum_filter1d(bone, 2 * k + 1, axis=0, mode="nearest")
