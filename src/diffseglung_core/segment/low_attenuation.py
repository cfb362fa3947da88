"""Emphysema as regions of low attenuation, noise-aware (see :mod:`.evidence`, "Low attenuation").

:func:`low_attenuation_regions` finds where the share of parenchyma below
-950 HU is far above what noise alone gives healthy lung of the slice, in
regions of some size, without the dark halo a sharp kernel draws along the
lung's edge (:func:`edge_halo`) and the air of bronchi cut across
(:func:`bronchus_lumens`). Arrays in, arrays out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Sequence

import numpy as np
from scipy import ndimage as ndi
from scipy.special import ndtr

from ..binary import distance_inside, label
from ..calibration import NOMINAL_AIR_HU
from ..lung.coarse import bbox
from ..parallel import by_slabs, gaussian_filter, thread_map
from .parenchyma import healthy_levels, masked_mean
from .shapes import component_ml, disk_footprint, in_plane_depth, kept_components, principal_axes

if TYPE_CHECKING:
    from .evidence import EvidenceParams

__all__ = ["EMPHYSEMA_HU", "SUBPLEURAL_MM", "LUCENCY_SLICE_MM", "lucencies_resolved", "bronchus_lumens",
           "edge_halo", "LowAttenuation", "low_attenuation_regions"]


#: The emphysema threshold (calibrated HU) of the low-attenuation area.
EMPHYSEMA_HU = -950.0

#: Depth (mm) below the costal pleura within which a lucency lines the pleura: paraseptal
#: emphysema (subpleural cysts in a row), not the air of a bronchus, which the outer
#: centimetre of normal lung does not show.
SUBPLEURAL_MM = 10.0

#: Slice thickness (mm) up to which the lucency of a destroyed lobule (3 mm or more
#: across) holds no tissue above or below it in its slice: it reads as air.
LUCENCY_SLICE_MM = 1.5


def lucencies_resolved(spacing: Sequence[float]) -> bool:
    """Whether slices of ``spacing`` (mm) resolve a destroyed lobule's lucency as air
    (at most ``LUCENCY_SLICE_MM`` thick)."""
    return float(spacing[0]) <= LUCENCY_SLICE_MM


def _airway_lumen(comp: np.ndarray, costal_depth: np.ndarray, spacing: Sequence[float],
                  cut: bool = False, max_radius_mm: float = 4.0, min_elongation: float = 3.0) -> bool:
    """Whether a low-attenuation region is the air of a bronchus: a long, narrow tube.

    Emphysema is a region; a bronchus lumen is at most about 8 mm wide inside
    the lung, at least ``min_elongation`` times longer than wide, and lies
    deeper than ``SUBPLEURAL_MM`` below the costal pleura (the median of
    ``costal_depth``, mm, over the region's voxels): a narrow row of
    lucencies along the pleura is paraseptal emphysema. ``cut``: the region
    runs through every slice of a stack thinner than it (one HRCT slice), so
    only its width within its slices is known.
    """
    if np.median(costal_depth) <= SUBPLEURAL_MM:
        return False
    if cut:
        depth = in_plane_depth(comp, spacing)
    else:
        depth = float(distance_inside(np.pad(comp, 1), spacing).max())
    if depth > max_radius_mm:
        return False
    axes = principal_axes(comp, spacing)
    return axes is not None and bool(np.sqrt(axes[-1] / max(axes[-2], 1e-6)) >= min_elongation)


def _with_air_lucencies(regions: np.ndarray, darker: np.ndarray, airlike: np.ndarray,
                        read: np.ndarray, spacing: Sequence[float], sigma_mm: float,
                        min_share: float, n_eff: float) -> np.ndarray:
    """The parts of low-attenuation ``regions`` that hold lucencies reading as air.

    A region lying mostly where healthy lung reads darker than at full
    inspiration (``darker``) keeps all of it when at least ``min_share`` of it
    is ``airlike``; otherwise only where the share of ``airlike`` voxels
    within ``sigma_mm`` is far above the region's own share (4 binomial
    standard deviations for ``n_eff`` voxels) and at least ``min_share``: a
    cluster of destroyed lobules in a uniformly dark lung. Other regions are
    kept whole.
    """
    local = None
    out = regions.copy()
    lab, _ = label(regions)
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        comp = lab[sl] == i
        size = np.count_nonzero(comp)
        if np.count_nonzero(comp & darker[sl]) <= 0.5 * size:
            continue
        share = np.count_nonzero(comp & airlike[sl]) / size
        if share < min_share:
            if local is None:
                local, _ = masked_mean(airlike & read, read, spacing, sigma_mm)
            bar = max(min_share, share + 4.0 * np.sqrt(share * (1.0 - share) / n_eff))
            out[sl] &= ~comp | (local[sl] > bar)
    return out


def bronchus_lumens(low: np.ndarray, dense: np.ndarray, depth: np.ndarray,
                    spacing: Sequence[float], *, min_mm: float = 2.0, closed: float = 0.8,
                    wall_mm: float = 2.5, alone_mm: float = 4.0,
                    deep_mm: float = SUBPLEURAL_MM) -> np.ndarray:
    """The air of bronchi cut across: lone, walled lumens away from the costal pleura.

    In each axial slice, a connected region of ``low`` at least ``min_mm``
    across is a bronchus lumen when dense structure lies within ``wall_mm`` of
    at least ``closed`` of its edge (a wall all round; the partial-volume step
    from the air to the wall, 1-2 mm wide on a large bronchus, lies between
    them), no other region of air that
    size (walled or not) lies within ``alone_mm`` of it (honeycomb cysts come in
    clusters that share their walls) and it lies more than ``deep_mm`` below
    the costal pleura (paraseptal emphysema lines the pleura with walled cysts).
    Centrilobular emphysema has no wall. The wall is looked for at least one
    pixel out: on pixels coarser than ``wall_mm`` it blurs into the pixel next
    to the lumen, whose own reading falls below the dense threshold (a main
    bronchus at 5 mm pixels).

    Parameters
    ----------
    low : (Z, Y, X) bool
        Low-attenuation voxels of the lung.
    dense : (Z, Y, X) bool
        Dense structures, inside the lung and around it.
    depth : (Z, Y, X) float
        Depth (mm) below the costal pleura (:func:`.evidence.costal_depth`).
    spacing : (3,) float, mm.

    Returns
    -------
    (Z, Y, X) bool
    """
    out = np.zeros(low.shape, bool)
    least = np.pi * (min_mm / 2.0) ** 2 / (float(spacing[1]) * float(spacing[2]))
    near_disk = disk_footprint(max(wall_mm, float(spacing[1]), float(spacing[2])), spacing, low.shape)[0]
    alone_disk = disk_footprint(alone_mm, spacing, low.shape)[0]
    ring = np.ones((3, 3), bool)
    reach = (alone_disk.shape[0] // 2 + 1, alone_disk.shape[1] // 2 + 1)
    for z in np.flatnonzero(low.any(axis=(1, 2))):
        lab, n = label(low[z])
        idx = np.arange(1, n + 1)
        size = ndi.sum_labels(np.ones_like(lab), lab, idx)
        near = None
        walled = []  # (label, box) of the walled regions of this slice
        for i, sl in enumerate(ndi.find_objects(lab), start=1):
            if size[i - 1] < least:
                continue
            box = tuple(slice(max(a.start - r, 0), a.stop + r) for a, r in zip(sl, reach))
            own = lab[box] == i
            if np.median(depth[z][box][own]) <= deep_mm:
                continue
            if near is None:
                near = ndi.binary_dilation(dense[z], near_disk)
            edge = ndi.binary_dilation(own, ring) & ~own
            if np.count_nonzero(edge & near[box]) >= closed * np.count_nonzero(edge):
                walled.append((i, box))
        if not walled:
            continue
        others = (size >= least)[np.maximum(lab - 1, 0)] & (lab > 0)
        for i, box in walled:
            own = lab[box] == i
            around = ndi.binary_dilation(own, alone_disk) & ~own
            if not np.any(others[box][around]):
                out[z][box] |= own
    return out


def edge_halo(low: np.ndarray, parenchyma: np.ndarray, tissue: np.ndarray,
              spacing: Sequence[float], *, max_mm: int = 4, min_ratio: float = 2.0,
              min_excess: float = 0.05) -> tuple[float, np.ndarray]:
    """The dark halo that a sharp reconstruction kernel draws along the lung's edge.

    Edge-enhancing (lung) kernels undershoot next to a high-contrast border:
    the first mm or two of lung along the heart, the mediastinum and the chest
    wall read far below the lung just behind, below -950 HU in places, with
    nothing destroyed. The halo is measured on the scan itself: the share of
    ``low`` voxels of the parenchyma in 1 mm bands by in-plane distance from
    ``tissue``, against the share in the band from ``max_mm`` to ``2 * max_mm``
    (emphysema along the border darkens both; the halo only the first). A band
    is dark when its share is at least ``min_ratio`` times the reference and
    ``min_excess`` above it. The undershoot hugs the border: the halo is the
    run of dark bands that starts at the first band past the border's own
    voxel (which partial volume with the tissue lightens) and reaches the outer
    edge of the last of them, within ``max_mm``. A smooth kernel gives none;
    nor do lucencies a few mm from the border behind a first band of lung of
    normal density (the subpleural cysts of paraseptal emphysema behind their
    outer wall).

    Parameters
    ----------
    low : (Z, Y, X) bool
        Low-attenuation voxels (e.g. below -950 HU).
    parenchyma : (Z, Y, X) bool
        Lung parenchyma where the shares are read.
    tissue : (Z, Y, X) bool
        Dense tissue outside the lung.
    spacing : (3,) float, mm.

    Returns
    -------
    width_mm : float
        0 without a halo.
    halo : (Z, Y, X) bool
        Lung parenchyma closer than ``width_mm`` (in-plane) to ``tissue``.
    """
    # in-plane distance in tenths of a mm (floored, so "d >= k mm" stays exact), up to 25.5 mm
    tenths = np.full(tissue.shape, 255, np.uint8)

    def in_tenths(z: int) -> np.ndarray:
        d = distance_inside(~tissue[z], (float(spacing[1]), float(spacing[2])))
        return np.minimum(np.floor(d * 10.0), 255.0)

    zs = np.flatnonzero(tissue.any(axis=(1, 2)))
    for z, t in zip(zs, thread_map(in_tenths, zs)):
        tenths[z] = t
    d, v = tenths[parenchyma], low[parenchyma]
    ref = (d >= 10 * max_mm) & (d < 20 * max_mm)
    # the bands (1 mm) that the border's own voxel reaches into
    border = int(np.ceil(max(float(spacing[1]), float(spacing[2]))))
    width = 0
    if ref.sum() >= 1000:
        share_ref = float(v[ref].mean())
        for k in range(max_mm):
            band = (d >= 10 * k) & (d < 10 * (k + 1))
            if band.sum() < 200:
                continue
            if float(v[band].mean()) >= max(min_ratio * share_ref, share_ref + min_excess):
                width = k + 1
            elif width or k >= border:
                break
    return float(width), parenchyma & (tenths < 10 * width)


class LowAttenuation(NamedTuple):
    """What :func:`low_attenuation_regions` finds (see its Returns)."""

    emphysema: np.ndarray
    laa_fraction: np.ndarray
    baseline: np.ndarray
    lumens: np.ndarray
    halo_mm: float
    dark_ml: float


def _between_holes(holes: np.ndarray, near: np.ndarray, spacing: Sequence[float],
                   radius_mm: float) -> np.ndarray:
    """The axial closing of ``holes`` by a disk of ``radius_mm``, in the box of ``near``.

    The lung between lucencies less than ``2 * radius_mm`` apart, and not beyond the
    outermost ones; False outside the box of ``near`` (the candidate regions).
    """
    out = np.zeros(holes.shape, bool)
    if not near.any():
        return out
    footprint = disk_footprint(radius_mm, spacing, holes.shape)
    reach = [n // 2 for n in footprint.shape]
    box = bbox(near, reach)
    out[box] = by_slabs(lambda h: ndi.binary_closing(h, footprint), [holes[box]], 0)
    return out


def low_attenuation_regions(h: np.ndarray, smooth: np.ndarray, parenchyma: np.ndarray,
                            rim: np.ndarray, tissue: np.ndarray, depth: np.ndarray,
                            spacing: Sequence[float], gravity: int, whole: bool,
                            p: EvidenceParams) -> LowAttenuation:
    """Emphysema as regions of low attenuation (the notes of :mod:`.evidence`).

    Parameters
    ----------
    h, smooth : (Z, Y, X) float
        Calibrated HU, and smoothed (0.8 mm).
    parenchyma, rim, tissue : (Z, Y, X) bool
        Lung without dense structures; the partial-volume rim across slices;
        dense tissue outside the lung.
    depth : (Z, Y, X) float
        Depth (mm) below the costal pleura.
    spacing : (3,) float, mm
    gravity : int
        Axis along which dependent lung is denser.
    whole : bool
        The arrays hold every slice of the scan.
    p : :class:`~.evidence.EvidenceParams`

    Returns
    -------
    LowAttenuation
        ``emphysema`` (bool), ``laa_fraction`` (share below -950 HU within
        ``laa_mm``), ``baseline`` (that share noise alone gives healthy lung,
        per slice), ``lumens`` (air of bronchi cut across, bool), ``halo_mm``
        (:func:`edge_halo`) and ``dark_ml`` (regions in darker lung without
        lucencies that read as air, mL).
    """
    # low attenuation read on a lightly smoothed image: noise alone seldom stays below
    # -950 HU over a few voxels, a destroyed lobule does
    soft = gaussian_filter(h, (0.0, p.laa_smooth_mm / float(spacing[1]),
                               p.laa_smooth_mm / float(spacing[2])), truncate=2.5)
    level_soft, spread_soft, _ = healthy_levels(soft, parenchyma & ~rim, spacing, axis=gravity,
                                                tolerance=0.5 * p.dense_margin_hu)
    # the share of low attenuation noise alone gives healthy lung at each level
    reference = np.maximum(level_soft, p.healthy_reference_hu)
    # where healthy lung itself reads darker (hyperinflation, the gravity gradient), a
    # uniformly dark region is not yet destroyed lung
    darker = np.broadcast_to(level_soft < p.healthy_reference_hu, h.shape)
    baseline = ndtr((EMPHYSEMA_HU - reference) / np.maximum(spread_soft, 5.0)[:, None, None])
    # the dark halo of a sharp kernel along the lung's edge is not read
    halo_mm, halo = edge_halo(soft < EMPHYSEMA_HU, parenchyma & ~rim, tissue, spacing)
    # nor the air of a bronchus cut across
    lumens = bronchus_lumens((soft < EMPHYSEMA_HU) & parenchyma, smooth > p.dense_hu, depth, spacing)
    read = parenchyma & ~halo & ~lumens
    del halo
    laa = (soft < EMPHYSEMA_HU) & read
    # in slices thin enough to resolve a lobule's lucency, emphysema reads as air
    # (lucencies at least 2 mm across: noise does not stay that low over a few voxels)
    thin_slices = lucencies_resolved(spacing)
    air = ndi.binary_opening(soft < NOMINAL_AIR_HU + p.air_margin_hu, disk_footprint(1.0, spacing, h.shape)) \
        if thin_slices else None
    # such a lucency is a destroyed lobule by itself, however small the region around it,
    # where healthy lung reads as at full inspiration (where it reads darker, noise reaches
    # air more easily and the regions' test below decides, with the lucencies it holds)
    lucencies = air & read & ~darker if thin_slices else None
    airlike = air if thin_slices and darker.any() else None
    del air
    # a lucency's edge lies where the image reads halfway between air and the healthy
    # lung around it: the voxel its edge cuts holds both (partial volume)
    half_way = (soft < 0.5 * (NOMINAL_AIR_HU + level_soft)) & read
    del soft

    def regions(sigma_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # the share within ``sigma_mm`` far above what noise alone gives healthy lung there
        frac, weight = masked_mean(laa, read, spacing, sigma_mm)
        n_eff = 2.0 * np.pi * sigma_mm ** 2 / (float(spacing[1]) * float(spacing[2]))
        if h.shape[0] > 1:
            n_eff *= max(1.0, 2.5 * sigma_mm / float(spacing[0]))
        b = baseline
        threshold = np.maximum(b + np.maximum(4.0 * np.sqrt(b * (1.0 - b) / n_eff), p.min_laa_excess),
                               p.min_laa_fraction)
        return parenchyma & (frac > threshold) & (weight > 0.3), frac, n_eff

    emphysema, laa_frac, n_eff = regions(p.laa_mm)
    if p.fine_laa_mm and not thin_slices:
        # a small cluster of lucencies that partial volume dims is diluted in the share over
        # ``laa_mm``; over ``fine_laa_mm`` it stands out (its own, stricter noise threshold)
        emphysema |= regions(p.fine_laa_mm)[0]
    # a region's extent: its own low-attenuation voxels and the lung between them where
    # the low attenuation is dense, whether thin slices resolve the holes or thick ones
    # blur them into one region; where the holes are resolved, the Gaussian share spreads
    # past the outermost ones and only the lung between holes up to 2 ``laa_mm`` apart is
    # taken (an axial closing of the holes)
    extent = laa_frac > p.extent_laa_fraction
    if thin_slices:
        extent &= _between_holes(laa, emphysema, spacing, p.laa_mm)
    extent |= laa
    dark_ml = 0.0
    if airlike is not None:
        kept = _with_air_lucencies(emphysema, darker, airlike, read, spacing, p.laa_mm,
                                   p.min_air_share, n_eff)
        dropped = emphysema & ~kept & extent
        dark_ml = float(np.count_nonzero(dropped) * np.prod(spacing) / 1000.0)
        emphysema = kept
        del kept, dropped

    def spans(sl) -> bool:  # a component through every slice of a stack thinner than it
        return whole and sl[0].stop - sl[0].start == h.shape[0]

    emphysema = kept_components(emphysema, lambda comp, sl: component_ml(comp, spacing, spans(sl))
                                 >= p.min_laa_ml and not _airway_lumen(comp, depth[sl][comp], spacing,
                                                                       spans(sl)))
    if lucencies is not None:
        cores = kept_components(lucencies, lambda comp, sl: not _airway_lumen(comp, depth[sl][comp], spacing,
                                                                              spans(sl)))
        # with the low-attenuation rim that partial volume leaves around the air (1 mm)
        emphysema |= ndi.binary_dilation(cores, disk_footprint(1.0, spacing, h.shape)) & laa
        del lucencies, cores
    emphysema &= extent & ~lumens
    del extent
    # with the voxels next to it that read past halfway to air (its edge); next along z
    # too where the slices resolve a lucency
    if emphysema.any():
        edge_of = np.ones((3, 3, 3) if thin_slices else (1, 3, 3), bool)
        emphysema |= by_slabs(lambda e: ndi.binary_dilation(e, edge_of), [emphysema], 1) & half_way
    return LowAttenuation(emphysema, laa_frac, baseline, lumens, halo_mm, dark_ml)
