"""Trachea and main bronchi, tracked slice by slice from the top."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..binary import label
from .morphology import disk


def track_airways(inside_air: np.ndarray, body: np.ndarray,
                   spacing: tuple[float, float, float], *, hu: np.ndarray | None = None,
                   air_hu: float = -1000.0, max_above_air: float = 100.0,
                   cut: bool = False) -> np.ndarray:
    """Trachea and main bronchi, followed slice by slice from the top.

    The trachea is an air blob of 0.5-10 cm² near the left-right middle of the
    body (or, where the field of view cuts the body, ``cut``: a lung reaches
    its edge, within the middle half of what it shows) in one of the upper
    slices, whose lumen reads as air (median at most
    ``max_above_air`` HU above ``air_hu`` when ``hu`` is given: on a single
    slice below the carina, a piece of diseased lung beside the spine is no
    trachea). Going down, a blob is airway when it
    overlaps the airway of the slice above and stays tube-sized; a branch ends
    where it opens into the (much larger) lung. Each slice is opened with a
    disk of about 2 mm first, so a wall thinner than a voxel (partial volume
    at coarse resolution) does not merge the trachea with a lung apex.
    """
    airway = np.zeros_like(inside_air)
    pixel = min(spacing[1], spacing[2])
    pixel_mm2 = spacing[1] * spacing[2]
    min_area, max_area = 50.0 / pixel_mm2, 1000.0 / pixel_mm2
    opening_disk = disk(max(1, int(round(2.0 / pixel))))

    def blobs(z):
        sep = ndi.binary_opening(inside_air[z], opening_disk)
        lab, n = label(sep)
        return lab, n, np.bincount(lab.ravel(), minlength=n + 1)

    zs = np.flatnonzero(inside_air.any(axis=(1, 2)))
    if zs.size == 0:
        return airway
    # search the top 60 mm of air-containing slices for the trachea
    top = zs[-1]
    seed = None
    for z in range(top, -1, -1):
        if (top - z) * spacing[0] > 60.0:
            break
        lab, n, areas = blobs(z)
        cols = np.flatnonzero(body[z].any(axis=0))
        if n == 0 or cols.size == 0:
            continue
        # (where the field of view cuts the body its middle need not be the mid-line)
        x_mid, half = 0.5 * (cols[0] + cols[-1]), 0.5 * (cols[-1] - cols[0] + 1)
        centres = ndi.center_of_mass(lab > 0, lab, range(1, n + 1))
        best = None
        for i, (_, cx) in enumerate(centres, start=1):
            if min_area <= areas[i] <= max_area:
                offset = abs(cx - x_mid) / half
                if offset < (0.5 if cut else 0.2) and (best is None or offset < best[0]) and \
                        (hu is None or np.median(hu[z][lab == i]) <= air_hu + max_above_air):
                    best = (offset, i)
        if best is not None:
            seed = (z, lab == best[1])
            break
    if seed is None:
        return airway

    # follow it down, in a window around the airway of the slice above; a blob
    # cut by the window's edge is too large to be a bronchus anyway
    reach = disk(max(1, int(round(spacing[0] / pixel))))
    half = [int(np.ceil(60.0 / s)) for s in spacing[1:]]
    z0, prev = seed
    airway[z0] = prev
    prev_area = prev.sum()
    split, merged_mm = False, 0.0
    for z in range(z0 - 1, -1, -1):
        ys, xs = np.nonzero(prev)
        win = (slice(max(ys.min() - half[0], 0), ys.max() + 1 + half[0]),
               slice(max(xs.min() - half[1], 0), xs.max() + 1 + half[1]))
        sep = ndi.binary_opening(inside_air[z][win], opening_disk)
        lab, n = label(sep)
        areas = np.bincount(lab.ravel(), minlength=n + 1)
        cut = np.zeros(n + 1, bool)
        for end in (0, -1):
            cut[lab[end, :]] = cut[lab[:, end]] = True
        near = ndi.binary_dilation(prev[win], reach)
        ids = np.unique(lab[near & (lab > 0)])
        keep = [i for i in ids if not cut[i] and areas[i] <= max_area
                and areas[i] <= 3.0 * prev_area + min_area]
        if not keep:
            # Above the carina the trachea never opens into a lung: a merge is partial
            # volume across a thin wall (coarse scans). Follow its footprint for a while.
            cur = prev & inside_air[z]
            if split or merged_mm >= 40.0 or cur.sum() < 0.5 * prev.sum():
                break
            airway[z] = cur
            merged_mm += spacing[0]
            continue
        split |= len(keep) > 1
        merged_mm = 0.0
        cur = np.zeros_like(prev)
        cur[win] = np.isin(lab, keep)
        airway[z][win] = ndi.binary_dilation(cur[win], opening_disk) & inside_air[z][win]
        prev, prev_area = cur, max(cur.sum() / len(keep), 1)
    return airway


def trachea_from_below(inside_air: np.ndarray, body: np.ndarray, spacing: tuple[float, float, float],
                       tree: np.ndarray, *, hu: np.ndarray | None = None, air_hu: float = -1000.0,
                       cut: bool = False, min_mm: float = 60.0, max_top_mm: float = 30.0) -> bool:
    """Whether the trachea enters the volume through its lower end (head and feet swapped).

    In the canonical layout (``z`` towards the head) the trachea runs down into
    the chest from the top slices, and :func:`track_airways` follows it from
    there. In a file whose orientation swaps head and feet it comes in from
    the bottom: tracked from the top, the airways reach less than ``max_top_mm``
    through the slices, tracked from the bottom (the volume turned upside
    down) at least ``min_mm``. On A0001 and the phantom's cases (seeds 0-1)
    the tree tracked from the top reaches 105-185 mm, from the bottom 0-52 mm
    (gas in the bowel that a slab below the lungs shows); on CIP's ct-64, which
    shows little of the trachea, 64 and 36 mm, so that the same scan upside
    down is not noted.

    Parameters
    ----------
    inside_air, body : (Z, Y, X) bool
        As for :func:`track_airways`.
    spacing : 3 floats, mm.
    tree : (Z, Y, X) bool
        :func:`track_airways` of the volume as it is.
    hu, air_hu, cut
        As for :func:`track_airways`.
    min_mm, max_top_mm : float
        Least reach (mm along ``z``) from the bottom, and most from the top.

    Returns
    -------
    bool
    """
    def reach(airway: np.ndarray) -> float:
        return float(np.count_nonzero(airway.any(axis=(1, 2)))) * float(spacing[0])

    if reach(tree) >= max_top_mm or inside_air.shape[0] * float(spacing[0]) < min_mm:
        return False
    below = track_airways(inside_air[::-1], body[::-1], spacing, hu=None if hu is None else hu[::-1],
                          air_hu=air_hu, cut=cut)
    return reach(below) >= min_mm
