"""What lies in the pleural space is not lung: the shape of a pleural collection.

Fluid (:mod:`.effusion`) and air (:mod:`.pneumothorax`) in the pleural space
both lie between the lung and the chest wall: a crescent that runs along the
wall, thin for its extent, against it over a broad base. A region of the lung
mask that has the density of either but the shape of a ball, or that lung
surrounds, is lung (a mass, fluid-filled lung, a bulla). Arrays in, arrays out.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy import ndimage as ndi

from ..binary import distance_inside

__all__ = ["pleural_crescent"]


def pleural_crescent(region: np.ndarray, lung: np.ndarray, spacing: Sequence[float], *,
                     one_slice: bool = False, min_ml: float = 5.0,
                     min_wall_contact: float = 0.25, max_roundness: float = 0.5,
                     max_thickness: Optional[float] = None) -> bool:
    """Whether a region of the lung mask lies in the pleural space by its shape.

    Parameters
    ----------
    region : (Z, Y, X) bool
        One connected region, in a box around it.
    lung : (Z, Y, X) bool
        The lung mask over the same box (the shell is read within the box).
    spacing : 3 floats, mm.
    one_slice : bool
        The scan is one axial slice: sizes are areas.
    min_ml : float
        Smallest collection (mL); for one slice, the area of a ``min_ml`` ball's
        section.
    min_wall_contact : float
        At least this share of a one-voxel shell around the region lies outside
        ``lung`` (the chest wall): a region that lung surrounds is lung.
    max_roundness : float
        A crescent: its largest inscribed radius is below this share of the
        radius of a ball of the same volume (a disk of the same area for one
        slice).
    max_thickness : float, optional
        A layer along the wall: its mean thickness (its volume over its area
        against the wall, both read slice by slice in-plane) is at most this
        share of that area's extent (its square root; for one slice, the length
        against the wall). A blob that touches the wall with one side is not.

    Returns
    -------
    bool
    """
    region = np.asarray(region, bool)
    count = np.count_nonzero(region)
    if count == 0:
        return False
    shell = ndi.binary_dilation(np.pad(region, 1))[1:-1, 1:-1, 1:-1] & ~region
    if np.count_nonzero(shell & ~lung) < min_wall_contact * max(np.count_nonzero(shell), 1):
        return False
    area = count * float(spacing[1]) * float(spacing[2])  # summed over its slices
    if one_slice:
        if area < np.pi * (3 * min_ml * 1000 / (4 * np.pi)) ** (2 / 3):
            return False
        r_eq = np.sqrt(area / np.pi)
        inner = distance_inside(np.pad(region[0], 1), spacing[1:]).max()
    else:
        ml = count * float(np.prod(spacing)) / 1000.0
        if ml < min_ml:
            return False
        r_eq = (3 * ml * 1000 / (4 * np.pi)) ** (1 / 3)
        inner = distance_inside(np.pad(region, 1), spacing).max()
    if inner >= max_roundness * r_eq:
        return False
    if max_thickness is None:
        return True
    # per slice: the region's area and its length against the wall (in-plane)
    against = np.stack([ndi.binary_dilation(r) & ~r for r in region]) & ~lung
    length = np.count_nonzero(against) * float(min(spacing[1:]))
    if length <= 0:
        return False
    extent = length if one_slice else np.sqrt(length * float(spacing[0]))
    return bool(area / length <= max_thickness * extent)
