"""The weight-free lung mask: aerated lung, then the diseased lung around it.

:func:`segment_lungs` runs the steps of :mod:`diffseglung_core.lung` in order
and returns a :class:`LungSegmentation`; :func:`compute_lung_mask` returns its
label map only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from .. import gravity
from ..errors import NoLungFoundError
from ..parallel import thread_map
from ..progress import ProgressCallback, report
from .airways import trachea_from_below, track_airways
from .aorta import aorta_on_the_right
from .body import body_mid_x, cut_lung, filled_body, outside_air, spine_in_front
from .border import costal_pockets, fill_holes
from .cavity import grow_into_ground_glass, skin_depth, smooth_axial
from .coarse import bbox, coarse_factors, downsample_mask, nearest_label, upsample
from .components import gas_pockets, lung_components, satellite_parenchyma, split_left_right
from .dense_lung import across_slices, behind_the_lungs, costal_rays, dependent_rays, mediastinal_rays
from .effusion import beyond_fluid, compressed_lung, find_effusion, fluid_beside
from .maps import SIDES
from .morphology import closing, thick_parts
from .pneumothorax import find_pneumothorax
from .skeleton import RIB_SLAB_MM

if TYPE_CHECKING:
    from ..volume import CTVolume

__all__ = ["LungSegmentation", "segment_lungs", "segment_scan_lungs", "compute_lung_mask"]

_STAGES = 10


@dataclass
class LungSegmentation:
    """What :func:`segment_lungs` found.

    Attributes
    ----------
    labels : (Z, Y, X) uint8
        0 outside the lungs, 1 right lung, 2 left lung.
    effusion : (Z, Y, X) bool
        Pleural effusion (fluid along the chest wall), not part of ``labels``.
    airway : (Z, Y, X) bool
        Trachea and main bronchi outside the lungs.
    gas : (Z, Y, X) bool
        Air-filled regions of lung size that are not lung (bowel, stomach).
    spacing : (3,) floats, mm.
    notes : list of str
        What a reader of the report should know (gas left out, effusion found,
        contrast recognised, an orientation that looks swapped).
    aorta : (Z, 3) float, optional
        The descending aorta traced through the slices (:func:`.aorta.descending_aorta`):
        centre ``(y, x)`` and radius (voxels of ``x``) per slice, NaN where it was
        not traced; None where it was not looked for (stacks thinner than the rib
        slab, ``mediastinal_passes=0``).
    pneumothorax : (Z, Y, X) bool, optional
        Free air in the pleural space, not part of ``labels`` (none where it was
        not looked for).
    """

    labels: np.ndarray
    effusion: np.ndarray
    airway: np.ndarray
    gas: np.ndarray
    spacing: tuple
    notes: list = field(default_factory=list)
    aorta: Optional[np.ndarray] = None
    pneumothorax: Optional[np.ndarray] = None

    def volumes_ml(self) -> dict[str, float]:
        """Right, left and total lung, effusion, pneumothorax and rejected gas volumes (mL)."""
        from .maps import lung_volumes_ml

        voxel_ml = float(np.prod(self.spacing)) / 1000.0
        out = lung_volumes_ml(self.labels, self.spacing)
        out["effusion"] = float(np.count_nonzero(self.effusion) * voxel_ml)
        if self.pneumothorax is not None:
            out["pneumothorax"] = float(np.count_nonzero(self.pneumothorax) * voxel_ml)
        out["gas_not_lung"] = float(np.count_nonzero(self.gas) * voxel_ml)
        return out


def compute_lung_mask(hu: np.ndarray, spacing: Sequence[float], **options) -> np.ndarray:
    """Label the right and left lung of a chest CT.

    The label map of :func:`segment_lungs` (same parameters).

    Returns
    -------
    (Z, Y, X) uint8 ndarray
        0 outside the lungs, 1 right lung, 2 left lung.
    """
    return segment_lungs(hu, spacing, **options).labels


def segment_scan_lungs(volume: CTVolume, **options) -> LungSegmentation:
    """:func:`segment_lungs` of a scan, against the air the scan itself shows.

    Whether an air-filled region holds parenchyma or gas is judged against air;
    a scan whose air does not read -1000 HU (a scanner offset) is judged
    against its own air, measured by :func:`~diffseglung_core.calibration.calibrate_hu`
    (outside air in the field of view, padding and DICOM PixelPaddingValue left
    out). The mask of the engine, of ``diffseglung lungmask`` and of napari's
    Load CT.

    Parameters
    ----------
    volume : CTVolume
    **options
        Parameters of :func:`segment_lungs` (``air_reference_hu`` is measured;
        ``dependent_side`` follows the scan's DICOM PatientPosition, supine when unknown).

    Returns
    -------
    LungSegmentation
    """
    from ..calibration import calibrate_hu

    air = calibrate_hu(volume.hu, metadata=volume.source.metadata).median_hu
    position = volume.source.metadata.get("patient_position", "")
    options.setdefault("dependent_side", gravity.dependent_side(position))
    return segment_lungs(volume.hu, volume.spacing, air_reference_hu=air if np.isfinite(air) else -1000.0,
                         **options)


def segment_lungs(
    hu: np.ndarray,
    spacing: Sequence[float],
    *,
    air_hu: float = -400.0,
    ground_glass_hu: float = -250.0,
    closing_mm: float = 8.0,
    mass_mm: float = 30.0,
    bone_hu: float = 200.0,
    dome_mm2: float = 300.0,
    coarse_mm: float = 2.0,
    min_lung_area_mm2: float = 500.0,
    costal: bool = True,
    costal_passes: int = 2,
    spine_mm: float = 40.0,
    dependent_passes: int = 4,
    mediastinal_passes: int = 2,
    slice_gap_mm: float = 40.0,
    recess: bool = True,
    aorta_gap_mm: float = 8.0,
    rib_line_mm: float = 60.0,
    effusion: bool = True,
    pneumothorax: bool = True,
    dependent_side: str = "back",
    air_reference_hu: float = -1000.0,
    progress: Optional[ProgressCallback] = None,
) -> LungSegmentation:
    """Find the lungs of a chest CT, diseased parts included, without trained weights.

    Steps (see the modules of :mod:`diffseglung_core.lung`):

    1. *Air inside the body*: voxels below ``air_hu`` not connected, in their
       axial slice, to the image edge (outside air, padding of the field of view),
       and a lung that the field of view cuts (:func:`.body.cut_lung`).
    2. *Airways*: the trachea and main bronchi, tracked from the top, are not lung.
    3. *Lungs, not gas*: the large air components that the bronchi open into or
       that hold lung parenchyma inside the bony thorax; bowel and stomach gas
       (pure air, no vessels) and air under a sheet behind the back are never lung.
    4. *Ground glass*: lighter-than-tissue regions (below ``ground_glass_hu``)
       that touch the aerated lung.
    5. *Left / right*, then per lung: a closing of ``closing_mm`` (small dents);
       thick parts of a closing of ``mass_mm`` (a mass bulging into the lung);
       costal pockets of each slice's convex hull.
    6. *Dense lung against the ribs*: per slice, dense tissue between the lung
       and the inner surface of the rib cage, followed along rays (consolidation,
       atelectasis, subpleural disease); see :func:`.cavity.costal_fill`. The
       rays end on the ribs, not on the vertebral column nor on what is as dense
       as bone but reaches into the lung (vessels with contrast,
       :func:`.skeleton.lung_vessels`) or, on a volume, lies wholly between the
       lungs (a calcified aortic wall); a fat plane ends them, but not a small
       patch of fat density away from the lung (partly aerated consolidation,
       :func:`.cavity.fat_planes`); on a thin scan the rib line closes the
       gaps between rib fragments, and a ray that ends on bone much nearer the
       skin than the ribs the lung touches, beside its end or over the slice,
       reached a scapula. Then rays turned towards the back (first towards the
       dependent side where that is not the back: the front of a prone patient,
       where they end on the ribs only; the rays towards the back follow
       whatever the position, as a prone patient's disease beside the spine
       stays there) reach dependent lung beside the spine; they may also end on the side of the
       vertebral column behind the middle of its body (the paravertebral
       gutter), after at least 15 mm of dense tissue and without crossing the
       posterior mediastinum in front of it, nor bone-dense voxels between the
       lungs (with contrast, :func:`.skeleton.enhanced_blood`, only those thicker
       than a vessel). Last, rays towards the body's middle
       reach dense lower lobe against the descending aorta, traced as a tube
       through the slices (:func:`.aorta.descending_aorta`). The rays towards
       the back and the middle cross the disease they look for before they meet
       bone: the chest wall's inner layer, which the rays of the costal side read
       from the shortest runs to the ribs, is at most 5 and 3 mm for them.
       Before the rays towards the back, dense lung of the posterior recess:
       what reads lighter than the liver or the spleen it lies against, lines the
       ribs and touches the lung (:func:`.cavity.lighter_than_organ`,
       :func:`.cavity.recess_lung`); those rays may cross it. After the rays,
       through the slices: dense tissue between two parts of one lung at most
       ``slice_gap_mm`` apart along the same ``(y, x)`` column is that lung (a lobe is
       continuous through the slices), unless it is bone, fat, a solid organ or
       lies between the lungs in front of the vertebral body (the hilum, the
       mediastinum).
    7. *Holes* (vessels, nodules) filled, except the dome of the diaphragm.
    8. *Effusion*: fluid crescents along the chest wall are taken out and reported,
       and what lies beyond them, seen from the aerated lung, with them
       (:func:`.effusion.beyond_fluid`: chest wall that rays through the fluid took);
       fluid beside them outside the mask is reported too (:func:`.effusion.fluid_beside`);
       the lung the fluid compresses, left between the lung and the fluid, is lung
       (:func:`.effusion.compressed_lung`).
    9. *Pneumothorax*: air of the mask that holds no lung markings (no vessel,
       no septum) and lies in a crescent along the chest wall is free air in the
       pleural space, taken out and reported (:func:`.pneumothorax.find_pneumothorax`):
       the labels would call it emphysema.

    Parameters
    ----------
    hu : (Z, Y, X) array
        CT in HU, canonical layout (``z`` inferior to superior, ``y`` anterior to
        posterior, ``x`` patient right to left). One axial slice is ``(1, Y, X)``.
    spacing : 3 floats
        Voxel size in mm along ``(z, y, x)``.
    air_hu : float
        Voxels below this HU are air or aerated lung.
    ground_glass_hu : float
        Smoothed voxels below this HU that touch the lung are lung (ground glass).
    closing_mm : float
        Radius (mm) of the ball that closes each lung's contour; 0 disables it.
    mass_mm : float
        Radius (mm) of the ball whose closing finds masses against the pleura; the
        parts of the filling at least ``0.8 * mass_mm`` thick are added, and the
        costal pockets at least ``0.2 * mass_mm`` thick. 0 disables both.
    bone_hu : float
        Voxels above this HU are bone: never added, and the rib cage for step 6.
    dome_mm2 : float
        Holes of an axial slice are filled unless they are at least this large
        (mm²) and continue below into tissue outside the lung (the diaphragm dome).
    coarse_mm : float
        Voxel size (mm) of the grid used for the closings and the left/right split.
    min_lung_area_mm2 : float
        A lung must reach at least this area (mm²) in one axial slice.
    costal : bool
        Run step 6.
    costal_passes : int
        Step 6 runs again from the grown lung up to this many times (dense lung
        that the aerated lung does not face directly).
    spine_mm : float
        Half-width (mm) of the vertebral column about the body's middle: rays
        that end on bone within it are dropped (they would cross the aorta or
        the oesophagus), except the rays towards the back that end on its side
        behind the middle of the vertebral body (:func:`.skeleton.vertebral_column`).
    dependent_passes : int
        After step 6, rays turned towards the dependent side (``dependent_side``)
        from every part of each lung, through no solid organ
        (:func:`.cavity.solid_organs`) and ending on the ribs or, towards the
        back, in the paravertebral gutter, add dependent lung (beside the spine and
        behind the heart, lying supine), up to this many passes; 0 disables them.
        Where the dependent side is not the back, rays towards the back follow
        (the paravertebral gutter, which no other ray reaches, holds lung whatever
        the position). Only on
        volumes at least twice :data:`.skeleton.RIB_SLAB_MM` deep, whose slabs close
        the rib cage.
    mediastinal_passes : int
        Then rays towards the body's middle that end on the descending aorta
        (:func:`.aorta.descending_aorta`) or on the side of the vertebral body,
        after at least ``aorta_gap_mm`` (the aorta) or 15 mm (the vertebral body) of dense
        tissue, add dense lower lobe against the
        mediastinal pleura, up to this many passes; 0 disables them. Only on
        volumes at least twice :data:`.skeleton.RIB_SLAB_MM` deep, in the slices
        where the aorta was traced, below its top 30 mm (the arch and the hilum). They
        cross nothing in front of the vertebral body but, on the side away from the aorta,
        the oesophagus within 12 mm of the middle (the azygo-oesophageal recess is lung).
    slice_gap_mm : float
        The longest gap (mm, along ``z``) between two parts of one lung that the
        step through the slices fills (step 6); 0 disables it. Only on volumes at
        least twice :data:`.skeleton.RIB_SLAB_MM` deep, after the rays towards the
        back and the middle (not without them).
    recess : bool
        Take the dense lung of the posterior recess (step 6), on volumes whose
        slabs close the rib cage.
    aorta_gap_mm : float
        The dense tissue (mm) a ray of that step must cross to end on the aorta.
    rib_line_mm : float
        On thinner scans (one or a few slices) step 6 closes the rib cage of
        each slice between the points where the lung touches the ribs, joined
        up to this distance (mm) (:func:`.cavity.outside_rib_line`): no ray reaches
        the muscles outside the cage through the gap between two ribs.
    effusion : bool
        Run step 8 (otherwise fluid along the chest wall may stay in the mask).
    pneumothorax : bool
        Run step 9 (otherwise free air along the chest wall may stay in the mask).
    dependent_side : str
        Where free pleural fluid and dependent lung collect: ``"back"`` for a
        supine patient, ``"front"`` prone, ``"right"`` or ``"left"`` on that side
        (:func:`~diffseglung_core.gravity.dependent_side`); a fluid-density
        region on the other side of the lung is lung, and the rays of
        ``dependent_passes`` turn towards it.
    air_reference_hu : float
        HU of air in this scan (see :mod:`diffseglung_core.calibration`); the
        test that tells lung parenchyma from gas is relative to it.
    progress : callable, optional
        ``progress(done, total, stage)``; raise
        :class:`~diffseglung_core.errors.Cancelled` from it to stop.

    Returns
    -------
    LungSegmentation

    Raises
    ------
    NoLungFoundError
        When no lung lies in the scan (or slice), with one line saying why.
    """
    hu = np.asarray(hu)
    if hu.ndim != 3:
        raise ValueError(f"the lung mask needs a (z, y, x) volume, got shape {hu.shape}")
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or min(spacing) <= 0:
        raise ValueError(f"spacing must be 3 positive values in mm, got {spacing}")
    if hu.size == 0:
        raise NoLungFoundError("empty volume: no lung found")
    where = "slice" if hu.shape[0] == 1 else "scan"

    shape = hu.shape
    report(progress, 0, _STAGES, "air inside the body")
    air = hu < air_hu
    outside = outside_air(air)
    # a lung that the field of view cuts reaches the image's edge (or the padding around
    # the reconstruction circle) too
    in_view = cut_lung(outside, hu, spacing, air_hu=air_reference_hu)
    cut = bool(in_view.any())
    outside &= ~in_view
    inside_air = air & ~outside
    body_filled = filled_body(~outside)
    del air, outside, in_view

    report(progress, 1, _STAGES, "airways")
    airway = track_airways(inside_air, body_filled, spacing, hu=hu, air_hu=air_reference_hu,
                           cut=cut)
    upside_down = shape[0] >= 8 and trachea_from_below(inside_air, body_filled, spacing, airway, hu=hu,
                                                       air_hu=air_reference_hu, cut=cut)
    inside_air &= ~airway

    report(progress, 2, _STAGES, "lung components")
    kw = dict(min_area_mm2=min_lung_area_mm2, air_hu=air_reference_hu)
    lungs, gas = lung_components(inside_air, hu, airway, spacing, **kw)
    if lungs is not None:
        # gas under a dome that partial volume joined to the lung base
        pockets = gas_pockets(hu, lungs, spacing, air_hu=air_reference_hu)
        if pockets.any():
            lungs, more = lung_components(lungs & ~pockets, hu, airway, spacing, **kw)
            gas |= pockets | more
    notes = []
    if upside_down:
        notes.append("the trachea enters the scan through its lower end: head and feet look swapped "
                     "(check the file's orientation; the airways are followed from the top)")
    if gas.any():
        notes.append(f"{np.count_nonzero(gas) * np.prod(spacing) / 1000:.0f} mL of air-filled "
                     "space without lung parenchyma (bowel or stomach gas) is not lung")
    if lungs is None:
        why = ("only gas without lung parenchyma (bowel or stomach)" if gas.any() else
               f"no air-filled region below {air_hu:g} HU with an axial area of at least "
               f"{min_lung_area_mm2 / 100:g} cm² inside the body")
        raise NoLungFoundError(f"no lung in this {where}: {why} (is this a chest CT in HU?)")

    # the rest works in a box around the lungs, wide enough for the closings and the ribs
    x_mid = body_mid_x(body_filled, airway, cut=cut)
    if spine_in_front(body_filled, hu, spacing, x_mid, bone_hu=bone_hu):
        notes.append("the vertebral column lies in front of the body's centre: front and back look "
                     "swapped (check the file's orientation); the rules for the back of the chest "
                     "(dependent lung, the aorta beside the spine) assume them the right way round")
    margin = max(closing_mm, mass_mm, 40.0) + 2.0 * coarse_mm
    box = bbox(lungs, [int(np.ceil(margin / s)) for s in spacing])
    x_mid -= box[2].start
    hu_box, lungs, airway_box, gas_box = hu[box], lungs[box], airway[box], gas[box]
    body = body_filled[box]
    del body_filled
    if shape[0] <= 3:
        # one slice: pieces of a diseased lobe that its other slices would have joined
        lungs |= satellite_parenchyma(inside_air[box] & ~gas_box, lungs, hu_box, spacing,
                                      air_hu=air_reference_hu, x_mid=x_mid)
    del inside_air
    hu_s = smooth_axial(np.clip(hu_box, -1100.0, 1500.0), spacing, 1.0)

    report(progress, 3, _STAGES, "ground glass")
    allowed = body & ~airway_box & ~gas_box & (hu_s < bone_hu)
    lungs |= grow_into_ground_glass(hu_s, lungs, allowed, spacing, below_hu=ground_glass_hu)
    allowed &= ~lungs & (hu_box < bone_hu)

    report(progress, 4, _STAGES, "left / right")
    # the split and the closings work in a tighter box (their own reach)
    reach = max(closing_mm, mass_mm) + 2.0 * coarse_mm
    inner = bbox(lungs, [int(np.ceil(reach / s)) for s in spacing])
    x_in = x_mid - inner[2].start
    factors = coarse_factors(spacing, lungs[inner].shape, coarse_mm)
    coarse_spacing = tuple(s * f for s, f in zip(spacing, factors))
    coarse_labels = split_left_right(downsample_mask(lungs[inner], factors), coarse_spacing,
                                     x_in / factors[2])

    report(progress, 5, _STAGES, "border closing")
    labels = np.zeros(lungs.shape, np.uint8)
    labels[inner] = _close_borders(lungs[inner], coarse_labels, allowed[inner], body[inner], factors,
                                   coarse_spacing, x_in, closing_mm, mass_mm, reach)

    report(progress, 6, _STAGES, "dense lung against the ribs")
    # a slab of slices closes the rib cage; a thinner scan shows the ribs in fragments
    closed = shape[0] * spacing[0] >= 2.0 * RIB_SLAB_MM
    if not closed:
        stack = "one slice" if shape[0] == 1 else f"{shape[0]} slices"
        notes.append(f"{stack} ({shape[0] * spacing[0]:g} mm): the lung mask cannot follow the "
                     "ribs, the vessels or the diaphragm through the slices, so a mass against the "
                     "spine can be left out and chest wall or an organ's dome taken in; the whole "
                     "series segments better")
    in_recess = np.zeros(labels.shape, bool)
    aorta_found = None
    if costal:
        stop = airway_box | gas_box
        bones = costal_rays(labels, hu_s, stop, body, allowed, spacing, x_mid, closed=closed,
                            bone_hu=bone_hu, spine_mm=spine_mm, passes=costal_passes,
                            rib_line_mm=rib_line_mm)
    if costal and closed and (dependent_passes > 0 or mediastinal_passes > 0):
        back = behind_the_lungs(labels, hu_s, body, bones, gas_box, spacing, x_mid, spine_mm=spine_mm,
                                bone_hu=bone_hu, recess=recess)
        in_recess = back.recess
        if dependent_passes > 0:
            if back.contrast:
                notes.append("intravenous contrast recognised (the blood between the lungs reads as "
                             "dense as bone): contrast-filled vessels are not taken for ribs, and thin "
                             "ones do not stop the search for dependent lung")
            # towards the dependent side, then towards the back: the paravertebral gutter
            # holds lung whatever the position (the normals of the aerated lung do not face
            # it), and a prone patient's disease there does not move with gravity
            for towards in dict.fromkeys((dependent_side, "back")):
                dependent_rays(labels, hu_s, stop, body, allowed, bones, back, spacing, x_mid,
                               spine_mm=spine_mm, passes=dependent_passes, dependent_side=towards)
        if mediastinal_passes > 0:
            aorta = mediastinal_rays(labels, hu_s, stop, body, allowed, bones, back, spacing, x_mid,
                                     passes=mediastinal_passes, aorta_gap_mm=aorta_gap_mm)
            aorta_found = np.full((shape[0], 3), np.nan)
            aorta_found[box[0]] = aorta + [box[1].start, box[2].start, 0.0]
            # (where the field of view cuts the body, its mid-line is not known well enough)
            if not cut and aorta_on_the_right(aorta, x_mid, spacing):
                notes.append("the descending aorta runs down the right side of the spine: left and "
                             "right look swapped (check the file's orientation; a right-sided descending "
                             "aorta is rare); the lungs are labelled right and left as the file says")

        if slice_gap_mm > 0:
            across_slices(labels, allowed, bones, back, spacing, gap_mm=slice_gap_mm)

    report(progress, 7, _STAGES, "filling holes")
    filled = thread_map(lambda value: fill_holes(labels == value, spacing, dome_mm2), SIDES)
    for value, holes in zip(SIDES, filled):
        labels[holes & (labels == 0) & ~airway_box] = value

    report(progress, 8, _STAGES, "effusion")
    fluid = np.zeros(labels.shape, bool)
    # fluid and free air are homogeneous: read over 2 mm
    hu_fluid = smooth_axial(hu_box, spacing, 2.0) if effusion or pneumothorax else None
    if effusion:
        dense = (labels > 0) & (hu_s > ground_glass_hu)
        fluid = find_effusion(hu_box, hu_fluid, labels > 0, dense, spacing, dependent=dependent_side)
        if fluid.any() and in_recess.any():
            # fluid of the posterior recess, taken with the dense lung there, that joins the
            # effusion is the effusion's (its meniscus up the lateral wall is thin)
            fluid |= fluid_beside(fluid, hu_fluid, in_recess & (labels > 0), gas_box, spacing,
                                  min_thick_mm=0.0)
        if fluid.any():
            labels[fluid] = 0
            # what lies beyond the fluid, seen from the aerated lung, is chest wall
            beyond = beyond_fluid(labels > 0, (labels > 0) & (hu_s <= ground_glass_hu), fluid, spacing)
            labels[beyond] = 0
            gas_here = body & (hu_s < air_hu) & (labels == 0) & ~airway_box
            fluid |= fluid_beside(fluid, hu_fluid, body & (labels == 0), gas_here, spacing)
            # the lung the fluid compresses lies between the two
            squeezed = compressed_lung(labels, fluid, hu_s, allowed & ~beyond & ~fluid, spacing)
            labels[squeezed > 0] = squeezed[squeezed > 0]
            notes.append(f"pleural effusion of {np.count_nonzero(fluid) * np.prod(spacing) / 1000:.0f}"
                         " mL left out of the lung")
    report(progress, 9, _STAGES, "pneumothorax")
    free_air = np.zeros(labels.shape, bool)
    if pneumothorax:
        free_air = find_pneumothorax(hu_box, hu_fluid, labels > 0, spacing, air_hu=air_reference_hu)
        if free_air.any():
            labels[free_air] = 0
            notes.append(f"pneumothorax of {np.count_nonzero(free_air) * np.prod(spacing) / 1000:.0f} mL "
                         "left out of the lung (air along the chest wall without lung markings; a giant "
                         "bulla against the wall looks alike: check the pleural line)")
    if not labels.any():
        raise NoLungFoundError(f"no lung in this {where}")

    out = np.zeros(shape, np.uint8)
    out[box] = labels
    effusion_mask = np.zeros(shape, bool)
    effusion_mask[box] = fluid
    air_mask = np.zeros(shape, bool)
    air_mask[box] = free_air
    report(progress, _STAGES, _STAGES, "done")
    return LungSegmentation(labels=out, effusion=effusion_mask, airway=airway, gas=gas,
                            spacing=spacing, notes=notes, aorta=aorta_found, pneumothorax=air_mask)


def _close_borders(lungs, coarse_labels, allowed, body, factors, coarse_spacing, x_mid,
                   closing_mm, mass_mm, margin) -> np.ndarray:
    """Each lung with its small dents closed, masses and costal pockets added.

    ``lungs`` (full resolution, bool) takes the side of the nearest coarse
    label; additions are found on the coarse grid and kept where ``allowed``.
    """
    shape = lungs.shape
    labels = np.zeros(shape, np.uint8)
    nearest = upsample(nearest_label(coarse_labels), factors, shape)
    coarse_allowed = downsample_mask(allowed, factors)
    # depth below the skin over the whole box (a lung's own box may hold no skin at all)
    coarse_skin = skin_depth(downsample_mask(body, factors), coarse_spacing)
    pad = [int(np.ceil(margin / s)) for s in coarse_spacing]

    def closed(value: int) -> np.ndarray:  # the two lungs on two threads
        side = lungs & (nearest == value)
        coarse_side = coarse_labels == value
        if not side.any() or not coarse_side.any():
            return side
        cbox = bbox(coarse_side, pad)
        coarse_side = coarse_side[cbox]
        added = np.zeros(coarse_side.shape, bool)
        if closing_mm > 0:
            added |= closing(coarse_side, coarse_spacing, closing_mm)
        if mass_mm > 0:
            dents = closing(coarse_side, coarse_spacing, mass_mm) & ~coarse_side & coarse_allowed[cbox]
            # thick anywhere (a tumour against the mediastinum) ...
            added |= thick_parts(dents, coarse_spacing, 0.4 * mass_mm)
            # ... or, on the costal side, whatever the slice's convex hull fills
            added |= costal_pockets(coarse_side, coarse_skin[cbox], coarse_spacing,
                                    x_mid / factors[2] - cbox[2].start,
                                    min_mm=0.1 * mass_mm) & coarse_allowed[cbox]
        added &= ~coarse_side
        if added.any():
            fbox = tuple(slice(b.start * f, min(b.stop * f, n))
                         for b, f, n in zip(cbox, factors, shape))
            up = upsample(added, factors, [b.stop - b.start for b in fbox])
            side[fbox] |= up & allowed[fbox]
        return side

    for value, side in zip(SIDES, thread_map(closed, SIDES)):
        labels[side & (labels == 0)] = value  # the right lung first where they meet
    return labels
