"""Pleural effusion: fluid along the chest wall, reported and left out of the lung.

* :func:`find_effusion`: a pleural effusion is fluid (about 0-20 HU) in a
  crescent along the chest wall, thin for its extent; it is reported, not
  called lung.
* :func:`beyond_fluid`: what lies beyond it, seen from the aerated lung, is
  chest wall (the rays of :func:`.cavity.costal_fill` that crossed the fluid
  took it).
* :func:`fluid_beside`: the fluid that no step took into the mask (the
  posterior recess below the lung) is found from the effusion.
* :func:`compressed_lung`: the lung that the fluid compresses, between the
  lung mask and the fluid, is lung.

Arrays in, arrays out.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy import ndimage as ndi

from ..binary import distance_inside, label
from ..gravity import gravity_axis
from ..parallel import thread_map
from .coarse import bbox, nearest_label
from .morphology import axial_disk, axial_opening, fill_holes_nd
from .pleural import pleural_crescent

__all__ = ["FLUID_MAX_MEAN_HU", "find_effusion", "beyond_fluid", "fluid_beside", "compressed_lung"]

#: Mean HU of a region of pleural fluid at most: fluid reads about 0-15 HU, consolidated
#: or compressed lung and masses without contrast 20-50 HU.
FLUID_MAX_MEAN_HU = 16.0


def find_effusion(hu: np.ndarray, hu_smooth: np.ndarray, lung: np.ndarray, dense_lung: np.ndarray,
                  spacing: Sequence[float], *, min_wall_contact: float = 0.25,
                  fluid_hu: tuple[float, float] = (-15.0, 22.0), max_mean_hu: float = FLUID_MAX_MEAN_HU,
                  min_ml: float = 5.0, min_thick_mm: float = 4.0,
                  max_roundness: float = 0.5, dependent: Optional[str] = "back") -> np.ndarray:
    """Pleural effusion among the dense voxels of a lung mask.

    Parameters
    ----------
    hu : (Z, Y, X) float
        HU.
    hu_smooth : (Z, Y, X) float
        HU smoothed in-plane about 2 mm (fluid is homogeneous).
    lung : (Z, Y, X) bool
        The whole lung mask.
    dense_lung : (Z, Y, X) bool
        Voxels of the lung mask that hold no air (added by the steps above).
    spacing : 3 floats, mm.
    fluid_hu : (low, high)
        Smoothed HU of pleural fluid voxels.
    max_mean_hu : float
        Mean HU of a fluid region at most: pleural fluid reads about 0-15 HU,
        consolidation and masses without contrast 20-50 HU. A region with air
        inside it (air bronchograms) is consolidation whatever its density.
    min_ml : float
        Smallest effusion (mL) (for one slice: the area of a ``min_ml`` ball's
        section).
    min_thick_mm : float
        Radius (mm) of the axial disk that opens the fluid region: thin
        partial-volume bands at lung borders are not fluid.
    min_wall_contact : float
        Pleural fluid lies against the chest wall: at least this fraction of a
        thin shell around the region must lie outside ``lung``. A dense region
        that lung surrounds is consolidation.
    max_roundness : float
        An effusion is a crescent: its largest inscribed radius is below this
        fraction of the radius of a ball of the same volume (a disk of the
        same area for one slice). Rounder fluid-density regions are left to
        the lung (a mass or fluid-filled lung).
    dependent : str or None
        Free pleural fluid collects in the dependent pleural space: a region
        whose centre does not lie on this side of the centre of the lung in its
        slices (:func:`~diffseglung_core.gravity.dependent_side`: ``"back"`` for
        a supine patient) is consolidation, not fluid. None: no such test.

    Returns
    -------
    (Z, Y, X) bool
        Effusion voxels.
    """
    fluid = dense_lung & (hu_smooth >= fluid_hu[0]) & (hu_smooth <= fluid_hu[1])
    fluid = axial_opening(fluid, axial_disk(min_thick_mm, spacing))
    out = np.zeros(fluid.shape, bool)
    lab, n = label(fluid)
    if n == 0:
        return out
    single = fluid.shape[0] == 1
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        comp = lab[sl] == i
        if float(np.mean(hu[sl][comp])) > max_mean_hu:
            continue
        if dependent is not None:
            axis, sign = gravity_axis(dependent)
            cs = np.nonzero(lung[sl[0]])[axis]
            if cs.size and sign * (np.nonzero(comp)[axis].mean() + sl[axis].start - cs.mean()) < 0:
                continue
        # air bronchograms: air inside the region is consolidated lung, never fluid
        filled = np.stack([fill_holes_nd(c) for c in comp])
        if np.count_nonzero(filled & (hu[sl] < -300.0)) > 0.002 * np.count_nonzero(filled):
            continue
        if pleural_crescent(comp, lung[sl], spacing, one_slice=single, min_ml=min_ml,
                            min_wall_contact=min_wall_contact, max_roundness=max_roundness):
            out[sl] |= comp
    return out


def beyond_fluid(lung: np.ndarray, aerated: np.ndarray, fluid: np.ndarray,
                 spacing: Sequence[float], *, reach_mm: float = 15.0, step_mm: float = 0.5) -> np.ndarray:
    """Voxels of ``lung`` that pleural fluid separates from the aerated lung, per axial slice.

    Pleural fluid lies between the lung (visceral pleura) and the chest wall
    (parietal pleura): tissue on its far side is chest wall, never lung. A
    voxel of ``lung`` within ``reach_mm`` of ``fluid`` is beyond it when the
    straight line from it to the nearest aerated voxel of its slice crosses
    the fluid. Compressed lung floating in the fluid or lying against it on
    the lung's side is not beyond it.

    Parameters
    ----------
    lung : (Z, Y, X) bool
        The lung mask (without the fluid).
    aerated : (Z, Y, X) bool
        Its aerated voxels.
    fluid : (Z, Y, X) bool
        Pleural fluid (:func:`find_effusion`).
    spacing : 3 floats, mm.
    reach_mm : float
        Only voxels this close to the fluid (mm, in-plane) are examined.
    step_mm : float
        Sampling step (mm) along each line.

    Returns
    -------
    (Z, Y, X) bool
        The voxels of ``lung`` beyond the fluid.
    """
    out = np.zeros(lung.shape, bool)
    sampling = (float(spacing[1]), float(spacing[2]))

    def one(z: int) -> None:
        box = bbox(fluid[z] | aerated[z], [int(np.ceil(reach_mm / s)) + 1 for s in sampling])
        air, wet, mask = aerated[z][box], fluid[z][box], lung[z][box] & ~aerated[z][box]
        if not air.any():
            return
        near = mask & ~wet & (distance_inside(~wet, sampling) <= reach_mm)
        ys, xs = np.nonzero(near)
        if ys.size == 0:
            return
        _, (ny, nx) = ndi.distance_transform_edt(~air, sampling=sampling, return_indices=True)
        ty, tx = ny[ys, xs], nx[ys, xs]
        length = np.hypot((ty - ys) * sampling[0], (tx - xs) * sampling[1])
        f = np.linspace(0.0, 1.0, max(2, int(np.ceil(length.max() / step_mm)) + 1))
        py = np.rint(ys[:, None] + (ty - ys)[:, None] * f).astype(np.intp)
        px = np.rint(xs[:, None] + (tx - xs)[:, None] * f).astype(np.intp)
        crossed = wet[py, px].any(axis=1)
        out[z][box][ys[crossed], xs[crossed]] = True

    thread_map(one, np.flatnonzero(fluid.any(axis=(1, 2)) & aerated.any(axis=(1, 2))))
    return out


def fluid_beside(fluid: np.ndarray, hu_smooth: np.ndarray, outside: np.ndarray, air: np.ndarray,
                 spacing: Sequence[float], *, fluid_hu: tuple[float, float] = (-15.0, 22.0),
                 min_thick_mm: float = 4.0, min_gas_ml: float = 0.1) -> np.ndarray:
    """Pleural fluid outside the lung mask, joined to the effusion found inside it.

    The steps that follow the lung take the fluid between it and the chest wall;
    the fluid below the lung's base (the posterior costophrenic recess, beside
    the liver and the spleen) lies beyond their reach. Fluid-density regions
    outside the lung (``hu_smooth`` within ``fluid_hu``, thicker than a
    partial-volume band) that touch ``fluid`` are fluid too, unless they touch
    gas: fluid under gas is the content of the stomach or the bowel, which the
    diaphragm's thin wall may not part from the pleural space at this
    smoothing. Gas is a pocket of at least ``min_gas_ml``: a voxel or a few
    below the air threshold (noise, partial volume at the lung's edge) are not
    a gas-fluid level.

    Parameters
    ----------
    fluid : (Z, Y, X) bool
        The effusion found in the lung mask (:func:`find_effusion`).
    hu_smooth : (Z, Y, X) float
        HU smoothed in-plane about 2 mm.
    outside : (Z, Y, X) bool
        Where more fluid may lie: the body outside the lung mask.
    air : (Z, Y, X) bool
        Gas in the body that is not lung (nor airway).
    spacing : 3 floats, mm.
    fluid_hu : (low, high)
        Smoothed HU of pleural fluid voxels.
    min_thick_mm : float
        Radius (mm) of the axial disk that opens the fluid-density region.
    min_gas_ml : float
        Smallest pocket of ``air`` (mL) that makes fluid it touches the stomach's or
        the bowel's.

    Returns
    -------
    (Z, Y, X) bool
        The fluid found beside ``fluid`` (not including it).
    """
    if not fluid.any():
        return np.zeros(fluid.shape, bool)
    wet = outside & ~fluid & (hu_smooth >= fluid_hu[0]) & (hu_smooth <= fluid_hu[1])
    wet = axial_opening(wet, axial_disk(min_thick_mm, spacing))
    lab, _ = label(wet)
    touching = np.unique(lab[ndi.binary_dilation(fluid)])
    pockets, n = label(air)
    least = min_gas_ml * 1000.0 / float(np.prod(spacing))
    gas = (np.bincount(pockets.ravel(), minlength=n + 1) >= least)[pockets] & air
    under_gas = np.unique(lab[ndi.binary_dilation(gas, iterations=2)])
    keep = np.setdiff1d(touching[touching > 0], under_gas)
    return np.isin(lab, keep)


def compressed_lung(labels: np.ndarray, fluid: np.ndarray, hu: np.ndarray, allowed: np.ndarray,
                    spacing: Sequence[float], *, gap_mm: float = 6.0, fat_hu: float = -50.0,
                    max_fluid_hu: float = FLUID_MAX_MEAN_HU) -> np.ndarray:
    """The lung that an effusion compresses, between the lung mask and the fluid.

    Lung and pleural fluid fill the pleural cavity together, the visceral
    pleura between them. The lung next to a large effusion is compressed
    (passive atelectasis): airless, it reads as soft tissue and is reached by
    no step that follows the aerated lung where no rib ends a ray (the front
    of a prone patient), so a crack is left between the lung mask and the
    fluid found beyond it. Per axial slice, what a closing of the lung and the
    fluid by a disk of ``gap_mm`` fills between them is lung, where it is
    ``allowed`` and reads denser than fat, in regions that touch both the lung
    and the fluid and read denser, on average, than fluid does (a rim of
    fluid the effusion's opening left out reads as fluid).

    Parameters
    ----------
    labels : (Z, Y, X) uint8
        The lung mask (1 right, 2 left), the fluid already left out.
    fluid : (Z, Y, X) bool
        The effusion (:func:`find_effusion` and :func:`fluid_beside`).
    hu : (Z, Y, X) float
        HU smoothed in-plane about 1 mm.
    allowed : (Z, Y, X) bool
        Where lung may be added (the body, not bone, gas or the airways).
    spacing : 3 floats, mm.
    gap_mm : float
        Radius (mm) of the axial disk: cracks up to about twice as wide are closed.
    fat_hu : float
        Tissue reading at or below this is fat (a fat plane of the chest wall).
    max_fluid_hu : float
        A region whose mean HU is at most this reads as fluid.

    Returns
    -------
    (Z, Y, X) uint8
        The compressed lung, labelled as the nearest lung (0 elsewhere).
    """
    out = np.zeros(labels.shape, np.uint8)
    lung = labels > 0
    if not fluid.any() or not lung.any():
        return out
    footprint = axial_disk(gap_mm, spacing)
    box = bbox(fluid, (0, *footprint.shape[1:]))  # room for the closing around the fluid
    both = lung[box] | fluid[box]
    crack = ndi.binary_closing(both, footprint) & ~both & allowed[box] & (hu[box] > fat_hu)
    lab, n = label(crack)
    if n == 0:
        return out
    ring = np.ones((1, 3, 3), bool)
    touches_lung = np.bincount(lab[ndi.binary_dilation(lung[box], ring) & crack], minlength=n + 1) > 0
    touches_fluid = np.bincount(lab[ndi.binary_dilation(fluid[box], ring) & crack], minlength=n + 1) > 0
    denser = np.asarray(ndi.mean(hu[box], lab, np.arange(n + 1))) > max_fluid_hu
    keep = touches_lung & touches_fluid & denser
    keep[0] = False
    added = keep[lab]
    if added.any():
        out[box][added] = nearest_label(labels[box])[added]
    return out
