"""The bony thorax: the rib cage and the vertebral column, which bound the lungs.

Dense lung is told from the tissue around it by what bounds it: the ribs, the
vertebral column and, in front of the column, the mediastinum. These helpers
find them per axial slice for :mod:`.cavity` and :mod:`.aorta`.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy import ndimage as ndi

from ..binary import distance_inside, label
from ..parallel import thread_map
from .coarse import bbox
from .morphology import disk, fill_holes_nd

__all__ = ["RIB_SLAB_MM", "rib_cage", "lung_vessels", "enhanced_blood", "vertebral_body",
           "vertebral_body_masks", "vertebral_column"]

#: Half-thickness (mm) of the slab of slices whose bone closes the rib cage of a slice.
RIB_SLAB_MM = 12.0


def rib_cage(bone: np.ndarray, spacing: Sequence[float], *, slab_mm: float = RIB_SLAB_MM) -> np.ndarray:
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


def lung_vessels(bright: np.ndarray, lung: np.ndarray, spacing: Sequence[float], *,
                 depth_mm: float = 2.0) -> np.ndarray:
    """Voxels as dense as bone that belong to vessels: the pieces that reach into the lung.

    With contrast, blood reads 150-400 HU, as dense as a rib's marrow and thin cortex:
    density cannot tell them apart, place can. Ribs, sternum and spine lie outside the
    pleura; a vessel filled with contrast runs inside the lung. Each 3D piece of
    ``bright`` with a voxel at least ``depth_mm`` (in-plane) inside the lung's sections
    (holes filled: the lung's own vessels) is a vessel, and so are the hilum, the heart
    and the great vessels it joins. Without contrast nothing inside the lung is that
    dense but calcified nodules, which are not the rib cage either.

    Parameters
    ----------
    bright : (Z, Y, X) bool
        Voxels as dense as bone.
    lung : (Z, Y, X) bool
        The lungs found so far.
    spacing : 3 floats, mm.
    depth_mm : float
        How far inside the lung's sections a piece must reach.

    Returns
    -------
    (Z, Y, X) bool
    """
    inside = np.zeros(lung.shape, bool)

    def deep(z: int) -> None:
        # bright voxels in the lung's section (its vessels are holes in it), depth_mm from its edge
        if not lung[z].any():
            return
        section = fill_holes_nd(lung[z])
        candidates = bright[z] & section
        if candidates.any():
            inside[z] = candidates & (distance_inside(section, spacing[1:]) > depth_mm)

    thread_map(deep, range(lung.shape[0]))
    if not inside.any():
        return inside
    lab, n = label(bright)
    reach = np.zeros(n + 1, bool)
    reach[lab[inside]] = True
    reach[0] = False
    return reach[lab]


def enhanced_blood(hu_smooth: np.ndarray, lung: np.ndarray, hull: np.ndarray, body: np.ndarray, *,
                   blood_hu: tuple[float, float] = (150.0, 600.0), min_share: float = 0.1) -> bool:
    """Whether the blood reads as dense as bone: a scan with intravenous contrast.

    Between the lungs and in front of the body's middle lie the heart and the great
    vessels (and fat); without contrast they read about 40 HU, with it 150-400 HU.
    Bone lies there only at the edge (the sternum), calcifications are small.

    Parameters
    ----------
    hu_smooth : (Z, Y, X) float
        HU smoothed about 1 mm in-plane.
    lung, hull, body : (Z, Y, X) bool
        The lungs found so far, their convex hull in each slice
        (:func:`.morphology.axial_convex_hull`) and the body.
    blood_hu : (low, high)
        HU of blood with contrast.
    min_share : float
        Least share of the region that must read so.

    Returns
    -------
    bool
    """
    occupied = body.any(axis=2)
    rows = np.arange(body.shape[1])[None, :]
    first = np.where(occupied, rows, body.shape[1]).min(axis=1)
    last = np.where(occupied, rows, -1).max(axis=1)
    front = rows < 0.5 * (first + last)[:, None]
    region = hull & ~lung & body & front[:, :, None]
    n = np.count_nonzero(region)
    if n == 0:
        return False
    bright = (hu_smooth > blood_hu[0]) & (hu_smooth < blood_hu[1]) & region
    return bool(np.count_nonzero(bright) >= min_share * n)


def vertebral_body(cage: np.ndarray, body: np.ndarray, sampling: Sequence[float], x_mid: float, *,
                   column_mm: float = 40.0, contrast: bool = False
                   ) -> Optional[tuple[int, float, int, np.ndarray]]:
    """The vertebra of one axial slice: its front row, centre column and depth.

    The vertebra is the largest piece of bone within ``column_mm`` of the
    body's middle in the posterior half of the body; its body is the first run
    of bone down the midline from its front edge (the spinal canal follows).

    Parameters
    ----------
    cage : (Y, X) bool
        Bone of the slice (and of its slab, :func:`rib_cage`).
    body : (Y, X) bool
        The body (filled).
    sampling : (2,) floats
        Pixel size (mm) along ``(y, x)``.
    x_mid : float
        The body's left-right middle (column index).
    column_mm : float
        Half-width (mm) of the band around the middle that holds the vertebra.
    contrast : bool
        The scan has intravenous contrast (:func:`enhanced_blood`): a descending
        aorta joined to the vertebral body is split off it (:func:`_without_vessel`).

    Returns
    -------
    (front, centre, depth, vertebra) or None
        The front row of the vertebral body, its middle column, its depth
        (rows) along the midline, and the vertebra's bone (Y, X) bool; None
        when no bone lies there.
    """
    sy, sx = float(sampling[0]), float(sampling[1])
    occupied = np.flatnonzero(body.any(axis=1))
    if occupied.size == 0:
        return None
    y_half = 0.5 * (occupied[0] + occupied[-1])
    column = np.abs(np.arange(cage.shape[1]) - x_mid) * sx < column_mm
    bone = cage & column[None, :] & (np.arange(cage.shape[0]) > y_half)[:, None]
    lab, n = label(bone)
    if n == 0:
        return None
    vertebra = lab == 1 + int(np.argmax(np.bincount(lab.ravel())[1:]))
    if contrast:
        vertebra = _without_vessel(vertebra, sampling, x_mid)
    ys, xs = np.nonzero(vertebra)
    front = int(ys.min())
    centre = float(np.median(xs[ys <= front + max(1, int(round(5.0 / sy)))]))
    half = max(1, int(round(3.0 / sx)))
    c = int(round(centre))
    run = vertebra[front:, max(c - half, 0):c + half + 1].any(axis=1)
    depth = int(np.argmin(run)) if not run.all() else int(run.size)
    return front, centre, depth, vertebra


def _without_vessel(vertebra: np.ndarray, sampling: Sequence[float], x_mid: float, *,
                    radius_mm: tuple[float, float] = (8.0, 20.0), h_mm: float = 1.0,
                    side_mm: float = 10.0, ahead_mm: float = 3.0, roundness: float = 1.5
                    ) -> np.ndarray:
    """``vertebra`` without a contrast-filled descending aorta that touches it.

    With contrast the aorta reads as dense as bone, and where it lies against the
    vertebral body partial volume joins the two. As touching round objects are
    told apart, the bone (its holes filled: cancellous bone may read below the
    bone threshold) is split along the valleys of its distance map (a watershed
    from its maxima deeper than ``h_mm`` over their surroundings and at least
    ``radius_mm[0]`` deep). The vertebral body is the foremost part whose centre
    lies within ``side_mm`` of the body's middle ``x_mid`` (column index; the arch
    lies behind it). The aorta is a part as round as a disc (its area at most
    ``roundness`` times that of the disc of its greatest depth), of the aorta's
    radius (``radius_mm``) and shallower than the vertebral body, whose centre
    lies ``side_mm`` or more to the left (higher ``x``) of the middle and at least
    ``ahead_mm`` in front of the vertebral body's centre: it is removed. Nothing
    else is (the processes and rib heads of a slab of slices are not round discs
    in front of the vertebral body).
    """
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    box = bbox(vertebra, (1, 1))
    solid = ndi.binary_fill_holes(vertebra[box])
    depth = distance_inside(solid, sampling)
    markers, n = label(h_maxima(depth, h_mm).astype(bool) & (depth >= radius_mm[0]))
    if n < 2:
        return vertebra
    parts = watershed(-depth, markers, mask=solid)
    index = np.arange(1, n + 1)
    centres = np.array(ndi.center_of_mass(solid, parts, index))
    side = (centres[:, 1] + box[1].start - x_mid) * float(sampling[1])
    middle = np.flatnonzero(np.abs(side) < side_mm)
    if middle.size == 0:
        return vertebra
    body = middle[np.argmin(centres[middle, 0])]
    radius = np.asarray(ndi.maximum(depth, parts, index))
    area = np.bincount(parts.ravel(), minlength=n + 1)[1:] * float(sampling[0]) * float(sampling[1])
    aorta = (side >= side_mm) & (centres[:, 0] <= centres[body, 0] - ahead_mm / float(sampling[0])) \
        & (area <= roundness * np.pi * radius ** 2) & (radius <= radius_mm[1]) \
        & (radius < radius[body] - h_mm)
    if not aorta.any():
        return vertebra
    out = vertebra.copy()
    out[box] &= ~np.isin(parts, index[aorta])
    return out


def vertebral_body_masks(vertebrae: Sequence, shape: Sequence[int], spacing: Sequence[float]
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each slice's vertebra as a solid, the front of its body, and the band in front of it.

    Cancellous bone can read below the bone threshold: the vertebra's bone is closed
    by a 3 mm disk and its holes filled (the canal too), so that no ray runs into it.

    Parameters
    ----------
    vertebrae : sequence
        :func:`vertebral_body` of each slice (None where none).
    shape : (Z, Y, X)
    spacing : 3 floats, mm.

    Returns
    -------
    solid : (Z, Y, X) bool
        The vertebra, closed and filled.
    body_front : (Z, Y, X) bool
        The front 45 % of the solid's depth: the vertebral body down to about the canal.
    in_front : (Z, Y, X) bool
        The band in front of the vertebral body, as wide as its front rows (the
        oesophagus, the azygos vein).
    """
    solid = np.zeros(tuple(shape), bool)
    body_front = np.zeros(tuple(shape), bool)
    in_front = np.zeros(tuple(shape), bool)
    close = disk(max(1, int(round(3.0 / min(float(spacing[1]), float(spacing[2]))))))

    def one(z: int) -> None:
        front, _, depth, vertebra = vertebrae[z]
        box = bbox(vertebra, (close.shape[0],) * 2)
        filled = ndi.binary_fill_holes(ndi.binary_closing(vertebra[box], close)) | vertebra[box]
        solid[z][box] = filled
        ys = np.flatnonzero(filled.any(axis=1)) + box[0].start
        cut = front + 0.45 * (ys.max() - front)
        body_front[z] = solid[z] & (np.arange(shape[1]) <= cut)[:, None]
        xs = np.flatnonzero(vertebra[front:front + max(depth, 1)].any(axis=0))
        in_front[z, :front, xs.min():xs.max() + 1] = True

    thread_map(one, [z for z, v in enumerate(vertebrae) if v is not None])
    return solid, body_front, in_front


def vertebral_column(cage: np.ndarray, body: np.ndarray, spacing: Sequence[float], x_mid: float, *,
                     vertebrae: Optional[Sequence] = None, column_mm: float = 40.0,
                     pedicle_mm: float = 15.0, joint_mm: float = 40.0) -> tuple[np.ndarray, np.ndarray]:
    """Where rays from the lung may end on the spine, and the mediastinum in front of it.

    The lower lobes reach back beside the vertebral column (the paravertebral
    gutters): dependent consolidation there ends on the side of the vertebral
    body behind its middle, or on the pedicles and the rib heads. In front of
    the middle of the vertebral body lie the aorta, the oesophagus and the azygos
    vein: a ray that crosses them is not in the lung. Per axial slice, the
    vertebra is the largest piece of bone within ``column_mm`` of the body's
    middle in the posterior half of the body (:func:`vertebral_body`).

    Parameters
    ----------
    cage : (Z, Y, X) bool
        Bone of each slice and its slab (:func:`rib_cage`).
    body : (Z, Y, X) bool
        The body (filled).
    spacing : 3 floats, mm.
    x_mid : float
        The body's left-right middle (column index).
    vertebrae : sequence, optional
        :func:`vertebral_body` of each slice (computed when None).
    column_mm : float
        Half-width (mm) of the column around the middle that holds the spine and
        the posterior mediastinum.
    pedicle_mm : float
        How far (mm) behind the vertebral body a ray may still end (pedicles,
        rib heads, the front of the transverse processes).
    joint_mm : float
        A piece of the rib cage in that band, up to 15 mm beyond the column, is
        joined to the column's bone by the shortest segment when it lies at most
        this far (mm) from it: a slab of slices shows the necks of the ribs in
        fragments, and they do not always meet the column.

    Returns
    -------
    gutter : (Z, Y, X) bool
        Where a ray may end: bone of the column and the segments that join the
        ribs to it, behind the middle of the vertebral body and at most ``pedicle_mm``
        behind its back.
    mediastinum : (Z, Y, X) bool
        The column in the posterior half of the body in front of the middle of
        the vertebral body (the posterior mediastinum).
    """
    from skimage.draw import line

    sy, sx = float(spacing[1]), float(spacing[2])
    gutter = np.zeros(cage.shape, bool)
    mediastinum = np.zeros(cage.shape, bool)
    off_middle = np.abs(np.arange(cage.shape[2]) - x_mid) * sx
    column, near = off_middle < column_mm, off_middle < column_mm + 15.0
    near_x = np.flatnonzero(near)
    rows = np.arange(cage.shape[1])

    def one(z: int) -> None:
        occupied = np.flatnonzero(body[z].any(axis=1))
        vertebra = vertebral_body(cage[z], body[z], (sy, sx), x_mid, column_mm=column_mm) \
            if vertebrae is None else vertebrae[z]
        if vertebra is None or near_x.size == 0:
            return
        y_half = 0.5 * (occupied[0] + occupied[-1])
        front, _, depth, _ = vertebra
        middle = front + 0.5 * depth
        y0, y1 = int(np.ceil(middle)), int(front + depth + pedicle_mm / sy) + 1
        mediastinum[z] = column[None, :] & ((rows > y_half) & (rows < middle))[:, None]
        band = np.zeros(cage.shape[1:], bool)
        band[y0:y1, :] = True
        gutter[z] = cage[z] & column[None, :] & band
        # each piece of the rib cage in the band beside the column, joined to the column's
        # bone by the shortest segment when it is at most joint_mm away
        box = (slice(y0, y1), slice(near_x[0], near_x[-1] + 1))
        ends = gutter[z][box]
        pieces, n = label(cage[z][box] & ~column[None, box[1]])
        if n == 0 or not ends.any():
            return
        dist, (iy, ix) = ndi.distance_transform_edt(~ends, sampling=(sy, sx), return_indices=True)
        for i, sl in enumerate(ndi.find_objects(pieces), start=1):
            py, px = np.nonzero(pieces[sl] == i)
            py, px = py + sl[0].start, px + sl[1].start
            k = int(np.argmin(dist[py, px]))
            if dist[py[k], px[k]] <= joint_mm:
                ly, lx = line(py[k], px[k], iy[py[k], px[k]], ix[py[k], px[k]])
                # (two pixels wide: a ray does not slip through a diagonal)
                ends[ly, lx] = True
                ends[ly, np.minimum(lx + 1, ends.shape[1] - 1)] = True

    thread_map(one, range(cage.shape[0]))
    return gutter, mediastinum
