"""Weight-free lung mask: thresholds, connected components and morphology.

The mask of :func:`compute_lung_mask` is a ``uint8`` label map on the CT grid:
0 outside the lungs, :data:`RIGHT_LUNG` (1) and :data:`LEFT_LUNG` (2). The
method needs no trained weights and works in mm, so the same settings serve
0.5 mm and 5 mm slices, one slice or hundreds:

1. *Air inside the body.* Voxels below ``air_hu`` that are not connected, in
   their axial slice, to the edge of the image (outside air, the air around the
   table).
2. *Airways out.* The trachea is found in the upper slices as a small air
   tube near the middle of the body and followed down, slice by slice, through
   the carina into the main bronchi until each branch opens into the lung.
3. *Lungs.* The large 3D connected components that remain. Two lungs that
   touch (anterior or posterior junction) are split by eroding until they
   come apart and growing the halves back (watershed on the distance map);
   the right lung is the one on the low-``x`` side.
4. *Border disease and vessels back in.* Dense disease against the pleura
   (consolidation, a tumour) is lung, but it is a dent in the air contour.
   Each lung gets (a) a closing with a ball of ``closing_mm`` (small dents,
   a smooth border); (b) the thick parts of a closing with a ball of
   ``mass_mm``: a mass that bulges into the lung fills a dent thicker than
   the thin wedges the closing adds along the heart, the aorta and the hilum;
   (c) on the costal side, the pockets of each slice's convex hull whose
   chord runs along the chest wall (not deeper below the skin than the lung's
   own costal surface plus a margin, and not from the lung's centre towards
   the mediastinum). Additions stay inside the body, off bone, airways and
   the other lung. Holes (vessels, nodules) are then filled slice by slice
   and in 3D, except the dome of the diaphragm: a large hole of an axial
   slice that continues into tissue outside the lung in the slice below.

The heavy morphology (closing, splitting) runs on a coarse grid of about
``coarse_mm`` voxels; the lung boundary itself comes from the full-resolution
threshold, so the mask follows the lung surface at the scan's own resolution.
Memory stays at a few bytes per voxel (bool and uint8 work arrays).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy import ndimage as ndi

from .errors import GridMismatchError, NoLungFoundError
from .progress import ProgressCallback, report

__all__ = [
    "RIGHT_LUNG",
    "LEFT_LUNG",
    "compute_lung_mask",
    "binary_lung",
    "check_mask_grid",
    "lung_volumes_ml",
]

#: Label values of :func:`compute_lung_mask`.
RIGHT_LUNG = 1
LEFT_LUNG = 2

_STAGES = 6


def compute_lung_mask(
    hu: np.ndarray,
    spacing: Sequence[float],
    *,
    air_hu: float = -400.0,
    closing_mm: float = 8.0,
    mass_mm: float = 30.0,
    bone_hu: float = 300.0,
    dome_mm2: float = 300.0,
    coarse_mm: float = 2.0,
    min_lung_area_mm2: float = 500.0,
    progress: Optional[ProgressCallback] = None,
) -> np.ndarray:
    """Label the right and left lung of a chest CT.

    Parameters
    ----------
    hu : (Z, Y, X) array
        CT in Hounsfield units, canonical layout (``z`` inferior to superior,
        ``y`` anterior to posterior, ``x`` patient right to left).
    spacing : 3 floats
        Voxel size in mm along ``(z, y, x)``.
    air_hu : float
        Voxels below this HU are air or aerated lung.
    closing_mm : float
        Radius (mm) of the ball that closes each lung's contour (small dents,
        juxtapleural nodules of a few mm). 0 disables it.
    mass_mm : float
        Radius (mm) of the ball that finds dense masses against the pleura.
        A closing with this radius fills the dents they make in the air
        contour; the parts of the filling at least ``0.8 * mass_mm`` thick are
        added anywhere (a tumour bulging into the lung is; the wedges along
        the heart, the aorta and the hilum are not). On the costal side the
        convex-hull pockets along the chest wall (at least ``0.2 * mass_mm``
        thick) are added too. 0 disables both.
    bone_hu : float
        Voxels above this HU (bone) are never added by the closing.
    dome_mm2 : float
        Holes of an axial slice are filled (vessels, nodules) unless they are
        at least this large (mm²) and continue below into tissue outside the
        lung: the dome of the diaphragm under the lung base stays out.
    coarse_mm : float
        Voxel size (mm) of the grid used for the closing and the left/right
        split.
    min_lung_area_mm2 : float
        A lung must reach at least this area (mm²) in one axial slice.
    progress : callable, optional
        ``progress(done, total, stage)``; raise
        :class:`~diffseglung_core.errors.Cancelled` from it to stop.

    Returns
    -------
    (Z, Y, X) uint8 ndarray
        0 outside the lungs, 1 right lung, 2 left lung.

    Raises
    ------
    NoLungFoundError
        When no air-filled region of lung size lies inside the body.
    """
    hu = np.asarray(hu)
    if hu.ndim != 3:
        raise ValueError(f"compute_lung_mask needs a (z, y, x) volume, got shape {hu.shape}")
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing must be 3 positive values in mm, got {spacing}")
    if hu.size == 0:
        raise NoLungFoundError("empty volume: no lung found")

    shape = hu.shape
    report(progress, 0, _STAGES, "air inside the body")
    air = hu < air_hu
    outside = _outside_air(air)
    inside_air = air & ~outside
    body_filled = _filled_body(~outside)
    del air

    report(progress, 1, _STAGES, "airways")
    airway = _track_airways(inside_air, body_filled, spacing)
    inside_air &= ~airway

    report(progress, 2, _STAGES, "lung components")
    lungs = _lung_components(inside_air, spacing, min_lung_area_mm2)
    if lungs is None:
        raise NoLungFoundError(
            f"no lung found: no air-filled region below {air_hu:g} HU with an axial area of "
            f"at least {min_lung_area_mm2 / 100:g} cm² lies inside the body "
            "(is this a chest CT in HU?)")
    del inside_air

    # the rest works in a box around the lungs, wide enough for the closings
    x_mid = _body_mid_x(body_filled)
    margin = max(closing_mm, mass_mm) + 2.0 * coarse_mm
    box = _bbox(lungs, [int(np.ceil(margin / s)) for s in spacing])
    x_mid -= box[2].start
    hu, lungs, airway = hu[box], lungs[box], airway[box]
    body = body_filled[box]
    allowed = body & ~airway & (hu < bone_hu) & ~lungs
    del body_filled

    report(progress, 3, _STAGES, "left / right")
    factors = _coarse_factors(spacing, hu.shape, coarse_mm)
    coarse_spacing = tuple(s * f for s, f in zip(spacing, factors))
    coarse_labels = _split_left_right(_downsample_mask(lungs, factors), coarse_spacing,
                                      x_mid / factors[2])

    report(progress, 4, _STAGES, "border closing")
    labels = np.zeros(hu.shape, np.uint8)
    nearest = _upsample(_nearest_label(coarse_labels), factors, hu.shape)
    coarse_allowed = _downsample_mask(allowed, factors)
    coarse_body = _downsample_mask(body, factors)
    del body
    pad = [int(np.ceil(margin / s)) for s in coarse_spacing]
    for value in (RIGHT_LUNG, LEFT_LUNG):
        side = lungs & (nearest == value)
        if not side.any():
            continue
        coarse_side = coarse_labels == value
        cbox = _bbox(coarse_side, pad)
        coarse_side = coarse_side[cbox]
        added = np.zeros(coarse_side.shape, bool)
        if closing_mm > 0:
            added |= _closing(coarse_side, coarse_spacing, closing_mm)
        if mass_mm > 0:
            dents = _closing(coarse_side, coarse_spacing, mass_mm) & ~coarse_side & coarse_allowed[cbox]
            # thick anywhere (a tumour against the mediastinum) ...
            added |= _thick_parts(dents, coarse_spacing, 0.4 * mass_mm)
            # ... or, on the costal side, whatever the slice's convex hull fills
            added |= _costal_pockets(coarse_side, coarse_body[cbox], coarse_spacing,
                                     x_mid / factors[2] - cbox[2].start,
                                     min_mm=0.1 * mass_mm) & coarse_allowed[cbox]
        added &= ~coarse_side
        if added.any():
            fbox = tuple(slice(b.start * f, min(b.stop * f, n))
                         for b, f, n in zip(cbox, factors, hu.shape))
            up = _upsample(added, factors, [b.stop - b.start for b in fbox])
            side[fbox] |= up & allowed[fbox]
        labels[side & (labels == 0)] = value
    del nearest, allowed

    report(progress, 5, _STAGES, "filling holes")
    for value in (RIGHT_LUNG, LEFT_LUNG):
        side = labels == value
        if not side.any():
            continue
        filled = _fill_holes(side, spacing, dome_mm2)
        labels[filled & (labels == 0) & ~airway] = value
    out = np.zeros(shape, np.uint8)
    out[box] = labels
    report(progress, _STAGES, _STAGES, "done")
    return out


def _bbox(mask: np.ndarray, margin: Sequence[int]) -> tuple[slice, slice, slice]:
    """Bounding box of a mask, grown by ``margin`` voxels per axis and clipped."""
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        box.append(slice(max(idx[0] - margin[axis], 0), min(idx[-1] + 1 + margin[axis], mask.shape[axis])))
    return tuple(box)


def binary_lung(mask: np.ndarray) -> np.ndarray:
    """Any lung mask or lung label map as a bool array (nonzero = lung)."""
    return np.asarray(mask) != 0


def lung_volumes_ml(mask: np.ndarray, spacing: Sequence[float]) -> dict[str, float]:
    """Volumes (mL) of the right lung, the left lung and both in a lung label map."""
    voxel_ml = float(np.prod([float(s) for s in spacing])) / 1000.0
    counts = np.bincount(np.asarray(mask, dtype=np.uint8).ravel(), minlength=3)
    right = counts[RIGHT_LUNG] * voxel_ml
    left = counts[LEFT_LUNG] * voxel_ml
    return {"right": float(right), "left": float(left),
            "total": float(np.count_nonzero(mask) * voxel_ml)}


def check_mask_grid(mask: np.ndarray, volume, *, name: str = "mask") -> np.ndarray:
    """Check that a lung mask lies on the grid of a CT volume.

    Parameters
    ----------
    mask : (Z, Y, X) array
        Lung mask or label map.
    volume : CTVolume or (Z, Y, X) array
        The CT it must match.
    name : str
        How to call the mask in the error message (e.g. its file name).

    Returns
    -------
    The mask as an ndarray, unchanged.

    Raises
    ------
    GridMismatchError
        When the shapes differ (or, for two CTVolume-like objects, the
        spacing), or the mask is not 3D.
    """
    mask = np.asarray(mask)
    shape = tuple(getattr(volume, "shape", np.shape(volume)))
    if mask.ndim != 3:
        raise GridMismatchError(f"{name}: a lung mask must be 3D (z, y, x), got shape {mask.shape}")
    if tuple(mask.shape) != shape:
        raise GridMismatchError(
            f"{name}: mask shape {tuple(mask.shape)} (z, y, x) does not match the CT grid {shape}; "
            "the mask must be made on the same scan")
    if not (mask.dtype == bool or np.issubdtype(mask.dtype, np.integer)):
        if not np.all(np.isfinite(mask)) or np.any(mask != np.round(mask)):
            raise GridMismatchError(f"{name}: a lung mask must hold integer labels, got {mask.dtype} "
                                    "with fractional or NaN values")
    return mask


# ---------------------------------------------------------------------------
# steps


def _outside_air(air: np.ndarray) -> np.ndarray:
    """Air connected to the edge of its axial slice."""
    outside = np.zeros_like(air)
    border = np.zeros(air.shape[1:], bool)
    border[[0, -1], :] = True
    border[:, [0, -1]] = True
    for z in range(air.shape[0]):
        seeds = air[z] & border
        if seeds.any():
            outside[z] = ndi.binary_propagation(seeds, mask=air[z])
    return outside


def _filled_body(not_outside: np.ndarray) -> np.ndarray:
    """The body: everything not outside air, holes filled slice by slice."""
    body = np.empty_like(not_outside)
    for z in range(not_outside.shape[0]):
        body[z] = _fill_holes_nd(not_outside[z])
    return body


def _track_airways(inside_air: np.ndarray, body: np.ndarray,
                   spacing: tuple[float, float, float]) -> np.ndarray:
    """Trachea and main bronchi, followed slice by slice from the top.

    The trachea is an air blob of 0.5-10 cm² near the left-right middle of the
    body in one of the upper slices. Going down, a blob is airway when it
    overlaps the airway of the slice above and stays tube-sized; a branch ends
    where it opens into the (much larger) lung. Each slice is opened with a
    disk of about 2 mm first, so a wall thinner than a voxel (partial volume
    at coarse resolution) does not merge the trachea with a lung apex.
    """
    airway = np.zeros_like(inside_air)
    pixel = min(spacing[1], spacing[2])
    pixel_mm2 = spacing[1] * spacing[2]
    min_area, max_area = 50.0 / pixel_mm2, 1000.0 / pixel_mm2
    disk = _disk(max(1, int(round(2.0 / pixel))))

    def blobs(z):
        sep = ndi.binary_opening(inside_air[z], disk)
        lab, n = ndi.label(sep)
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
        x_mid, half = 0.5 * (cols[0] + cols[-1]), 0.5 * (cols[-1] - cols[0] + 1)
        centres = ndi.center_of_mass(lab > 0, lab, range(1, n + 1))
        best = None
        for i, (_, cx) in enumerate(centres, start=1):
            if min_area <= areas[i] <= max_area:
                offset = abs(cx - x_mid) / half
                if offset < 0.2 and (best is None or offset < best[0]):
                    best = (offset, i)
        if best is not None:
            seed = (z, lab == best[1])
            break
    if seed is None:
        return airway

    # follow it down, in a window around the airway of the slice above; a blob
    # cut by the window's edge is too large to be a bronchus anyway
    reach = _disk(max(1, int(round(spacing[0] / pixel))))
    half = [int(np.ceil(60.0 / s)) for s in spacing[1:]]
    z0, prev = seed
    airway[z0] = prev
    prev_area = prev.sum()
    split, merged_mm = False, 0.0
    for z in range(z0 - 1, -1, -1):
        ys, xs = np.nonzero(prev)
        win = (slice(max(ys.min() - half[0], 0), ys.max() + 1 + half[0]),
               slice(max(xs.min() - half[1], 0), xs.max() + 1 + half[1]))
        sep = ndi.binary_opening(inside_air[z][win], disk)
        lab, n = ndi.label(sep)
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
        airway[z][win] = ndi.binary_dilation(cur[win], disk) & inside_air[z][win]
        prev, prev_area = cur, max(cur.sum() / len(keep), 1)
    return airway


def _disk(radius: int) -> np.ndarray:
    """A 2D disk footprint of ``radius`` pixels."""
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2) <= radius * radius


def _lung_components(inside_air: np.ndarray, spacing: tuple[float, float, float],
                     min_area_mm2: float) -> Optional[np.ndarray]:
    """The 3D components of inside air that are lungs, or None."""
    lab, n = ndi.label(inside_air)
    if n == 0:
        return None
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    sizes[0] = 0
    pixel_mm2 = spacing[1] * spacing[2]
    order = np.argsort(sizes)[::-1]
    # candidates: the few largest components whose biggest axial section is lung-sized
    keep = []
    largest = None
    slices = ndi.find_objects(lab)
    for i in order[:8]:
        if sizes[i] == 0:
            break
        sl = slices[i - 1]
        comp = lab[sl] == i
        max_area = comp.sum(axis=(1, 2)).max() * pixel_mm2
        if max_area < min_area_mm2:
            continue
        if largest is None:
            largest = sizes[i]
        elif sizes[i] < 0.02 * largest:
            break
        keep.append(i)
    if not keep:
        return None
    return np.isin(lab, keep)


def _split_left_right(coarse: np.ndarray, spacing: tuple[float, float, float],
                      x_mid: float) -> np.ndarray:
    """Label the lung components of a coarse mask 1 (right, low x) and 2 (left).

    ``x_mid`` is the body's left-right middle in coarse voxels.
    """
    labels = np.zeros(coarse.shape, np.uint8)
    lab, n = ndi.label(coarse)
    if n == 0:
        return labels
    sizes = np.bincount(lab.ravel())[1:]
    order = np.argsort(sizes)[::-1] + 1
    if n >= 2 and sizes[order[1] - 1] >= 0.05 * sizes[order[0] - 1]:
        parts = [lab == order[0], lab == order[1]]
        rest = [lab == i for i in order[2:]]
    else:
        parts = _erode_split(lab == order[0], spacing)
        rest = [lab == i for i in order[1:]]
        if parts is None:
            one = lab == order[0]
            xs = np.nonzero(one)[2]
            left_frac = np.mean(xs > x_mid)
            if 0.25 < left_frac < 0.75:
                # both lungs fused and no neck to cut: split at the body midline
                x = np.arange(one.shape[2])[None, None, :]
                parts = [one & (x <= x_mid), one & (x > x_mid)]
            else:
                parts = [one]
    if len(parts) == 2:
        cx = [np.nonzero(p)[2].mean() for p in parts]
        right, left = (parts[0], parts[1]) if cx[0] <= cx[1] else (parts[1], parts[0])
        labels[right] = RIGHT_LUNG
        labels[left] = LEFT_LUNG
    else:
        labels[parts[0]] = RIGHT_LUNG if np.nonzero(parts[0])[2].mean() <= x_mid else LEFT_LUNG
    # small extra components (a separated piece of lung) join the nearest lung
    if rest:
        extra = np.logical_or.reduce(rest)
        near = _nearest_label(labels)
        labels[extra] = near[extra]
    return labels


def _erode_split(mask: np.ndarray, spacing: tuple[float, float, float],
                 max_mm: float = 20.0) -> Optional[list[np.ndarray]]:
    """Split one fused component in two by erosion and a watershed, or None."""
    from skimage.segmentation import watershed

    dist = ndi.distance_transform_edt(mask, sampling=spacing)
    step = min(spacing)
    total = mask.sum()
    r = step
    while r <= max_mm:
        core = dist > r
        lab, n = ndi.label(core)
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


def _body_mid_x(body: np.ndarray) -> float:
    cols = np.flatnonzero(body.any(axis=(0, 1)))
    if cols.size == 0:
        return body.shape[2] / 2.0
    return 0.5 * (cols[0] + cols[-1])


def _fill_holes(mask: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0),
                min_open_mm2: float = np.inf) -> np.ndarray:
    """Fill holes in each axial slice, then in 3D.

    A slice's hole of at least ``min_open_mm2`` that continues into a hole or
    the outside of the slice below (at least 90 % of it lying over either) is
    left open: that is the dome of the diaphragm (liver, spleen) rising into
    the lung base, not a vessel. Such holes are followed upwards from the
    bottom slice; the bottom slice's holes themselves are always filled.
    """
    out = np.empty_like(mask)
    pixel_mm2 = float(spacing[1]) * float(spacing[2])
    below = None  # the slice below: its outside plus its open holes
    for z in range(mask.shape[0]):
        filled = _fill_holes_nd(mask[z])
        holes = filled & ~mask[z]
        open_ = ~filled
        if below is not None and np.isfinite(min_open_mm2) and holes.any():
            lab, n = ndi.label(holes)
            areas = np.bincount(lab.ravel(), minlength=n + 1)
            over = np.bincount(lab[below], minlength=n + 1)
            is_open = (areas * pixel_mm2 >= min_open_mm2) & (over >= 0.9 * areas)
            is_open[0] = False
            if is_open.any():
                dome = is_open[lab]
                filled &= ~dome
                open_ |= dome
        out[z] = filled
        below = open_
    return _fill_holes_nd(out)


def _fill_holes_nd(mask: np.ndarray) -> np.ndarray:
    """``mask`` plus the background components that do not touch the array's edge.

    Same result as :func:`scipy.ndimage.binary_fill_holes`, by labelling
    instead of iterated dilation (much faster on large arrays).
    """
    if not mask.any():
        return mask.copy()
    lab, n = ndi.label(~mask)
    if n == 0:
        return mask.copy()
    edge = np.zeros(n + 1, bool)
    for axis in range(mask.ndim):
        for end in (0, -1):
            edge[np.take(lab, end, axis=axis)] = True
    edge[0] = True
    return mask | ~edge[lab]


# ---------------------------------------------------------------------------
# the coarse grid


def _coarse_factors(spacing, shape, target_mm: float) -> tuple[int, int, int]:
    """Integer block sizes that bring each axis near ``target_mm`` (never coarser than the axis)."""
    return tuple(int(max(1, min(n, round(target_mm / s)))) for s, n in zip(spacing, shape))


def _downsample_mask(mask: np.ndarray, factors) -> np.ndarray:
    """Block majority of a bool mask (edges padded by replication)."""
    if all(f == 1 for f in factors):
        return mask.copy()
    pad = [(0, (-n) % f) for n, f in zip(mask.shape, factors)]
    m = np.pad(mask, pad, mode="edge")
    cz, cy, cx = (n // f for n, f in zip(m.shape, factors))
    fz, fy, fx = factors
    counts = m.reshape(cz, fz, cy, fy, cx, fx).sum(axis=(1, 3, 5), dtype=np.int32)
    return counts * 2 >= fz * fy * fx


def _upsample(coarse: np.ndarray, factors, shape) -> np.ndarray:
    """Nearest-neighbour upsampling of a coarse array back to ``shape``."""
    out = coarse
    for axis, f in enumerate(factors):
        if f > 1:
            out = np.repeat(out, f, axis=axis)
    return out[: shape[0], : shape[1], : shape[2]]


def _nearest_label(labels: np.ndarray) -> np.ndarray:
    """Every voxel gets the value of the nearest nonzero voxel of ``labels``."""
    if not labels.any():
        return labels.copy()
    idx = ndi.distance_transform_edt(labels == 0, return_distances=False, return_indices=True)
    return labels[tuple(idx)]


def _costal_pockets(lung: np.ndarray, body: np.ndarray, spacing, medial_x: float,
                    min_mm: float, wall_margin_mm: float = 20.0) -> np.ndarray:
    """Pockets of each axial slice's convex hull of ``lung`` against the chest wall.

    A pocket (a component of hull minus lung, opened by a disk of ``min_mm``)
    passes when the hull's edge across it (its chord) runs along the chest
    wall, no deeper below the skin than ``wall_margin_mm`` more than the
    lung's own costal surface; its centre does not lie from the lung's centre
    towards ``medial_x`` (the body's middle); and it is smaller than half the
    lung in that slice. Pockets are then joined across slices, and a stack
    whose failing pockets hold at least as many voxels as its passing ones is
    dropped whole. Failing pockets are medial ones (the mediastinum, the heart
    and the hilum) and holes at least half the lung's size (the dome of the
    liver or spleen rising into the lung base); a lateral pocket that opens
    onto the chest wall but is too large or too deep neither passes nor
    fails (the lung base beside the dome). A lesion along the chest wall that
    touches, in another slice, a pocket of the hilum stays in. Only passing
    pockets are returned.
    """
    from skimage.morphology import convex_hull_image

    passed = np.zeros_like(lung)
    failed = np.zeros_like(lung)
    disk = _disk(max(1, int(round(min_mm / min(spacing[1:])))))
    for z in range(lung.shape[0]):
        sl = lung[z]
        area = np.count_nonzero(sl)
        if area < 10:
            continue
        hull = convex_hull_image(sl)
        pockets = ndi.binary_opening(hull & ~sl, disk)
        lab, n = ndi.label(pockets)
        if n == 0:
            continue
        depth = ndi.distance_transform_edt(body[z], sampling=spacing[1:])
        surface = sl & ~ndi.binary_erosion(sl)
        wall = np.percentile(depth[surface], 10)
        chord = pockets & ~ndi.binary_erosion(hull)
        cy, cx = ndi.center_of_mass(sl)
        inward = np.array([0.0, np.sign(medial_x - cx)])
        sizes = np.bincount(lab.ravel(), minlength=n + 1)
        centres = ndi.center_of_mass(pockets, lab, range(1, n + 1))
        chord_depth = ndi.maximum(depth, lab * chord, range(1, n + 1))
        has_chord = np.bincount(lab[chord], minlength=n + 1) > 0
        ok = np.zeros(n + 1, bool)
        bad = np.zeros(n + 1, bool)
        for i, (y, x) in enumerate(centres, start=1):
            d = np.array([(y - cy) * spacing[1], (x - cx) * spacing[2]])
            lateral = d @ inward < 0.3 * np.linalg.norm(d)
            ok[i] = lateral and chord_depth[i - 1] <= wall + wall_margin_mm and sizes[i] < 0.5 * area
            # a large or deep lateral pocket that opens onto the chest wall neither
            # passes nor sinks its stack: the lung base around the dome of the diaphragm
            bad[i] = not ok[i] and not (lateral and has_chord[i])
        passed[z] = ok[lab]
        failed[z] = bad[lab]
    if not passed.any():
        return passed
    lab, n = ndi.label(passed | failed)
    bad = np.bincount(lab[failed], minlength=n + 1) >= np.bincount(lab[passed], minlength=n + 1)
    bad[0] = True
    return ~bad[lab] & passed


def _thick_parts(added: np.ndarray, spacing, r_mm: float, *, lung: Optional[np.ndarray] = None,
                 medial_x: Optional[float] = None) -> np.ndarray:
    """The parts of ``added`` at least ``2 * r_mm`` thick (an opening by a ball).

    The opened region is grown back by ``r_mm`` inside ``added``. With
    ``medial_x`` (the body's middle, in voxels) parts whose centre lies from
    the centre of ``lung`` towards it (mediastinum, hilum) are dropped.
    """
    if not added.any():
        return added.copy()
    core = ndi.distance_transform_edt(added, sampling=spacing) > r_mm
    if not core.any():
        return core
    opened = ndi.distance_transform_edt(~core, sampling=spacing) <= r_mm
    grown = (ndi.distance_transform_edt(~opened, sampling=spacing) <= r_mm) & added
    if medial_x is None or lung is None:
        return grown
    lab, n = ndi.label(grown)
    _, cy, cx = ndi.center_of_mass(lung)
    inward = np.array([0.0, np.sign(medial_x - cx)])
    keep = np.zeros(n + 1, bool)
    for i, (_, y, x) in enumerate(ndi.center_of_mass(grown, lab, range(1, n + 1)), start=1):
        d = np.array([(y - cy) * spacing[1], (x - cx) * spacing[2]])
        keep[i] = d @ inward < 0.3 * np.linalg.norm(d)
    return keep[lab]


def _closing(mask: np.ndarray, spacing, radius_mm: float) -> np.ndarray:
    """Binary closing with a ball of ``radius_mm`` (via distance maps, edges replicated)."""
    pad = [int(np.ceil(radius_mm / s)) + 1 for s in spacing]
    m = np.pad(mask, [(p, p) for p in pad], mode="edge")
    dilated = ndi.distance_transform_edt(~m, sampling=spacing) <= radius_mm
    closed = ndi.distance_transform_edt(dilated, sampling=spacing) > radius_mm
    closed |= m
    return closed[pad[0]:-pad[0], pad[1]:-pad[1], pad[2]:-pad[2]]
