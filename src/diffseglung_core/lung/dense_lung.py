"""Step 6 of the lung mask: dense lung reached from the aerated lung.

Consolidation, atelectasis and masses hold no air: :func:`.mask.segment_lungs`
reaches them from the aerated lung of each slice along rays
(:func:`.cavity.costal_fill`) and through the slices:

* :func:`costal_rays`: towards the ribs (the rib cage, not the vertebral
  column; fat planes stop the rays);
* :func:`behind_the_lungs`: contrast, the vertebral bodies, the solid organs
  no ray crosses, and the dense lung of the posterior recess;
* :func:`dependent_rays`: towards the dependent side, dependent lung beside
  the spine (the paravertebral gutter);
* :func:`mediastinal_rays`: towards the body's middle, dense lower lobe
  against the traced descending aorta;
* :func:`across_slices`: dense tissue between two parts of one lung above and
  below it.

Each works in place on the lung labels, in the box around the lungs. The
arrays are ``(Z, Y, X)`` there: ``labels`` (uint8: 1 right lung, 2 left),
``hu_s`` (HU smoothed in-plane by 1 mm), ``stop`` (airways and gas: no ray
crosses them), ``body`` and ``allowed`` (where lung may be added, bool);
``spacing`` is in mm and ``x_mid`` is the column of the body's middle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage as ndi

from .. import gravity
from ..binary import label
from ..parallel import by_slabs, thread_map
from .aorta import aorta_masks, descending_aorta
from .cavity import costal_fill, fat_planes, lighter_than_organ, recess_lung, skin_depth, solid_organs
from .coarse import bbox, nearest_label, upsample
from .maps import LEFT_LUNG, RIGHT_LUNG, SIDES
from .morphology import axial_convex_hull, axial_disk, axial_opening, gaps_through_slices
from .skeleton import (
    enhanced_blood,
    lung_vessels,
    rib_cage,
    vertebral_body,
    vertebral_body_masks,
    vertebral_column,
)


@dataclass
class Bones:
    """What the rays of step 6 end on, in the box around the lungs ((Z, Y, X) arrays)."""

    bone: np.ndarray  # everything as dense as bone
    cage: np.ndarray  # the rib cage: bone but contrast-filled vessels that reach into the lung
    spine: np.ndarray  # the cage within ``spine_mm`` of the body's middle
    fat: np.ndarray  # fat planes (:func:`.cavity.fat_planes`)
    skin: np.ndarray  # depth below the skin (mm)


def costal_rays(labels: np.ndarray, hu_s: np.ndarray, stop: np.ndarray, body: np.ndarray,
                allowed: np.ndarray, spacing: Sequence[float], x_mid: float, *, closed: bool,
                bone_hu: float, spine_mm: float, passes: int, rib_line_mm: float) -> Bones:
    """Step 6, towards the ribs: dense lung between each lung and the rib cage (``labels`` in place)."""
    bright = hu_s > bone_hu
    # contrast-filled vessels are as dense as bone: the ones that reach into the lung
    # (and the heart and great vessels they join) are not the rib cage
    vessels = lung_vessels(bright, labels > 0, spacing)
    bone = rib_cage(bright, spacing)
    cage = rib_cage(bright & ~vessels, spacing) if vessels.any() else bone
    del bright
    fat = fat_planes(hu_s, spacing, lung=labels > 0)
    skin = skin_depth(body, spacing)
    # rays must end on the ribs, not on the vertebral column: those cross the aorta
    column = np.abs(np.arange(labels.shape[2]) - x_mid) * spacing[2] < spine_mm
    spine = cage & column[None, None, :]
    # on a volume whose slabs close the rib cage, what is as dense as bone but lies wholly
    # between the lungs is not the cage (on a single slice rib fragments may lie so)
    ribs = _without_islands(cage, labels, spacing) if closed else cage
    _fill_along_rays(labels, hu_s, stop, body, ribs, fat, skin, allowed, spacing, x_mid,
                     passes=passes, avoid=spine, rib_line_mm=None if closed else rib_line_mm,
                     wall_radius_mm=None if closed else 40.0, wall_slice_too=True)
    return Bones(bone=bone, cage=cage, spine=spine, fat=fat, skin=skin)


@dataclass
class Behind:
    """What lies behind and between the lungs, for the rays towards the back and the middle."""

    contrast: bool  # intravenous contrast (:func:`.skeleton.enhanced_blood`)
    vertebrae: list  # per slice, :func:`.skeleton.vertebral_body`
    organs: np.ndarray  # solid organs no ray crosses (:func:`.cavity.solid_organs`)
    recess: np.ndarray  # dense lung of the posterior recess, taken into ``labels``


def behind_the_lungs(labels: np.ndarray, hu_s: np.ndarray, body: np.ndarray, bones: Bones,
                     gas: np.ndarray, spacing: Sequence[float], x_mid: float, *, spine_mm: float,
                     bone_hu: float, recess: bool) -> Behind:
    """Contrast, the vertebral bodies, the solid organs; the dense lung of the posterior recess,
    taken into ``labels`` in place."""
    sampling = spacing[1:]
    contrast = enhanced_blood(hu_s, labels > 0, _half_hull(labels), body)
    vertebrae = thread_map(lambda z: vertebral_body(bones.bone[z], body[z], sampling, x_mid,
                                                    column_mm=spine_mm, contrast=contrast),
                           range(labels.shape[0]))
    soft = body & ~bones.fat & (hu_s > -100.0) & (hu_s < bone_hu) & (labels == 0)
    organs = solid_organs(soft, spacing)
    in_recess = np.zeros(labels.shape, bool)
    if recess:
        # consolidated lung against the liver or the spleen reads lighter than the organ:
        # in the posterior recess it lines the ribs, continuous with the lung above
        lighter, in_recess = _posterior_recess(organs, hu_s, labels > 0, bones.cage, gas, spacing)
        organs &= ~lighter
        if in_recess.any():
            labels[in_recess] = _nearest_side(labels, in_recess, spacing)
    return Behind(contrast=bool(contrast), vertebrae=vertebrae, organs=organs, recess=in_recess)


def dependent_rays(labels: np.ndarray, hu_s: np.ndarray, stop: np.ndarray, body: np.ndarray,
                   allowed: np.ndarray, bones: Bones, back: Behind, spacing: Sequence[float],
                   x_mid: float, *, spine_mm: float, passes: int, dependent_side: str) -> None:
    """Step 6, towards the dependent side: dependent lung beside the spine (``labels`` in place).

    Only where the slab of slices closes the rib cage (the caller's test).
    """
    # dependent lung beside the spine: rays turned towards the back from every part of
    # the lung, through no solid organ, ending on the ribs or on the side of the vertebral
    # column behind the middle of its body (the paravertebral gutter, where the ribs that
    # stop short of the column are joined to it), not elsewhere on the column, nor on what
    # is as dense as bone between the lungs (contrast-filled vessels). Only where the slab
    # of slices closes the rib cage: through the gaps between the rib fragments of a single
    # slice such rays reach the muscles outside the ribs. A ray that ends on bone much
    # shallower than the ribs (a scapula, an arm) is dropped, as in step 6, but judged
    # against the ribs the lung touches within 40 mm of its end: the chest wall is not
    # equally thick all round, and against the ribs of the whole slice, which lie deeper
    # under the skin at the side and beside the spine, it dropped the rays that reach
    # dependent consolidation against the back of the cage (white lung).
    # These rays cross the dense lung they look for before they meet bone, so their shortest
    # runs measure the disease, not the chest wall's inner layer: that layer is taken as at
    # most 5 mm here (3 mm for the rays to the aorta and the vertebral body, below); the
    # chest wall that rays through pleural fluid take with them goes with the effusion.
    half = _half_hull(labels)
    between = _between_lungs(half, spacing)
    gutter, mediastinum = vertebral_column(bones.bone, body, spacing, x_mid, vertebrae=back.vertebrae,
                                           column_mm=spine_mm)
    mediastinal = bones.bone & between
    if back.contrast:
        # vessels as thin as the lung's own run through dependent consolidation: only
        # what is thicker (the heart, the great vessels, the spine) stops these rays
        mediastinal = axial_opening(mediastinal, axial_disk(4.0, spacing))
    axis, sign = gravity.gravity_axis(dependent_side)
    towards = (float(sign), 0.0) if axis == 1 else (0.0, float(sign))
    if dependent_side == "back":
        ends, avoid = bones.cage | gutter, back.organs | (bones.spine & ~gutter) | mediastinal
        column = {"spine": gutter, "mediastinum": mediastinum}
    else:
        # prone or on one side: the dependent lung lies against the front or the side of
        # the cage, not in the paravertebral gutter
        ends, avoid, column = bones.cage, back.organs | bones.spine | mediastinal, {}
    _fill_along_rays(labels, hu_s, stop, body, ends, bones.fat, bones.skin, allowed, spacing, x_mid,
                     passes=passes, avoid=avoid, **column,
                     dependent_deg=60.0, dependent=towards, fan_deg=(-45.0, -22.5, 0.0, 22.5, 45.0),
                     wall_radius_mm=40.0, max_layer_mm=5.0)


def mediastinal_rays(labels: np.ndarray, hu_s: np.ndarray, stop: np.ndarray, body: np.ndarray,
                     allowed: np.ndarray, bones: Bones, back: Behind, spacing: Sequence[float],
                     x_mid: float, *, passes: int, aorta_gap_mm: float,
                     oesophagus_mm: float = 12.0) -> np.ndarray:
    """Step 6, towards the middle: dense lower lobe against the mediastinal pleura (``labels`` in place).

    Returns
    -------
    (Z, 3) float
        The descending aorta traced through the slices of the box (centre ``(y, x)``
        and radius, NaN where not traced).
    """
    # dense lung against the mediastinal pleura of the lower lobes: rays towards the body's
    # middle that end on the side or the back of the descending aorta (traced as a tube
    # through the slices; the hilum lies in front of it) or, in the slices where it was
    # traced, on the side of the vertebral body, after at least 15 mm of dense tissue (8 mm
    # on the aorta: healthy lung lies against its wall with only the pleura between), and
    # cross neither a solid organ nor what lies in front of the vertebral body (the
    # oesophagus, the azygos vein: on the side away from the aorta only within
    # ``oesophagus_mm`` of the body's middle); not in the top 30 mm of the traced aorta, beside
    # which the pulmonary artery arches over the left main bronchus. (The rule that drops
    # rays ending on bone shallower than the ribs, a scapula, is for the chest wall: the
    # aorta and the vertebral body lie at another depth.)
    aorta = descending_aorta(hu_s, back.vertebrae, spacing)
    traced = ~np.isnan(aorta[:, 0])
    if traced.any():
        # the traced circle is the aorta's outer edge where no contrast lights its lumen
        # (then it is the lumen's, inside a wall of 2-3 mm)
        ahead, behind = aorta_masks(aorta, labels.shape, spacing, margin_mm=3.0 if back.contrast else 1.0)
        solid, body_front, in_front = vertebral_body_masks(back.vertebrae, labels.shape, spacing)
        # in front of the vertebral body lie the oesophagus, just left of the middle, and the
        # azygos vein; on the side away from the aorta the lower lobe reaches in front of the
        # vertebra up to them (the right lung's azygo-oesophageal recess)
        away = np.sign(x_mid - np.nanmedian(aorta[traced, 1])) or 1.0
        recess = (np.arange(labels.shape[2]) - x_mid) * float(spacing[2]) * away > oesophagus_mm
        in_front &= ~recess[None, None, :]
        # below the arch and the hilum: the top 30 mm of the traced aorta are not used
        top = int(np.flatnonzero(traced).max()) - int(np.ceil(30.0 / spacing[0]))
        low = traced & (np.arange(traced.size) <= top)
        ends = (behind | body_front) & low[:, None, None]
        disc = ahead | behind
        _fill_along_rays(labels, hu_s, stop, body, ends | ahead | solid, bones.fat, bones.skin,
                         allowed & ~disc & ~solid, spacing, x_mid, passes=passes,
                         avoid=back.organs | ahead | (solid & ~ends), spine=ends, aorta=behind,
                         aorta_gap_mm=aorta_gap_mm, mediastinum=in_front & ~disc, slices=low,
                         inward_deg=60.0, max_layer_mm=3.0,
                         fan_deg=(-30.0, 0.0, 30.0), wall_margin_mm=np.inf)
    return aorta


def across_slices(labels: np.ndarray, allowed: np.ndarray, bones: Bones, back: Behind,
                  spacing: Sequence[float], *, gap_mm: float, min_thick_mm: float = 6.0) -> None:
    """Step 6, through the slices: dense lung between aerated lung above and below (``labels`` in place).

    A lobe is continuous through the slices: dense tissue of a ``(y, x)`` column
    lying between two parts of one lung at most ``gap_mm`` apart along ``z`` is that
    lung (a consolidation or a mass that its aerated lung covers above and below),
    unless it is bone, a fat plane or a solid organ, or lies between the lungs in
    front of the vertebral body (the hilum and the mediastinum, which the lungs
    overhang: the heart, the great vessels, the main bronchi). What is added is at
    least ``min_thick_mm`` thick in its slice (not the lung's rim on the ribs).
    """
    gap = int(np.floor(gap_mm / spacing[0]))
    candidates = allowed & ~bones.bone & ~bones.fat & ~back.organs & (labels == 0)
    gaps = np.zeros(labels.shape, np.uint8)
    for value in SIDES:
        side = labels == value
        if side.any():
            box = bbox(side, [0, 0, 0])
            gaps[box][gaps_through_slices(side[box], gap) & candidates[box] & (gaps[box] == 0)] = value
    if not gaps.any():
        return
    # the hilum and the mediastinum, in the slices that hold gaps
    zs = np.flatnonzero(gaps.any(axis=(1, 2)))
    span = slice(int(zs[0]), int(zs[-1]) + 1)
    between = _between_lungs(_half_hull(labels[span]), spacing)
    # the front row of each slice's vertebral body (without one, all that lies between the lungs)
    front = np.array([labels.shape[1] if v is None else v[0] for v in back.vertebrae[span]])
    rows = np.arange(labels.shape[1])
    gaps[span][between & (rows[None, :, None] < front[:, None, None])] = 0
    opening = axial_disk(0.5 * min_thick_mm, spacing)
    for value in SIDES:
        labels[axial_opening(gaps == value, opening)] = value


def _without_islands(cage: np.ndarray, labels: np.ndarray, spacing) -> np.ndarray:
    """``cage`` without its pieces (3D) that lie wholly between the lungs (inside the axial
    convex hull of both, eroded by 3 mm): a calcified aortic wall or lymph node, a vessel
    with contrast. A ray that ends there crossed the mediastinum; every rib, and the spine
    the ribs join, reaches outside the hull through the slices."""
    between = _between_lungs(_half_hull(labels), spacing)
    pieces, n = label(cage)
    outside = np.bincount(pieces[~between], minlength=n + 1) > 0
    outside[0] = False
    return outside[pieces]


def _between_lungs(hull: np.ndarray, spacing) -> np.ndarray:
    """``hull`` (:func:`_half_hull`) eroded by a 3 mm disk in each slice: between the lungs."""
    return by_slabs(lambda h: ndi.binary_erosion(h, axial_disk(3.0, spacing)), [hull], 0)


def _half_hull(labels: np.ndarray) -> np.ndarray:
    """The axial convex hull of both lungs, on every other voxel in-plane (then repeated)."""
    half = axial_convex_hull(labels[:, ::2, ::2] > 0).repeat(2, axis=1).repeat(2, axis=2)
    return half[:, :labels.shape[1], :labels.shape[2]]


def _posterior_recess(organs, hu_s, lung, cage, gas, spacing, grid_mm: float = 2.0):
    """:func:`.cavity.lighter_than_organ` and :func:`.cavity.recess_lung` on every k-th voxel
    in-plane (k the largest step of at most ``grid_mm``, as :func:`.cavity.solid_organs`),
    brought back to the full grid within ``organs``."""
    steps = [max(1, int(grid_mm // float(s))) for s in spacing[1:]]
    sub = (slice(None), slice(None, None, steps[0]), slice(None, None, steps[1]))
    sampling = (float(spacing[0]), steps[0] * float(spacing[1]), steps[1] * float(spacing[2]))
    lighter = lighter_than_organ(organs[sub], hu_s[sub], lung[sub], sampling)
    in_recess = recess_lung(lighter, cage[sub], gas[sub], sampling)
    return tuple(upsample(m, (1, *steps), organs.shape) & organs for m in (lighter, in_recess))


def _nearest_side(labels: np.ndarray, where: np.ndarray, spacing) -> np.ndarray:
    """The side (lung label) of the nearest lung voxel to each voxel of ``where``, as (n,) uint8."""
    box = bbox(where, [2] + [int(np.ceil(10.0 / s)) for s in spacing[1:]])
    return nearest_label(labels[box])[where[box]]


def _fill_along_rays(labels, hu_s, stop, body, cage, fat, skin, allowed, spacing, x_mid, *, passes,
                     avoid=None, spine=None, mediastinum=None, aorta=None, slices=None, **rays) -> None:
    """Grow each lung of each slice in place by :func:`.cavity.costal_fill`, ``passes`` times at most.

    Each pass starts from the lung grown so far; ``rays`` and the slices of ``avoid``,
    ``spine``, ``mediastinum`` and ``aorta`` (Z, Y, X, optional) go to
    :func:`.cavity.costal_fill`. ``slices`` (Z bool, optional): only these slices.
    """
    volumes = {"avoid": avoid, "spine": spine, "mediastinum": mediastinum, "aorta": aorta}

    def fill(z: int) -> None:  # slices are independent: one per thread
        of_slice = {k: None if v is None else v[z] for k, v in volumes.items()}
        for value in (RIGHT_LUNG, LEFT_LUNG):
            for _ in range(passes):
                side = labels[z] == value
                if not side.any():
                    break
                add = costal_fill(hu_s[z], side, stop[z] | (labels[z] == 3 - value), body[z], cage[z],
                                  spacing, x_mid, fat=fat[z], skin=skin[z], **of_slice, **rays)
                add &= allowed[z] & (labels[z] == 0)
                if not add.any():
                    break
                labels[z][add] = value

    thread_map(fill, range(labels.shape[0]) if slices is None else np.flatnonzero(slices))
