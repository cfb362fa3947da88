"""Solid components or vessels: what a thick dense structure of the lung is.

A radiologist calls a dense blob consolidation or a mass, and a dense tube a
vessel. Both survive an opening by a ball of a few mm when they are thick
enough; :func:`solid_components` (which :func:`~.evidence.tissue_evidence`
calls) asks these questions of each component: is it a large vessel or a tree
of them (elongated, tube-like, branching), the vessels joining a consolidation,
the thickest stretch of a vessel that runs through it, a net of walls that
partial volume thickened, or, in a stack of slices thinner than a vessel, a
vessel lying in the slice? Arrays in, arrays out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np
from scipy import ndimage as ndi

from ..binary import distance_inside, label
from ..lung.morphology import fill_holes_nd
from ..parallel import thread_map
from .shapes import component_ml, disk_footprint, elongation, in_plane_depth, opening_mm, solidity

if TYPE_CHECKING:
    from .evidence import EvidenceParams

__all__ = ["IN_PLANE_CORE_MM", "CENTRAL_VESSEL_MM", "HILUM_DEPTH_MM", "HILUM_JOINED_DEPTH_MM",
           "solid_components", "central_vessel_cut", "central_artery",
           "laced_with_walls", "large_vessel", "vessel_branches", "vessel_passing_through",
           "across_stack_hu", "in_plane_vessels"]

#: Half-width (mm) of the core of soft-tissue density that tells a vessel lying in a
#: thin stack (one slice) from the 1 mm walls of reticulation.
IN_PLANE_CORE_MM = 1.0
#: Half the thickness (mm) of the thickest vessels inside the lung: the interlobar and
#: lower-lobe pulmonary arteries at the hilum, up to about 16-17 mm across, where a vein
#: crossing them in a thick slice can add a few mm.
CENTRAL_VESSEL_MM = 10.0
#: Depth (mm) below the costal surface from which on the lung is central: the hila and the
#: lung around them, where the vessels are thickest. Consolidation and most masses reach
#: nearer the chest wall.
HILUM_DEPTH_MM = 30.0
#: Depth (mm) below the costal surface that a component joining the soft tissue of the hilum
#: keeps to be read as a hilar artery: the lobar arteries leave the hilum beside their
#: bronchi, within the inner part of the lung.
HILUM_JOINED_DEPTH_MM = 20.0


def central_vessel_cut(comp: np.ndarray, costal_mm: np.ndarray, spacing: Sequence[float], *,
                       joins_hilum: bool = False, hilum_mm: float = HILUM_DEPTH_MM,
                       joined_mm: float = HILUM_JOINED_DEPTH_MM,
                       vessel_mm: float = CENTRAL_VESSEL_MM) -> bool:
    """Whether a thick component that a thin stack cuts is a central vessel (a hilar artery).

    On one slice (or a stack thinner than the structures in it) a vessel cannot be
    followed: the interlobar artery cut across at the hilum is a disk of soft
    tissue 15-20 mm wide, as a nodule would be. A radiologist
    reads its place and calibre: no thicker in its slices than the central
    arteries (half-thickness ``vessel_mm``) and lying wholly in the central
    lung, at least ``hilum_mm`` below the costal surface (``costal_mm``, (Z, Y,
    X) like ``comp``, :func:`~.evidence.costal_depth`), or joining the soft
    tissue of the hilum (``joins_hilum``, the caller's test) and at least
    ``joined_mm`` below it, it is a vessel. Consolidation and most masses
    reach nearer the chest wall, or are thicker. (In a volume, where the vessel
    can be followed, :func:`solid_components` also asks it to be tube-like.)
    """
    deep = float(costal_mm[comp].min())
    return bool(in_plane_depth(comp, spacing) <= vessel_mm
                and (deep >= hilum_mm or (joins_hilum and deep >= joined_mm)))


def laced_with_walls(solid: np.ndarray, thin_share: np.ndarray, max_share: float) -> np.ndarray:
    """The solid components through which thin walls run: a net thickened by partial volume.

    Consolidation and masses are homogeneous: thin structures lie around them,
    not among their voxels. A dense region whose voxels lie (median) among at
    least ``max_share`` of thin structures (``thin_share``, (Z, Y, X)) is a net of
    walls and cysts that partial volume thickened (honeycombing over the dome of
    the diaphragm), not consolidation.
    """
    lab, _ = label(solid)
    out = np.zeros(solid.shape, bool)
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        comp = lab[sl] == i
        if np.median(thin_share[sl][comp]) >= max_share:
            out[sl] |= comp
    return out


def large_vessel(comp: np.ndarray, tube: np.ndarray, spacing: Sequence[float],
                  min_tube: float, min_elongation: float = 2.5, core_mm: float = 2.5,
                  branch_tube: float = 0.25, max_solidity: float = 0.4,
                  in_plane: bool = False) -> bool:
    """Whether a thick dense component is a large vessel or a tree of them (hilar arteries, veins).

    A large vessel is elongated (its longest principal axis at least
    ``min_elongation`` times its shortest) and tube-like along its core (mean
    tube measure at least ``min_tube`` where it is ``core_mm`` deep). A tree of
    vessels branches: it fills less than ``max_solidity`` of its convex hull and
    is tube-like on the whole (mean tube measure at least ``branch_tube``).
    Consolidation and masses fill most of their hull. ``in_plane``: the component
    runs through every slice of a stack thinner than it, whose slices cut its
    shape across them; its elongation is read in its slices.
    """
    if float(tube[comp].mean()) >= branch_tube and solidity(comp, spacing) < max_solidity:
        return True
    long = elongation(comp.any(axis=0), spacing[1:]) if in_plane else elongation(comp, spacing)
    if long is None or long < min_elongation:
        return False
    depth = distance_inside(np.pad(comp, 1), spacing)[1:-1, 1:-1, 1:-1]
    core = depth >= core_mm
    return float(tube[core if core.any() else comp].mean()) >= min_tube


def central_artery(piece: np.ndarray, tube: np.ndarray, costal_mm: np.ndarray,
                   spacing: Sequence[float], *, min_tube: float, min_elongation: float = 2.5,
                   hilum_mm: float = HILUM_DEPTH_MM, vessel_mm: float = CENTRAL_VESSEL_MM) -> bool:
    """Whether a thick piece of a branching dense component is a hilar or lobar artery.

    The opening that takes the thin vessels off a tree of vessels (or off a
    consolidation they join) leaves the central arteries, as thick as the
    opening, in pieces of their own. A radiologist reads such a piece by its
    shape and place: a tube, longer than it is thick (its longest principal
    axis at least ``min_elongation`` times its shortest; a central mass or a
    nodule is round) and tube-like on the whole (mean tube measure at least
    ``min_tube``), no thicker than the central arteries (half-thickness
    ``vessel_mm``) and lying mostly in the central lung (median depth below
    the costal pleura, ``costal_mm``, at least ``hilum_mm``: its branches
    reach outwards), it is an artery. ``tube`` and ``costal_mm`` are
    (Z, Y, X) like ``piece``.
    """
    if float(tube[piece].mean()) < min_tube or float(np.median(costal_mm[piece])) < hilum_mm \
            or in_plane_depth(piece, spacing) > vessel_mm:
        return False
    long = elongation(piece, spacing)
    return long is not None and long >= min_elongation


def vessel_branches(comp: np.ndarray, tube: np.ndarray, spacing: Sequence[float], mass_mm: float,
                    solid_tube: float, max_solidity: float,
                    vessel_tube: Optional[float] = None, costal_mm: Optional[np.ndarray] = None,
                    artery_tube: float = 0.25) -> np.ndarray:
    """The vessels of a dense component that vessels and consolidation (or a mass) share.

    Consolidation and masses fill most of their convex hull; where vessels join
    one, the component branches. Its parts thinner than an opening by a ball of
    ``mass_mm`` are vessels (with ``vessel_tube``: only the parts whose mean tube
    measure is above it), and so are the pieces of the opening that are large vessels
    themselves (:func:`large_vessel` with ``solid_tube`` and ``max_solidity``:
    a lobar artery is as thick as the opening) or, given ``costal_mm`` (depth
    below the costal pleura, mm, like ``comp``), central arteries
    (:func:`central_artery` with ``artery_tube``). Returns a bool array like ``comp``.
    """
    core = opening_mm(comp, spacing, mass_mm)
    out = comp & ~core
    if vessel_tube is not None:
        parts, n = label(out)
        mean = np.asarray(ndi.mean(tube, parts, np.arange(1, n + 1))) if n else np.zeros(0)
        out = np.concatenate([[False], mean > vessel_tube])[parts]
    pieces, _ = label(core)
    for j, sl in enumerate(ndi.find_objects(pieces), start=1):
        piece = pieces[sl] == j
        if large_vessel(piece, tube[sl], spacing, solid_tube, max_solidity=max_solidity) or \
                (costal_mm is not None and
                 central_artery(piece, tube[sl], costal_mm[sl], spacing, min_tube=artery_tube)):
            out[sl] |= piece
    return out


def vessel_passing_through(comp: np.ndarray, firm: np.ndarray, tube: np.ndarray,
                            spacing: Sequence[float], *, min_tube: float,
                            shell_mm: tuple[float, float] = (5.0, 10.0),
                            min_ratio: float = 0.5) -> bool:
    """Whether a compact dense component is the thick stretch of a vessel that runs through it.

    A vessel cut across or obliquely (a hilar or lobar artery, a vein near the
    left atrium) shows a short, round, solid piece where it is thickest: alone
    it looks like a nodule. A radiologist follows the vessel: it leaves the
    piece on two sides about as thick as it entered. A nodule or a mass is much
    wider than the vessels that join it, and consolidation is wider still.

    The piece is a vessel when it is tube-like on the whole (mean tube measure
    at least ``min_tube``; a nodule reads as a blob) and the soft-tissue density
    around it (``firm``) leaves it in at least two branches that, between
    ``shell_mm`` from it, are at least ``min_ratio`` as thick as the piece
    (largest distance to their edge against the piece's).

    Parameters
    ----------
    comp : (Z, Y, X) bool
        The piece, in a box that holds ``shell_mm[1]`` around it.
    firm, tube : (Z, Y, X)
        Soft-tissue density (bool) and the Hessian tube measure, in the same box.
    spacing : (3,) float, mm

    Returns
    -------
    bool
    """
    if float(tube[comp].mean()) < min_tube:
        return False
    near_mm, far_mm = shell_mm
    tissue = np.pad(firm | comp, 1)
    radius = distance_inside(tissue, spacing)[1:-1, 1:-1, 1:-1]
    away = distance_inside(~np.pad(comp, 1), spacing)[1:-1, 1:-1, 1:-1]
    shell = firm & ~comp & (away <= far_mm)
    parts, n = label(shell)
    if n < 2:
        return False
    # the branches that leave the piece (touch it), and how thick each is out there
    touching = np.unique(parts[ndi.binary_dilation(comp, np.ones((3, 3, 3), bool)) & shell])
    out = (away > near_mm) & shell
    widths = np.asarray(ndi.maximum(radius, np.where(out, parts, 0), touching[touching > 0]), float)
    return widths.size >= 2 and float(np.sort(widths)[-2]) >= min_ratio * float(radius[comp].max())


def across_stack_hu(hu: float, floor_hu: float, width_mm: float, stack_mm: float) -> float:
    """What a structure ``width_mm`` across that reads ``hu`` reads in a stack ``stack_mm`` thick.

    Lying in the stack, it fills ``width_mm / stack_mm`` of its thickness, and
    its contrast above the tissue around it (``floor_hu``) shrinks by that
    share (partial volume across the stack); in a stack no thicker than it,
    ``hu``.
    """
    return float(floor_hu + (hu - floor_hu) * min(1.0, width_mm / max(stack_mm, 1e-6)))


def in_plane_vessels(firm: np.ndarray, thin: np.ndarray, spacing: Sequence[float], *,
                      core_mm: float = IN_PLANE_CORE_MM, fringe_mm: float = 1.0) -> np.ndarray:
    """Thin dense voxels of the vessels lying in a stack thinner than them (one slice).

    The Hessian cannot follow a vessel across such a stack: one lying in its
    slices reads as a plate, like a wall. In the slice, a vessel has a core of
    at least soft-tissue density (``firm``; in a stack thicker than the core,
    what that density reads there, :func:`across_stack_hu`) more than
    ``2 * core_mm`` wide; the walls of reticulation and of cysts, about 1 mm
    thick, are narrower. The core and the thin voxels within ``fringe_mm`` of
    it (its blurred edge) are the vessel.
    """
    # (an opening on a grid whose slices lie infinitely far apart is one slice by slice)
    core = opening_mm(firm, (1e9,) + tuple(float(s) for s in spacing[1:]), core_mm) & thin
    return ndi.binary_dilation(core, disk_footprint(fringe_mm, spacing, thin.shape)) & thin


def solid_components(airless: np.ndarray, dense: np.ndarray, tissue: np.ndarray, inside: np.ndarray,
                     firm: np.ndarray, rim: np.ndarray, smooth: np.ndarray, tube: np.ndarray,
                     depth: np.ndarray, spacing: Sequence[float], whole: bool, p: EvidenceParams
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Which airless components of thick structures are solid (consolidation, a mass).

    Parameters
    ----------
    airless : (Z, Y, X) bool
        Airless parts of the thick dense structures.
    dense, tissue, inside, firm, rim : (Z, Y, X) bool
        Dense lung, dense tissue outside the lung, the lung, soft-tissue density,
        the partial-volume rim across slices.
    smooth, tube : (Z, Y, X) float
        Smoothed HU; Hessian tube measure.
    depth : (Z, Y, X) float
        Depth (mm) below the costal pleura (:func:`.evidence.costal_depth`).
    spacing : (3,) float, mm
    whole : bool
        The arrays hold every slice of the scan (a component through all of them
        is cut by the stack).
    p : :class:`~.evidence.EvidenceParams`

    Returns
    -------
    solid, vessel : (Z, Y, X) bool
        The solid components (their holes, air bronchograms and necrosis,
        filled), and the vessels found among the airless components.
    """
    shape = airless.shape
    vessel = np.zeros(shape, bool)
    solid = np.zeros(shape, bool)
    # (with intravenous contrast, blood reads far denser than any soft tissue of the lung)
    soft_tissue, blood = smooth > -100.0, smooth >= p.blood_hu
    lab, n = label(airless)
    objects = ndi.find_objects(lab)
    # components that run through every slice of the scan are cut by it: only their
    # thickness in their slices says what they are. No thicker than a vessel but the
    # central ones and away from the chest wall (where vessels are small), they are
    # vessels (a vessel cut across or along looks the same as a nodule), and so are those
    # as thick as the central arteries in the central lung or joining the hilum
    # (:func:`central_vessel_cut`); thicker and free in the lung, they are measured as a
    # ball that wide
    through = [whole and sl[0].stop - sl[0].start == shape[0] for sl in objects]
    beside_tissue = ndi.binary_dilation(tissue, np.ones((1, 3, 3), bool)) if any(through) else None
    wide = [t and in_plane_depth(lab[sl] == i, spacing) > p.mass_mm
            for i, (t, sl) in enumerate(zip(through, objects), start=1)]
    cut = wide
    if any(cut):
        parts, _ = label(dense)
        hilar = np.zeros(parts.max() + 1, bool)
        hilar[np.unique(parts[ndi.binary_dilation(tissue, np.ones((1, 3, 3), bool))])] = True
        hilar[0] = False
        cut = [c and not hilar[parts[sl][lab[sl] == i]].any()
               for i, (c, sl) in enumerate(zip(cut, objects), start=1)]
        del parts

    def ml(comp: np.ndarray, i: int) -> float:
        return component_ml(comp, spacing, cut[i - 1])

    around = [int(np.ceil(12.0 / float(s))) for s in spacing]  # the branches 5-10 mm out

    for i, sl in enumerate(objects, start=1):
        comp = lab[sl] == i
        size = np.count_nonzero(comp)
        if through[i - 1] and not wide[i - 1] and depth[sl][comp].min() > p.solid_mm:
            continue
        if through[i - 1] and central_vessel_cut(comp, depth[sl], spacing,
                                                 joins_hilum=bool((comp & beside_tissue[sl]).any())):
            vessel[sl] |= comp  # a hilar artery cut across by the stack
            continue
        if ml(comp, i) < p.min_solid_ml:
            continue
        if not through[i - 1] and central_vessel_cut(comp, depth[sl], spacing) and \
                float(tube[sl][comp].mean()) >= p.vessel_tube:
            # where the stack lets it be followed, a hilar artery is also tube-like on the
            # whole (a mass or consolidation is not): so it reads where coarse pixels
            # blur the shape the tests below need
            vessel[sl] |= comp
            continue
        n_blood = np.count_nonzero(comp & blood[sl])
        if n_blood and n_blood >= p.blood_share * np.count_nonzero(comp & soft_tissue[sl]):
            vessel[sl] |= comp  # contrast-filled blood
            continue
        # (the shape of one that runs through every slice of the stack is cut by it)
        large = large_vessel(comp, tube[sl], spacing, p.solid_tube, max_solidity=p.branch_solidity,
                             in_plane=through[i - 1])
        if large or (not through[i - 1] and solidity(comp, spacing) < p.branch_solidity):
            # a mass or consolidation that vessels join: its parts thicker than vessels stay
            branches = vessel_branches(comp, tube[sl], spacing, p.mass_mm, p.solid_tube,
                                       p.branch_solidity, None if large else p.vessel_tube,
                                       costal_mm=depth[sl], artery_tube=p.vessel_tube)
            vessel[sl] |= branches
            comp = comp & ~branches
            size = np.count_nonzero(comp)
            if ml(comp, i) < p.min_solid_ml:
                continue
        if not through[i - 1]:
            # a vessel's thickest stretch, cut across or obliquely: the vessel leaves it
            grown = tuple(slice(max(s.start - g, 0), min(s.stop + g, dim))
                          for s, g, dim in zip(sl, around, shape))
            piece = np.zeros(firm[grown].shape, bool)
            piece[tuple(slice(s.start - g.start, s.stop - g.start) for s, g in zip(sl, grown))] = comp
            if vessel_passing_through(piece, firm[grown] & inside[grown], tube[grown], spacing,
                                      min_tube=p.vessel_tube):
                vessel[sl] |= comp
                continue
        # a sheet one slice deep over the diaphragm or the heart: partial volume across the slice
        if np.count_nonzero(comp & rim[sl]) > 0.5 * size and \
                np.median(comp.sum(axis=0)[comp.any(axis=0)]) <= 1:
            continue
        solid[sl] |= comp
    # air bronchograms and necrosis inside a solid component belong to it
    solid = np.stack(thread_map(fill_holes_nd, solid)) & inside
    return solid, vessel
