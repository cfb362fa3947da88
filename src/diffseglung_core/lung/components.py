"""Which air-filled components are lungs, and which lung is right or left."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy import ndimage as ndi

from ..binary import distance_inside, label
from .coarse import bbox, coarse_factors, downsample_mask, nearest_label, upsample
from .maps import LEFT_LUNG, RIGHT_LUNG
from .morphology import axial_convex_hull, axial_opening, disk, fill_holes_nd


def lung_components(inside_air: np.ndarray, hu: np.ndarray, airway: np.ndarray,
                    spacing: tuple[float, float, float], *, min_area_mm2: float,
                    air_hu: float = -1000.0) -> tuple[Optional[np.ndarray], np.ndarray]:
    """The 3D components of inside air that are lungs, and the gas that is not.

    A candidate is one of the eight largest components whose largest axial
    section is at least ``min_area_mm2``. It is lung when it holds lung
    parenchyma (:func:`looks_like_parenchyma`) inside the bony thorax
    (:func:`inside_bony_thorax`): bowel and stomach gas is pure air with
    smooth walls and no vessels, whatever its size or position, and air
    caught between the back and a sheet on the table lies behind the ribs.
    A component that the tracked airway tree touches (the bronchi open into
    it) needs vessels only, wherever it lies, however near air it reads (an
    emphysematous lung): what a tracker took for the trachea in a scan of the
    abdomen (a loop of bowel gas near the mid-line) opens into gas, which has none.
    Components much smaller than the largest lung (under 2 %) are dropped.

    Parameters
    ----------
    inside_air : (Z, Y, X) bool
        Air inside the body, airways removed.
    hu : (Z, Y, X) float
        The CT in HU.
    airway : (Z, Y, X) bool
        Tracked trachea and main bronchi (may be empty).
    spacing : 3 floats
        Voxel size (mm).
    min_area_mm2 : float
        Smallest largest-axial-section of a lung (mm²).
    air_hu : float
        HU of air in this scan (about -1000).

    Returns
    -------
    lungs : (Z, Y, X) bool or None
        The lung components, None when there is none.
    gas : (Z, Y, X) bool
        Candidates of lung size rejected as gas (bowel, stomach).
    """
    gas = np.zeros(inside_air.shape, bool)
    lab, n = label(inside_air)
    if n == 0:
        return None, gas
    sizes = np.bincount(lab[inside_air], minlength=n + 1)  # (the labelled voxels only: faster)
    sizes[0] = 0
    pixel_mm2 = spacing[1] * spacing[2]
    order = np.argsort(sizes)[::-1]
    bronchial = set()
    if airway.any():
        near = bbox(airway, (2, 2, 2))  # the dilation reaches 2 voxels
        ends = ndi.binary_dilation(airway[near], np.ones((3, 3, 3), bool), iterations=2)
        bronchial = set(np.unique(lab[near][ends]).tolist()) - {0}
    keep, rejected = [], []
    largest = None
    slices = ndi.find_objects(lab)
    for i in order[:8]:
        if sizes[i] == 0:
            break
        sl = slices[i - 1]
        comp = lab[sl] == i
        if comp.sum(axis=(1, 2)).max() * pixel_mm2 < min_area_mm2:
            continue
        opens = i in bronchial
        if not looks_like_parenchyma(hu[sl], comp, air_hu, floor_hu=-np.inf if opens else 40.0):
            rejected.append(i)
            continue
        if not opens and not inside_bony_thorax(hu[sl[0]], comp, sl[1:], spacing):
            continue
        if largest is None:
            largest = sizes[i]
        elif sizes[i] < 0.02 * largest:
            break
        keep.append(i)
    if rejected:
        gas = _components(lab, slices, rejected)
    if not keep:
        return None, gas
    return _components(lab, slices, keep), gas


def _components(lab: np.ndarray, slices: list, which: Sequence[int]) -> np.ndarray:
    """``np.isin(lab, which)``, each component read in its box only."""
    out = np.zeros(lab.shape, bool)
    for i in which:
        out[slices[i - 1]] |= lab[slices[i - 1]] == i
    return out


def looks_like_parenchyma(hu: np.ndarray, comp: np.ndarray, air_hu: float = -1000.0, *,
                          floor_hu: float = 40.0) -> bool:
    """Whether an air-filled component holds lung parenchyma rather than gas.

    Lung parenchyma is air mixed with tissue (alveolar walls, capillaries):
    its median is well above air even in emphysema, and vessels cross it.
    Bowel or stomach gas reads as air, with no tissue inside. Vessels are
    counted in the interior of the component's axial sections (two voxels in
    from the edge, where the wall of a gas pocket blurs): holes in the
    component (tissue denser than its air bound) and, as small vessels read at
    thin sections (partial volume), voxels of at least 30 % tissue
    (``air_hu + 300`` HU), which noise alone never makes of air.

    Parameters
    ----------
    hu : (Z, Y, X) float
        HU of the component's bounding box.
    comp : (Z, Y, X) bool
        The component in that box.
    air_hu : float
        HU of air in this scan.
    floor_hu : float
        A component whose median is less than this above air is gas.

    Returns
    -------
    bool
        True when the median is at least 80 HU above air, or at least
        ``floor_hu`` above air with vessels making up at least 2 % of the
        filled sections' interior.
    """
    median = float(np.median(hu[comp]))
    if median >= air_hu + 80.0:
        return True
    if median < air_hu + floor_hu:
        return False
    filled = np.stack([fill_holes_nd(c) for c in comp])
    interior = ndi.binary_erosion(filled, np.ones((1, 3, 3), bool), iterations=2)
    vessels = interior & (~comp | (hu >= air_hu + 300.0))
    return np.count_nonzero(vessels) >= 0.02 * max(np.count_nonzero(interior), 1)


def inside_bony_thorax(hu: np.ndarray, comp: np.ndarray, box: tuple, spacing: Sequence[float], *,
                       bone_hu: float = 200.0, min_bone_mm2: float = 300.0,
                       min_share: float = 0.5) -> bool:
    """Whether an air-filled component lies mostly inside the bony thorax.

    The lungs lie inside the rib cage: in each axial slice, inside the convex
    hull of the patient's bone (ribs, spine, sternum, shoulder girdle; the
    table is another component). Air between the patient's back and a sheet
    or pad on the table lies behind all of it.

    Parameters
    ----------
    hu : (Z, Y, X) float
        Whole axial slices (HU) of the slices the component spans.
    comp : (Z, Y', X') bool
        The component in its bounding box.
    box : 2 slices
        Where the bounding box lies in the slices, along ``(y, x)``.
    spacing : 3 floats, mm.
    bone_hu : float
        Bone is denser than this (HU, after smoothing in-plane about 1 mm).
    min_bone_mm2 : float
        Slices with less bone than this (mm²) are not judged.
    min_share : float
        Smallest share of the judged voxels inside the hull.

    Returns
    -------
    bool
        True also when no slice shows enough bone to judge.
    """
    from .cavity import smooth_axial

    inside = judged = 0
    pixel_mm2 = float(spacing[1]) * float(spacing[2])
    for z in np.flatnonzero(comp.any(axis=(1, 2))):
        smooth = smooth_axial(hu[z:z + 1], spacing, 1.0)[0]
        # the patient's bone, not the table's: bone of the largest component denser than air
        lab, n = label(smooth > -400.0)
        if n == 0:
            continue
        patient = lab == np.argmax(np.bincount(lab.ravel())[1:]) + 1
        bone = patient & (smooth > bone_hu)
        if np.count_nonzero(bone) * pixel_mm2 < min_bone_mm2:
            continue
        hull = axial_convex_hull(bone[None])[0][box]
        inside += np.count_nonzero(comp[z] & hull)
        judged += np.count_nonzero(comp[z])
    return bool(judged == 0 or inside >= min_share * judged)


def split_left_right(coarse: np.ndarray, spacing: tuple[float, float, float],
                      x_mid: float) -> np.ndarray:
    """Label the lung components of a coarse mask 1 (right, low x) and 2 (left).

    The largest component is one lung, or both when they touch (split by
    erosion and a watershed, or at the body's middle); the other lung is the
    largest component on the other side of the body's middle (at least 5 % of
    the first). A lung that consolidation cuts into pieces in a slice is
    several components on one side: a piece lying wholly on one side of the
    middle belongs to that side's lung (the mediastinum lies between), any
    other piece to the nearest lung.

    Parameters
    ----------
    coarse : (Z, Y, X) bool
        The lungs on a coarse grid.
    spacing : 3 floats
        Voxel size (mm) of the coarse grid.
    x_mid : float
        The body's left-right middle in coarse voxels.

    Returns
    -------
    (Z, Y, X) uint8
    """
    labels = np.zeros(coarse.shape, np.uint8)
    lab, n = label(coarse)
    if n == 0:
        return labels
    index = np.arange(1, n + 1)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    x = np.broadcast_to(np.arange(coarse.shape[2], dtype=np.float64), coarse.shape)
    # share of each component left of the middle (the patient's left: high x)
    left_share = np.asarray(ndi.mean(x > x_mid, lab, index))
    cx = np.asarray(ndi.mean(x, lab, index))
    first = int(np.argmax(sizes))
    one = lab == first + 1
    straddles = 0.25 < left_share[first] < 0.75
    other = [i for i in np.argsort(sizes)[::-1]
             if (cx[i] > x_mid) != (cx[first] > x_mid) and sizes[i] >= 0.05 * sizes[first]]
    if other and not straddles:
        parts = [one, lab == other[0] + 1]
    else:
        parts = erode_split(one, spacing)
        if parts is not None and len({np.nonzero(p)[2].mean() > x_mid for p in parts}) < 2:
            parts = None  # a neck within one lung, not between the two
        if parts is None:
            if straddles:
                # both lungs fused and no neck to cut: split at the body midline
                parts = [one & (x <= x_mid), one & (x > x_mid)]
            else:
                parts = [one]
    if len(parts) == 2:
        pcx = [np.nonzero(p)[2].mean() for p in parts]
        right, left = (parts[0], parts[1]) if pcx[0] <= pcx[1] else (parts[1], parts[0])
        labels[right] = RIGHT_LUNG
        labels[left] = LEFT_LUNG
    else:
        labels[parts[0]] = RIGHT_LUNG if np.nonzero(parts[0])[2].mean() <= x_mid else LEFT_LUNG
    # the other components: pieces of lung that consolidation or a fissure cut off
    rest = (lab > 0) & (labels == 0)
    if rest.any():
        side = np.zeros(n + 1, np.uint8)
        present = set(np.unique(labels[labels > 0]).tolist())
        side[1:][(left_share <= 0.1) & (RIGHT_LUNG in present)] = RIGHT_LUNG
        side[1:][(left_share >= 0.9) & (LEFT_LUNG in present)] = LEFT_LUNG
        labels[rest] = np.where(side[lab[rest]] > 0, side[lab[rest]], nearest_label(labels)[rest])
    return labels


def erode_split(mask: np.ndarray, spacing: tuple[float, float, float],
                 max_mm: float = 20.0) -> Optional[list[np.ndarray]]:
    """Split one fused component in two by erosion and a watershed, or None."""
    from skimage.segmentation import watershed

    dist = distance_inside(mask, spacing)
    step = min(spacing)
    total = mask.sum()
    r = step
    while r <= max_mm:
        core = dist > r
        lab, n = label(core)
        if n >= 2:
            sizes = np.bincount(lab.ravel())[1:]
            order = np.argsort(sizes)[::-1]
            a, b = sizes[order[0]], sizes[order[1]]
            if b >= 0.1 * a and a + b >= 0.02 * total:
                markers = np.zeros(mask.shape, np.int32)
                markers[lab == order[0] + 1] = 1
                markers[lab == order[1] + 1] = 2
                ws = watershed(-dist, markers, mask=mask)
                return [ws == 1, ws == 2]
        if n == 0:
            return None
        r += step
    return None


def gas_pockets(hu: np.ndarray, lungs: np.ndarray, spacing: Sequence[float], *,
                air_hu: float = -1000.0, min_ml: float = 2.0, wall_fraction: float = 0.7,
                min_mm: float = 3.0) -> np.ndarray:
    """Gas that partial volume joined to a lung: stomach or bowel under the diaphragm.

    With slices as thick as the diaphragm, the gas of the stomach or the colon
    under a dome touches the lung base voxel to voxel and joins its air
    component. Such a pocket is pure air; a bulla is pure air too, but lung
    parenchyma surrounds it, while tissue (the stomach or bowel wall, fluid)
    surrounds gas on most sides.

    Parameters
    ----------
    hu : (Z, Y, X) float
        HU (the box around the lungs).
    lungs : (Z, Y, X) bool
        The lung components.
    spacing : 3 floats, mm.
    air_hu : float
        HU of air in this scan.
    min_ml : float
        Smaller pockets are left alone.
    wall_fraction : float
        A pocket is gas when at least this fraction of the voxels around it
        (a shell about ``min_mm`` thick) is tissue denser than -300 HU.
    min_mm : float
        Radius (mm) of the axial disk that opens the pure-air voxels (noise in
        emphysematous lung makes no pocket).

    Returns
    -------
    (Z, Y, X) bool
        Voxels of ``lungs`` that are gas, with the partial-volume rim around it.
    """
    out = np.zeros(lungs.shape, bool)
    if not lungs.any():
        return out
    box = bbox(lungs, [2, 2, 2])
    out[box] = _gas_pockets(hu[box], lungs[box], spacing, air_hu, min_ml, wall_fraction, min_mm)
    return out


def _gas_pockets(hu, lungs, spacing, air_hu, min_ml, wall_fraction, min_mm) -> np.ndarray:
    out = np.zeros(lungs.shape, bool)
    pure = lungs & (hu < air_hu + 60.0)
    footprint = disk(max(1, int(round(min_mm / min(float(spacing[1]), float(spacing[2]))))))[None]
    pure = axial_opening(pure, footprint)
    lab, n = label(pure)
    if n == 0:
        return out
    voxel_ml = float(np.prod(spacing)) / 1000.0
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    shell_fp = np.ones((3, 3, 3), bool)
    reach = [1 + r for r in (np.array(footprint.shape) - 1) // 2]
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        if sizes[i] * voxel_ml < min_ml:
            continue
        # the pocket's box, grown by the reach of the two dilations
        sl = tuple(slice(max(s.start - r, 0), min(s.stop + r, m))
                   for s, r, m in zip(sl, reach, lab.shape))
        pocket = lab[sl] == i
        grown = ndi.binary_dilation(ndi.binary_dilation(pocket, footprint), shell_fp)
        shell = grown & ~pocket & ~(hu[sl] < air_hu + 60.0)
        if not shell.any():
            continue
        if np.count_nonzero(hu[sl][shell] > -300.0) >= wall_fraction * np.count_nonzero(shell):
            out[sl] |= grown & lungs[sl]
    return out


def satellite_parenchyma(inside_air: np.ndarray, lungs: np.ndarray, hu: np.ndarray,
                         spacing: Sequence[float], *, max_mm: float = 30.0,
                         min_area_mm2: float = 20.0, min_above_air_hu: float = 200.0,
                         air_hu: float = -1000.0, x_mid: Optional[float] = None,
                         midline_mm: float = 20.0) -> np.ndarray:
    """Small pieces of aerated lung near the lungs: fibrosis or consolidation cuts them off.

    Reticulation and consolidation break the aerated lung of a diseased lobe
    into pieces too small to be lungs on their own. In a volume the lobe's
    other slices join them to the lung; in one slice nothing does, so the
    lung mask uses this on scans of a few slices only (in a volume, a small
    air pocket near the lung base is as likely bowel gas with stool). A piece is lung when it
    lies within ``max_mm`` of the lungs, is at least ``min_area_mm2`` in one
    axial section, reads as parenchyma, well above air (bronchi, the
    oesophagus and bowel gas read as air), lies inside the bony thorax
    (:func:`inside_bony_thorax`) and, when the body's mid-line ``x_mid`` is
    given, not within ``midline_mm`` of it: the trachea, the main bronchi and
    the oesophagus run there, and a small air lumen in them reads well above
    air at thick slices (partial volume), while lung near the mid-line (the
    junction lines, the azygo-oesophageal recess) is part of a whole lung.

    Parameters
    ----------
    inside_air : (Z, Y, X) bool
        Air inside the body, airways and gas removed.
    lungs : (Z, Y, X) bool
        The lungs found so far.
    hu : (Z, Y, X) float
    spacing : 3 floats, mm.

    Returns
    -------
    (Z, Y, X) bool
        The pieces to add.
    """
    out = np.zeros(lungs.shape, bool)
    lab, n = label(inside_air & ~lungs)
    if n == 0 or not lungs.any():
        return out
    factors = coarse_factors(spacing, lungs.shape, 2.0)
    step = [s * f for s, f in zip(spacing, factors)]
    near = distance_inside(~downsample_mask(lungs, factors), step) <= max_mm
    near = upsample(near, factors, lungs.shape)
    pixel_mm2 = float(spacing[1]) * float(spacing[2])
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        comp = lab[sl] == i
        if comp.sum(axis=(1, 2)).max() * pixel_mm2 < min_area_mm2 or not near[sl][comp].any():
            continue
        if x_mid is not None:
            cx = sl[2].start + float(np.nonzero(comp)[2].mean())
            if abs(cx - x_mid) * float(spacing[2]) < midline_mm:
                continue
        if float(np.median(hu[sl][comp])) >= air_hu + min_above_air_hu and \
                inside_bony_thorax(hu[sl[0]], comp, sl[1:], spacing):
            out[sl] |= comp
    return out
