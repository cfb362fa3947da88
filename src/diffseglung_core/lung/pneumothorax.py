"""Pneumothorax: air in the pleural space, reported and left out of the lung.

Free air between the lung and the chest wall reads as air and holds no lung:
no vessels, no septa, nothing but the scan's noise. An air threshold takes it
for lung, and the labels would call it emphysema. A radiologist tells it by
what it lacks (lung markings) and where it lies: a crescent along the chest
wall (in front of a supine patient, where air rises), with the edge of the
lung behind it. Emphysema keeps vessels and walls; a bulla, as empty, is round
and lies in the lung; paraseptal bullae lie in rows parted by septa. Arrays in,
arrays out.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage as ndi

from ..binary import label
from .cavity import smooth_axial
from .morphology import axial_depth, axial_disk, axial_opening, fill_holes_nd
from .pleural import pleural_crescent

__all__ = ["find_pneumothorax"]


def find_pneumothorax(hu: np.ndarray, hu_smooth: np.ndarray, lung: np.ndarray,
                      spacing: Sequence[float], *, air_hu: float = -1000.0,
                      empty_hu: float = 40.0, marking_hu: float = 200.0,
                      max_marking_share: float = 0.002, min_thick_mm: float = 3.0,
                      min_ml: float = 5.0, min_wall_contact: float = 0.25,
                      max_roundness: float = 0.5, max_thickness: float = 0.5, rim_mm: float = 4.0,
                      edge_hu: float = 100.0) -> np.ndarray:
    """Free air in the pleural space among the voxels of a lung mask.

    Parameters
    ----------
    hu : (Z, Y, X) float
        HU.
    hu_smooth : (Z, Y, X) float
        HU smoothed in-plane about 2 mm.
    lung : (Z, Y, X) bool
        The whole lung mask.
    spacing : 3 floats, mm.
    air_hu : float
        HU of air in this scan (:mod:`diffseglung_core.calibration`).
    empty_hu : float
        Empty space reads within this many HU of air once smoothed; lung, even
        destroyed by emphysema, keeps tissue that lifts its mean.
    marking_hu, max_marking_share : float
        Lung markings: a region more than this share of whose voxels (holes
        included) read over ``marking_hu`` above air, smoothed by 1 mm (the noise
        of a sharp kernel is not a marking), holds vessels or walls, and is lung.
    min_thick_mm : float
        Radius (mm) of the axial disk that opens the empty region: the dark rim
        of a sharp kernel and single lucencies are not a pneumothorax.
    min_ml, min_wall_contact, max_roundness, max_thickness : float
        The shape of a pleural collection (:func:`.pleural.pleural_crescent`): free
        air is a layer along the wall, a bulla that reaches the wall a blob.
    rim_mm : float
        The mask's outer voxels within this depth (mm, in-plane; at least one
        voxel) hold air and chest wall both: the smoothing (about twice its
        sigma) lifts them above empty. They count as chest wall for the
        contact, and those between the free air and the wall go with it.
    edge_hu : float
        Lung voxels next to the free air (in-plane) that read within this many
        HU of air smoothed by 1 mm are its edge (the 2 mm smoothing lifts them
        above empty).

    Returns
    -------
    (Z, Y, X) bool
        Pneumothorax voxels.
    """
    lung = np.asarray(lung, bool)
    empty = lung & (hu_smooth <= air_hu + empty_hu)
    out = np.zeros(lung.shape, bool)
    lab, n = label(axial_opening(empty, axial_disk(min_thick_mm, spacing)))
    if n == 0:
        return out
    fine = smooth_axial(hu, spacing, 1.0)
    # the mask's outer voxels hold air and chest wall both (partial volume, the smoothing):
    # they part free air from the wall, and count as wall for its contact
    depth = axial_depth(lung, spacing)
    rim = lung & (depth <= max(rim_mm, max(float(s) for s in spacing[1:])))
    core = lung & ~rim
    one_slice = lung.shape[0] == 1
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        # a margin of one voxel around the region: its shell against the chest wall
        sl = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in sl)
        region = lab[sl] == i
        filled = np.stack([fill_holes_nd(r) for r in region])
        markings = filled & (fine[sl] > air_hu + marking_hu)
        if np.count_nonzero(markings) > max_marking_share * np.count_nonzero(filled):
            continue
        if pleural_crescent(region, core[sl], spacing, one_slice=one_slice, min_ml=min_ml,
                            min_wall_contact=min_wall_contact, max_roundness=max_roundness,
                            max_thickness=max_thickness):
            out[sl] |= region
    if out.any():
        # its thin ends, which the opening took off (no thicker than the opening, along the
        # chest wall), and the rim between it and the chest wall
        out = ndi.binary_propagation(out, mask=empty & (depth <= rim_mm + 2.0 * min_thick_mm))
        wall_side = rim & ndi.binary_dilation(
            out, axial_disk(rim_mm + max(float(s) for s in spacing[1:]), spacing))
        # its edge against the lung, which the smoothing lifts too: the next voxels that,
        # less smoothed, still read as air
        edge = lung & ndi.binary_dilation(out, np.ones((1, 3, 3), bool)) & (fine <= air_hu + edge_hu)
        out |= wall_side | edge
    return out
