"""What each lung voxel is, from the structures around it (read as a radiologist reads).

Clusters group voxels whose features look alike; they do not know that a tube
is a vessel or that a solid blob is consolidation. :func:`tissue_evidence`
measures, for every lung voxel, the evidence a radiologist uses first:

* **Dense structures** (smoothed HU above -500): *thick* ones survive an opening
  by a ball of ``solid_mm`` (consolidation, a mass); the rest are *thin*
  (vessels, bronchial walls, septa, fibrotic walls). Thin structures that are
  tubes (the Hessian tube measure of :mod:`.structure`) are vessels; in a stack
  thinner than a vessel (one slice), where a vessel lying in the slice
  reads as a plate, so are those with a core of soft-tissue density more than
  2 mm wide (walls of reticulation and cysts are thinner; in a slice thicker
  than the core, the density it reads there after partial volume). Within
  thick structures, the *airless* parts are regions of soft-tissue density
  (above -300 HU) that survive the same opening, with their edge (partial
  volume: 1.5 mm, and at least the next voxel, the next slice of a thick
  stack): the dense ground glass around a consolidation (a halo) or between
  firm septa (crazy paving) is not airless. Airless components of at least
  ``min_solid_ml`` that are neither a large vessel (elongated and tube-like)
  nor a tree of them (branching: tube-like on the whole, filling less than
  40 % of its convex hull, as the hilar arteries and veins do) nor a central
  artery (no thicker than the central arteries, wholly in the central lung, at
  least 30 mm below the costal pleura, and tube-like on the whole, which a mass
  is not: so a hilar artery reads where coarse pixels blur the other tests) nor
  the thickest stretch of a vessel (tube-like, and left on two sides by
  branches at least half as thick: a vessel cut across or obliquely in thick
  slices, which alone looks like a nodule) nor laced with
  thin walls (a net that partial volume thickened) nor, in a scan with
  intravenous contrast, mostly blood (most of their soft tissue as dense as
  contrast-filled blood, 150 HU and more: a hilar artery; consolidation and
  masses enhance far less, and the vessels that run through them are a small
  part of them) are *solid* (consolidation
  or a mass, which fill most of their hull and are homogeneous); thick ones of
  lower density are dense ground glass.
* **Parenchymal density**: the mean HU of the parenchyma around a voxel with
  every dense structure but dense ground glass left out, and their blurred
  edges as far (normalised convolution), so vessels do not raise it and ground glass
  does. It is compared with the *healthy level* of the voxel's slice at its
  depth along gravity (from the front of a supine patient; the peak of the
  parenchyma's histogram there), which
  the lighter lung of the scan bounds: where ground glass fills most of a
  band, the band's peak is ground glass, not healthy lung.
* **Low attenuation as regions**: the share of parenchyma below -950 HU (read
  on the image lightly smoothed in-plane, where noise seldom stays that low
  over a few voxels and a destroyed lobule does) within ``laa_mm`` of a voxel,
  against what noise alone gives healthy lung of that slice. Emphysema is a
  region where that share is far above the noise baseline and above
  ``min_laa_fraction``, of at least ``min_laa_ml``: noise at thick slices gives
  none, a small real emphysematous region is found. In slices thicker than
  1.5 mm the share is read within ``fine_laa_mm`` too, against the stricter
  threshold of that smaller neighbourhood: a few lucencies that partial volume
  dims, diluted in the wider share, stand out there. A region's extent is
  its low-attenuation voxels and the lung between them where their share is
  high, at any slice thickness: a reader outlines the emphysematous region,
  holes and the lung between them, whether thin slices resolve the holes or
  thick ones blur them into the lung around them, and the same lung gets the
  same region from either reconstruction (the voxels below -950 HU alone are
  what LAA-950 counts, reported beside the class). A region's edge lies
  where the image reads halfway between air and the slice's healthy lung
  (the voxel an edge cuts holds both, in proportion): the voxels next to a
  region (in-plane; along z too in thin slices) that read darker than that
  belong to it, whether or not they reach -950 HU. In thin
  slices a lucency that reads as air, at least 2 mm across, is a destroyed
  lobule by itself however small (noise does not stay that low over a few
  voxels), with its low-attenuation rim, unless the slice's healthy lung reads
  darker than at full inspiration (below). The dark halo that a
  sharp (lung) kernel draws along the lung's edge, measured on each scan, is
  not read, nor the air of a bronchus cut across (:func:`.low_attenuation.bronchus_lumens`).
  Where healthy lung itself reads darker than at full inspiration (a deep
  breath, the front of a supine lung), a region there is emphysema only if
  part of it reads as air in lucencies at least 2 mm across, which a
  destroyed lobule does in a thin slice and a uniformly dark lung does not.
* **Walls**: the share of thin dense voxels that are not tubes, nor the wall
  of a bronchus cut across, within about 3 mm (the net of reticulation and the
  walls of honeycomb cysts), how much
  they run one way (a net runs every way; a fissure, a subpleural line or the
  blurred border of the heart is one line), and the
  depth below the costal and diaphragmatic pleura (fibrosis is predominantly
  subpleural and basal; the mediastinal surface and the hila, where bronchi
  and vessels crowd, are not "subpleural").
* **Partial volume across slices**: a lung voxel whose slice above or below
  is dense tissue outside the lung (the dome of the diaphragm, the heart, the
  apex) mixes lung with that tissue; its raised density is not ground glass
  and its dense rim is not consolidation.

All of it is arrays in, arrays out; rows follow ``np.nonzero(lung)`` like the
other voxel features of the engine. The thresholds and scales named above are
the fields of :class:`EvidenceParams`.

References
----------
Hansell D. M. et al., Fleischner Society: Glossary of terms for thoracic
imaging. Radiology 246(3), 2008 (consolidation, ground glass, reticulation,
honeycombing). Mishima M. et al., Complexity of terminal airspace geometry
assessed by lung computed tomography in normal subjects and patients with
chronic obstructive pulmonary disease. PNAS 96(16), 1999 (low-attenuation
clusters).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage as ndi

from ..binary import label
from ..gravity import dependent_of_centre, gravity_axis
from ..lung.coarse import bbox
from ..lung.morphology import axial_convex_hull, axial_depth
from ..parallel import by_slabs, gaussian_filter, thread_map
from ..progress import ProgressCallback, report
from .features import lung_bbox
from .low_attenuation import low_attenuation_regions
from .parenchyma import gaussian_sigmas, healthy_levels, masked_mean
from .shapes import (
    ball_footprint,
    dilate_parts,
    disk_footprint,
    ellipsoid_footprint,
    opening_by,
    opening_mm,
)
from .solids import (
    IN_PLANE_CORE_MM,
    across_stack_hu,
    in_plane_vessels,
    laced_with_walls,
    solid_components,
)

__all__ = ["TissueEvidence", "EvidenceParams", "tissue_evidence", "costal_depth", "dependent_band",
           "partial_volume_rim", "read_past_partial_volume", "orientation_coherence", "WALL_RESOLVING_MM",
           "CELL_RESOLVING_MM"]

#: In-plane voxel size (mm) up to which the walls of the smallest honeycomb cysts
#: (3 mm across) are resolved: at least two voxels per cyst.
WALL_RESOLVING_MM = 1.5

#: In-plane voxel size (mm) up to which the cells of a net (honeycomb cysts and
#: reticular cells, up to about 6 mm across) are resolved: at least two voxels per cell.
CELL_RESOLVING_MM = 3.0


@dataclass
class TissueEvidence:
    """Structure evidence of every lung voxel (rows in ``np.nonzero(lung)`` order).

    Attributes
    ----------
    solid : (N,) bool
        In a thick solid component that is not a vessel (consolidation, a mass).
    vessel : (N,) bool
        In a thin dense tube (a vessel, a bronchial wall seen along its axis), or
        in a thick component that is a large vessel or a tree of them.
    thin : (N,) bool
        In any thin dense structure (vessels, walls, septa).
    parenchyma_hu : (N,) float32
        Mean HU of the parenchyma around the voxel, dense structures left out; in the
        partial-volume rim over tissue across the slice, read one slice further into the lung.
    voxel_hu : (N,) float32, optional
        HU of the voxel itself, smoothed by 0.8 mm (calibrated, as ``parenchyma_hu``);
        NaN in dense structures and within the blurred edge of clearly dense ones
        (``parenchyma_hu`` leaves the same voxels out).
    healthy_hu : (N,) float32
        Healthy level (peak of the parenchyma's HU histogram) of the voxel's slice at its depth
        along gravity (dependent lung is denser).
    emphysema : (N,) bool
        In a region of low attenuation well above the noise baseline.
    laa_fraction : (N,) float32
        Share of the surrounding parenchyma below -950 HU.
    wall_fraction : (N,) float32
        Share of the surrounding lung that is thin non-tubular walls.
    thin_fraction : (N,) float32
        Share of the surrounding lung that is thin dense structures of any shape
        (the walls of cysts read as tubes too at coarse grids).
    wall_coherence : (N,) float32
        How much the thin structures around the voxel run in one direction in
        its slice, 0 (a net: every direction) to 1 (one line or sheet: a
        fissure, a subpleural line); :func:`orientation_coherence`.
    texture_hu : (N,) float32
        Standard deviation (HU) of the lung around the voxel (Gaussian, 1.5 mm and
        at least half a voxel, narrower than which it weighs the voxel alone):
        destroyed lung is smooth air, honeycombing alternates air and walls.
    pleura_mm : (N,) float32
        Depth (mm) below the costal pleura (the border of the axial convex hull
        of both lungs) or above the diaphragm (the lung's lower surface below
        the voxel), whichever is smaller.
    dependent : (N,) bool
        In a thin band of denser parenchyma under the pleura on the dependent
        side (the back of a supine patient, the front of a prone one): dependent density (gravity,
        atelectasis of a few alveoli), not disease.
    partial_volume : (N,) bool
        In a region of denser parenchyma that lies mostly where the slice above
        or below is tissue outside the lung (the dome of the diaphragm or of the
        heart, blurred by partial volume and cardiac motion), not disease.
        None for a single slice.
    noise_hu : float
        Spread (HU) of healthy parenchyma voxels around their level (noise and
        fine texture), the median over slices.
    laa_baseline : float
        Share of healthy lung that this spread alone puts below -950 HU (the
        median over slices): what the low-attenuation share is compared with.
    halo_mm : float
        Width (mm) of the dark halo of a sharp kernel along the lung's edge,
        left out of the low-attenuation share (:func:`.low_attenuation.edge_halo`); 0 without one.
    dark_without_air_ml : float
        Volume (mL) of low-attenuation regions, in lung that reads darker than
        healthy lung at full inspiration, not called emphysema because they hold
        no lucencies that read as air (a deep breath, the gravity gradient);
        thin slices only, 0 elsewhere.
    level_bounded_ml : float
        Volume (mL) of lung in depth bands whose own histogram peak was denser
        than the scan's lighter lung allows (ground glass filling the band): the
        bound stands for their healthy level.
    walls_resolved : bool
        Whether the grid resolves the walls of honeycomb cysts (in-plane voxels of
        at most ``WALL_RESOLVING_MM``); on a coarser grid a cyst and its walls
        blur into texture, and texture stands in for walls.
    cells_resolved : bool
        Whether the grid resolves the cells of such a net (in-plane voxels of at
        most ``CELL_RESOLVING_MM``); on a coarser grid every dense voxel of the net
        blurs walls and cells together, and is part of the net.
    """

    solid: np.ndarray
    vessel: np.ndarray
    thin: np.ndarray
    parenchyma_hu: np.ndarray
    healthy_hu: np.ndarray
    emphysema: np.ndarray
    laa_fraction: np.ndarray
    wall_fraction: np.ndarray
    thin_fraction: np.ndarray
    texture_hu: np.ndarray
    pleura_mm: np.ndarray
    noise_hu: float
    laa_baseline: float = 0.0
    dependent: Optional[np.ndarray] = None
    partial_volume: Optional[np.ndarray] = None
    wall_coherence: Optional[np.ndarray] = None
    halo_mm: float = 0.0
    dark_without_air_ml: float = 0.0
    walls_resolved: bool = True
    cells_resolved: bool = True
    level_bounded_ml: float = 0.0
    voxel_hu: Optional[np.ndarray] = None

    @cached_property
    def healthy_level_hu(self) -> float:
        """The scan's healthy level (HU): the median of ``healthy_hu`` over its lung (NaN without lung)."""
        return float(np.median(self.healthy_hu)) if np.size(self.healthy_hu) else float("nan")


def costal_depth(inside: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """Depth (mm) of every voxel below the costal pleura or above the diaphragm.

    The costal surface is the border of the convex hull of both lungs in each
    axial slice, so the mediastinal pleura, the hila and the heart's border lie
    deep; the diaphragmatic surface is the lung's lowest surface in the same
    ``(y, x)`` column: tissue with lung below it (a hilum, the vessels and
    bronchi that leave it) is not the diaphragm.

    Parameters
    ----------
    inside : (Z, Y, X) bool
        Lung (both sides).
    spacing : (3,) float, mm.

    Returns
    -------
    (Z, Y, X) float32, mm (large where nothing bounds the lung).
    """
    hull = axial_convex_hull(inside)
    hull[:, [0, -1], :] = hull[:, :, [0, -1]] = False
    depth = axial_depth(hull, spacing)  # in-plane, slice by slice
    idx = np.arange(inside.shape[0], dtype=np.float32)[:, None, None]

    def with_floor(rows: slice) -> None:  # columns are independent: blocks of rows on threads
        # the floor: voxels of the column below its lowest lung voxel
        lung_below = np.logical_or.accumulate(inside[:, rows], axis=0)
        below = np.maximum.accumulate(np.where(lung_below, np.float32(-1e6), idx), axis=0)
        np.minimum(depth[:, rows], (idx - below) * np.float32(spacing[0]), out=depth[:, rows])

    ny = inside.shape[1]
    thread_map(with_floor, [slice(a, min(a + 32, ny)) for a in range(0, ny, 32)])
    return depth


def partial_volume_rim(inside: np.ndarray, dense: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lung voxels whose slice below or above, at the same ``(y, x)``, is dense non-lung tissue.

    Parameters
    ----------
    inside : (Z, Y, X) bool
        Lung.
    dense : (Z, Y, X) bool
        Dense tissue (e.g. smoothed HU above -500), inside the lung or not.

    Returns
    -------
    below, above : (Z, Y, X) bool
        Lung voxels with dense tissue in the slice below (``z - 1``), above (``z + 1``).
    """
    tissue = dense & ~inside
    below = np.zeros(inside.shape, bool)
    above = np.zeros(inside.shape, bool)
    below[1:] = tissue[:-1]
    above[:-1] = tissue[1:]
    return below & inside, above & inside


def _mostly_in(mask: np.ndarray, where: np.ndarray, share: float) -> np.ndarray:
    """The connected components of ``mask`` with at least ``share`` of their voxels in ``where``."""
    lab, n = label(mask)
    ids = lab[mask]
    total = np.bincount(ids, minlength=n + 1)
    keep = np.bincount(ids[where[mask]], minlength=n + 1) >= share * total
    out = np.zeros(mask.shape, bool)
    out[mask] = keep[ids]
    return out


def dependent_band(dense: np.ndarray, inside: np.ndarray, depth: np.ndarray,
                   spacing: Sequence[float], max_depth_mm: float, thick_mm: float,
                   side: str = "back") -> np.ndarray:
    """Dense parenchyma in a thin band under the pleura of the dependent lung.

    Lung is denser where it is dependent, and most of all in a band a few mm
    thick under the dependent pleura (gravity, a few collapsed alveoli; the
    back of a supine patient); it clears when the patient turns over and is not
    disease. Such a band is the part of ``dense`` within ``max_depth_mm`` of the
    pleura, on the dependent side of the centre of the lung in its slice, that
    is thin: not in the opening of ``dense`` by a ball of ``thick_mm`` (a lesion
    at the pleura thicker than that is kept).

    Parameters
    ----------
    dense : (Z, Y, X) bool
        Parenchyma denser than the healthy lung of its slice (no solid components).
    inside : (Z, Y, X) bool
        Lung.
    depth : (Z, Y, X) float
        Depth (mm) below the pleura.
    spacing : (3,) float, mm.
    max_depth_mm, thick_mm : float
    side : str
        The dependent side (:func:`~diffseglung_core.gravity.dependent_side`).

    Returns
    -------
    (Z, Y, X) bool
    """
    band = dense & (depth <= max_depth_mm) & dependent_of_centre(inside, side)
    if not band.any():
        return band
    # the opening at a voxel depends on the mask within 2 radii: work in a box that holds them
    box = bbox(band, [int(np.ceil(2 * thick_mm / float(s))) + 1 for s in spacing])
    band[box] &= ~opening_mm(dense[box], spacing, thick_mm)
    return band


def orientation_coherence(mask: np.ndarray, spacing: Sequence[float], sigma_mm: float) -> np.ndarray:
    """In-plane coherence of the structures of ``mask`` around every voxel, in [0, 1].

    The structure tensor of ``mask`` (lightly smoothed) averaged by a Gaussian
    of ``sigma_mm`` in each axial slice: its eigenvalues ``l1 >= l2`` give
    ``(l1 - l2) / (l1 + l2)``, 1 where every edge nearby runs one way (a single
    line or sheet: a fissure, a subpleural line, the lung's edge) and near 0
    where they run every way (a net of reticulation, the rings of cysts).
    0 where ``mask`` has no edge nearby.

    Parameters
    ----------
    mask : (Z, Y, X) bool
    spacing : (3,) float, mm.
    sigma_mm : float
        Scale (mm) of the neighbourhood.

    Returns
    -------
    (Z, Y, X) float32
    """
    sy, sx = float(spacing[1]), float(spacing[2])
    sig = (sigma_mm / sy, sigma_mm / sx)

    def coherence(z: int) -> np.ndarray:  # slice by slice: little memory
        f = ndi.gaussian_filter(mask[z].astype(np.float32), (0.5 / sy, 0.5 / sx), truncate=2.5)
        gy = ndi.sobel(f, axis=0) / np.float32(sy)
        gx = ndi.sobel(f, axis=1) / np.float32(sx)
        jyy = ndi.gaussian_filter(gy * gy, sig, truncate=2.5)
        jxx = ndi.gaussian_filter(gx * gx, sig, truncate=2.5)
        jxy = ndi.gaussian_filter(gx * gy, sig, truncate=2.5)
        trace = jxx + jyy
        spread = np.sqrt((jxx - jyy) ** 2 + 4.0 * jxy * jxy)
        return np.where(trace > 1e-6, spread / np.maximum(trace, 1e-6), 0.0)

    out = np.zeros(mask.shape, np.float32)
    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    for z, c in zip(zs, thread_map(coherence, zs)):
        out[z] = c
    return out


def read_past_partial_volume(values: np.ndarray, inside: np.ndarray, below: np.ndarray,
                             above: np.ndarray) -> np.ndarray:
    """``values`` with the partial-volume rim read one slice further into the lung.

    A lung voxel with tissue in the slice below (the dome of the diaphragm) mixes
    lung with that tissue: its density says nothing about the lung. The lung
    voxel above it does; a lesion that reaches the rim reaches it too.

    Parameters
    ----------
    values : (Z, Y, X) float
        A density map (e.g. the parenchymal HU).
    inside, below, above : (Z, Y, X) bool
        Lung, and its rims from :func:`partial_volume_rim`.

    Returns
    -------
    (Z, Y, X) float, a copy.
    """
    out = values.copy()
    up = below & ~above
    up[-1] = False
    up[:-1] &= inside[1:]
    out[:-1][up[:-1]] = values[1:][up[:-1]]
    down = above & ~below
    down[0] = False
    down[1:] &= inside[:-1]
    out[1:][down[1:]] = values[:-1][down[1:]]
    return out


@dataclass(frozen=True)
class EvidenceParams:
    """Thresholds and scales of :func:`tissue_evidence` (HU, mm, mL, shares).

    Attributes
    ----------
    dense_hu : float
        Smoothed HU above which a voxel belongs to a dense structure.
    solid_mm : float
        Radius (mm) of the ball whose opening keeps thick dense structures.
    solid_hu : float
        Smoothed HU above which a voxel is of soft-tissue density. Regions of it
        that survive the opening by the ball of ``solid_mm``, with their edge, are
        the airless parts of thick structures (consolidation, a mass); dense
        ground glass, and the ground glass around or between them, is not.
    min_solid_ml : float
        Smallest solid component (mL). A component that runs through every slice
        of a stack thinner than it is solid only when thicker in its slices than
        ``2 * mass_mm`` (in the central lung, or joining the hilum, than the central
        arteries: :func:`~.solids.central_vessel_cut`); free in the lung, it counts as a
        ball as wide as its largest cross-section.
    solid_max_thin : float
        A component whose voxels lie (median) among at least this share of thin
        structures (3 mm Gaussian) is a net of walls that partial volume
        thickened, not solid (:func:`laced_with_walls`).
    vessel_tube, solid_tube : float
        Tube measure above which a thin voxel is a vessel, and above which (the
        mean along its core) an elongated thick component is a large vessel,
        not solid. A compact thick component whose mean is above ``vessel_tube``
        and which the vessel leaves on two sides about as thick is the thickest
        stretch of a vessel (:func:`~.solids.vessel_passing_through`), not solid.
    branch_solidity : float
        A thick component that fills less than this share of its convex hull
        branches: vessels join consolidation or a mass there, and its vessels are
        not solid (:func:`vessel_branches`; not for one that runs through every
        slice of a stack thinner than it, whose shape the stack cuts); one that
        also is tube-like on the whole is a tree of vessels (:func:`large_vessel`).
    blood_hu, blood_share : float
        A thick component with at least ``blood_share`` of its soft tissue
        (smoothed HU above -100) reading ``blood_hu`` or more is contrast-filled
        blood: a vessel, not solid.
    mass_mm : float
        In a large vessel or a tree of them, the parts that survive an opening by
        a ball of this radius (mm), thicker than any vessel of the lung but the
        central ones, are a mass or consolidation that the vessels join.
    parenchyma_mm : float
        Gaussian sigma (mm) of the parenchymal density.
    laa_mm : float
        Gaussian sigma (mm) of the low-attenuation share.
    fine_laa_mm : float
        In slices thicker than ``LUCENCY_SLICE_MM``, the share is also read within
        this Gaussian sigma (mm), with the noise threshold of that smaller
        neighbourhood: a few lucencies that partial volume dims, a small region,
        stand out there; 0: not read.
    min_laa_fraction : float
        Least share of low attenuation in an emphysema region.
    extent_laa_fraction : float
        A region keeps its own low-attenuation voxels and those where the share
        is above this (the lung between its holes; the Gaussian share spreads
        past the region's edge), and the voxels next to the region that read
        past halfway from the slice's healthy level to air (its edge).
    laa_smooth_mm : float
        In-plane Gaussian sigma (mm) of the image the low attenuation is read on
        (0.5 mm: a full width at half maximum of about 1.2 mm, below the smallest
        emphysematous lucency, 2-3 mm, and above one pixel of noise).
    min_laa_excess : float
        Least excess of that share over the noise baseline.
    min_laa_ml : float
        Smallest emphysema region (mL); one that runs through every slice of a
        stack thinner than it counts as a ball as wide as its largest cross-section.
    air_margin_hu, min_air_share : float
        In slices up to ``LUCENCY_SLICE_MM`` thick, a lucency reading below
        ``NOMINAL_AIR_HU + air_margin_hu`` at least 2 mm across (an opening by a
        1 mm disk), not shaped like an airway, is emphysema with the
        low-attenuation voxels within 1 mm of it, where the slice's healthy lung
        reads at ``healthy_reference_hu`` or lighter; a region lying mostly where
        the slice's healthy lung reads darker than ``healthy_reference_hu`` is
        emphysema only when at least ``min_air_share`` of it reads below
        ``NOMINAL_AIR_HU + air_margin_hu`` (lightly smoothed) in lucencies at least
        2 mm across.
    healthy_reference_hu : float
        Level of healthy lung at full inspiration (HU) used for the noise
        baseline of the low-attenuation share when a slice reads lighter.
    dense_margin_hu, dependent_mm, dependent_thick_mm : float
        Parenchyma at least ``dense_margin_hu`` denser than the healthy lung of
        its slice, within ``dependent_mm`` of the pleura of the dependent lung,
        in a band thinner than a ball of ``dependent_thick_mm`` radius, is
        dependent density (:func:`dependent_band`).
    rim_share : float
        A connected region of such denser parenchyma with at least this share of
        its voxels in the partial-volume rim (:func:`partial_volume_rim`) is
        partial volume.
    airway_wall_mm : float
        Thin dense voxels within this in-plane distance (mm) of the lumen of a
        bronchus cut across (:func:`.low_attenuation.bronchus_lumens`) or of ``airway`` are its
        wall, not walls of reticulation.
    coherence_mm : float
        Scale (mm) over which the walls' orientations are compared
        (:func:`orientation_coherence`).
    """

    dense_hu: float = -500.0
    solid_mm: float = 3.0
    solid_hu: float = -300.0
    min_solid_ml: float = 0.3
    solid_max_thin: float = 0.2
    vessel_tube: float = 0.25
    solid_tube: float = 0.6
    branch_solidity: float = 0.4
    blood_hu: float = 150.0
    blood_share: float = 0.5
    mass_mm: float = 6.0
    parenchyma_mm: float = 3.0
    laa_mm: float = 4.0
    fine_laa_mm: float = 2.0
    laa_smooth_mm: float = 0.5
    min_laa_fraction: float = 0.15
    extent_laa_fraction: float = 0.3
    min_laa_excess: float = 0.15
    min_laa_ml: float = 0.1
    air_margin_hu: float = 20.0
    min_air_share: float = 0.03
    healthy_reference_hu: float = -910.0
    dense_margin_hu: float = 120.0
    dependent_mm: float = 10.0
    dependent_thick_mm: float = 4.0
    rim_share: float = 0.5
    airway_wall_mm: float = 3.5
    coherence_mm: float = 5.0


def tissue_evidence(
    hu: np.ndarray,
    lung: np.ndarray,
    spacing: Sequence[float],
    *,
    airway: Optional[np.ndarray] = None,
    hu_offset: float = 0.0,
    dependent_side: str = "back",
    device: str = "cpu",
    progress: Optional[ProgressCallback] = None,
    **params,
) -> TissueEvidence:
    """Structure evidence of every lung voxel (see the module notes).

    Parameters
    ----------
    hu : (Z, Y, X) float
        CT in HU.
    lung : (Z, Y, X)
        Lung mask, nonzero inside.
    spacing : (3,) float
        Voxel size (mm) along ``(z, y, x)``.
    airway : (Z, Y, X) bool, optional
        The airway tree the lung mask tracked (trachea and bronchi, left out of
        the lung): thin dense voxels within ``airway_wall_mm`` of it are its
        walls, not reticulation.
    hu_offset : float
        Calibration offset (HU) subtracted before the fixed thresholds.
    dependent_side : str
        Where the dependent lung lies: ``"back"`` for a supine patient,
        ``"front"`` prone, ``"right"`` or ``"left"`` on that side
        (:func:`~diffseglung_core.gravity.dependent_side`).
    device : str
        Device of the Hessian (see :mod:`.structure`).
    progress : callable, optional
        ``progress(done, total, stage)``.
    **params
        Thresholds and scales: the fields of :class:`EvidenceParams`.

    Returns
    -------
    TissueEvidence
    """
    from .structure import structure_maps

    p = EvidenceParams(**params)
    lung = np.asarray(lung) > 0
    pad = [max(1, int(np.ceil(2 * p.laa_mm / float(s)))) for s in spacing]
    box = tuple(slice(max(b.start - q, 0), min(b.stop + q, n))
                for b, q, n in zip(lung_bbox(lung), pad, lung.shape))
    h = np.clip(np.asarray(hu[box], np.float32) - np.float32(hu_offset), -1100.0, 300.0)
    inside = lung[box]
    # a component that runs through every slice of the scan is cut by it
    whole = box[0].start == 0 and box[0].stop == lung.shape[0]
    total = 5
    report(progress, 0, total, "structures")
    pixel_mm = max(float(spacing[1]), float(spacing[2]))  # the coarser in-plane voxel size

    smooth = gaussian_filter(h, gaussian_sigmas(spacing, 0.8, h.shape), truncate=2.5)
    dense_anywhere = smooth > p.dense_hu
    below, above = partial_volume_rim(inside, dense_anywhere)
    rim = below | above
    dense = dense_anywhere & inside
    tissue = dense_anywhere & ~inside
    del dense_anywhere
    # (no finer than the grid: on a coarse grid a structure one voxel across is thin)
    ball = ball_footprint(max(p.solid_mm, pixel_mm), spacing, h.shape)
    thick = opening_by(dense, ball)
    thin = dense & ~thick
    tube = structure_maps(h, spacing, device=device, names=("tube",))["tube"]
    vessel = thin & (tube > p.vessel_tube)
    firm = smooth > p.solid_hu  # soft-tissue density (dense ground glass is lighter)
    stack_mm = h.shape[0] * float(spacing[0])
    if stack_mm < 2.0 * p.solid_mm:
        # a vessel lying in a thicker stack fills only part of it: partial volume with the
        # aerated lung around it
        air_filled = inside & ~dense
        lung_hu = float(np.median(smooth[air_filled])) if air_filled.any() else p.dense_hu
        core_hu = max(p.dense_hu, across_stack_hu(p.solid_hu, lung_hu, 2.0 * IN_PLANE_CORE_MM, stack_mm))
        vessel |= in_plane_vessels(smooth > core_hu, thin, spacing)
        del air_filled
    # consolidation is airless lung: regions of soft-tissue density as wide as the ball,
    # with the partial volume of their edge (1.5 mm, and at least the next voxel along an
    # axis whose voxels are coarser: the next slice of a thick stack); the dense ground
    # glass around them (a halo) or between firm septa (crazy paving) is not
    reach = ellipsoid_footprint([max(1.5, float(s)) for s in spacing], spacing, h.shape)
    airless = dilate_parts(opening_by(thick & firm, ball), reach) & thick
    depth = costal_depth(inside, spacing)
    solid, vessels_among = solid_components(airless, dense, tissue, inside, firm, rim, smooth, tube,
                                            depth, spacing, whole, p)
    vessel |= vessels_among
    del airless, vessels_among, tube
    report(progress, 1, total, "parenchyma")

    parenchyma = inside & ~dense
    # thick dense regions that are neither solid nor of blood density are dense ground
    # glass: parenchyma for its density; the blurred edges of clearly dense structures
    # and of the tissue around the lung are partial volume and left out (as far as
    # the edge of an airless region reaches)
    hazy = thick & ~solid & ~firm
    # (clearly dense: noise does not lift ground glass near ``dense_hu`` that far)
    edges = (smooth > p.dense_hu + 100.0) & ~hazy
    clear = (parenchyma | hazy) & ~by_slabs(lambda e: ndi.binary_dilation(e, reach), [edges],
                                            reach.shape[0] // 2)
    par_hu, _ = masked_mean(h, clear, spacing, p.parenchyma_mm)
    del edges
    par_hu = read_past_partial_volume(par_hu, inside, below, above)
    # (a band's peak may exceed the bound by half the margin that makes ground glass)
    gravity = gravity_axis(dependent_side)[0]  # the axis along which dependent lung is denser
    level, spread, lowered = healthy_levels(h, parenchyma & ~rim, spacing, axis=gravity,
                                            tolerance=0.5 * p.dense_margin_hu)
    bounded_ml = float(np.count_nonzero(inside & lowered) * np.prod(spacing) / 1000.0)
    del lowered
    report(progress, 2, total, "low attenuation")

    low = low_attenuation_regions(h, smooth, parenchyma, rim, tissue, depth, spacing, gravity, whole, p)
    del tissue
    # the wall of a bronchus cut across, or of the airway tree the lung mask tracked, is
    # airway, not reticulation
    lumens = low.lumens
    if airway is not None:
        lumens = lumens | np.asarray(airway[box], bool)
    airway_walls = dilate_parts(lumens, disk_footprint(p.airway_wall_mm, spacing, h.shape))
    del lumens
    report(progress, 3, total, "walls")

    # a wall lies inside the lung: a dense thin rim where the slice above or below is
    # no longer lung is partial volume with the dome of the diaphragm or the apex
    walls = thin & ~vessel & ~airway_walls
    del airway_walls
    if inside.shape[0] > 2:
        closed = np.ones((3, 1, 1), bool)
        walls &= by_slabs(lambda m: ndi.binary_erosion(m, closed, border_value=1), [inside], 1)
    wall_frac, local = masked_mean(walls, inside, spacing, 3.0)
    thin_frac, _ = masked_mean(thin, inside, spacing, 3.0, den=local)
    solid &= ~laced_with_walls(solid, thin_frac, p.solid_max_thin)
    coherence = orientation_coherence(walls, spacing, p.coherence_mm)
    # (a Gaussian narrower than half a voxel weighs the voxel alone: no spread to read)
    texture_mm = max(1.5, 0.5 * pixel_mm)
    mean, local = masked_mean(h, inside, spacing, texture_mm)
    mean_sq, _ = masked_mean(h * h, inside, spacing, texture_mm, den=local)
    del local
    texture = np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))
    del mean, mean_sq
    denser = inside & ~solid & (par_hu - level >= p.dense_margin_hu)
    # the band follows the pleura everywhere on the dependent side, beside the spine too
    # (where the convex hull of the lungs runs deep): depth below the lung's own border
    pleura = axial_depth(inside, spacing)
    dependent = dependent_band(denser, inside, pleura, spacing, p.dependent_mm, p.dependent_thick_mm,
                               dependent_side)
    del pleura
    # dense parenchyma lying mostly against tissue across the slice (over the dome of the
    # diaphragm or of the heart) is that tissue's partial volume, even read one slice further
    partial = _mostly_in(denser, rim, p.rim_share) if inside.shape[0] > 1 else None
    del denser
    report(progress, 4, total, "evidence")

    rows = np.nonzero(inside)
    ev = TissueEvidence(
        solid=solid[rows], vessel=vessel[rows], thin=thin[rows],
        parenchyma_hu=par_hu[rows].astype(np.float32),
        # a voxel's own density says haze only where no clearly dense structure's
        # blurred edge lifts it (a vessel's partial volume), as for the parenchyma's
        voxel_hu=np.where(clear[rows], smooth[rows], np.nan).astype(np.float32),
        healthy_hu=np.broadcast_to(level, h.shape)[rows].astype(np.float32),
        emphysema=low.emphysema[rows], laa_fraction=low.laa_fraction[rows].astype(np.float32),
        wall_fraction=wall_frac[rows].astype(np.float32),
        thin_fraction=thin_frac[rows].astype(np.float32),
        wall_coherence=coherence[rows],
        texture_hu=texture[rows].astype(np.float32),
        pleura_mm=depth[rows].astype(np.float32),
        noise_hu=float(np.median(spread)),
        laa_baseline=float(np.median(low.baseline)),
        halo_mm=low.halo_mm,
        dark_without_air_ml=low.dark_ml,
        level_bounded_ml=bounded_ml,
        dependent=dependent[rows],
        partial_volume=None if partial is None else partial[rows],
        walls_resolved=pixel_mm <= WALL_RESOLVING_MM,
        cells_resolved=pixel_mm <= CELL_RESOLVING_MM,
    )
    report(progress, total, total, "evidence")
    return ev


