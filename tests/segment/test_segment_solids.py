"""What a thick dense structure is, solid or a vessel (segment/solids.py)."""

from __future__ import annotations

import numpy as np
import pytest

from diffseglung_core.segment.evidence import EvidenceParams
from diffseglung_core.segment.solids import (
    across_stack_hu,
    central_artery,
    central_vessel_cut,
    laced_with_walls,
    large_vessel,
    solid_components,
    vessel_branches,
    vessel_passing_through,
)


def test_across_stack_hu_is_partial_volume_across_a_thicker_stack():
    assert across_stack_hu(-300.0, -860.0, 2.0, 1.25) == -300.0  # a stack no thicker than it
    assert across_stack_hu(-300.0, -860.0, 2.0, 5.0) == pytest.approx(-636.0)
    assert across_stack_hu(40.0, -860.0, 3.0, 5.0) == pytest.approx(-320.0)


@pytest.mark.parametrize("radius_mm, depth_mm, joins_hilum, vessel", [
    (8.0, 40.0, False, True),    # the interlobar artery cut across at the hilum
    (8.0, 20.0, False, False),   # as wide, but reaching towards the chest wall
    (15.0, 40.0, False, False),  # at the hilum, but wider than any artery of the lung
    (8.0, 25.0, True, True),     # nearer the chest wall, but leaving the hilum's soft tissue
    (8.0, 15.0, True, False),    # joining the hilum, but reaching the outer lung
    (15.0, 25.0, True, False),   # joining the hilum, but wider than any artery
])
def test_a_central_vessel_cut_by_one_slice_is_told_by_its_place_and_calibre(radius_mm, depth_mm,
                                                                           joins_hilum, vessel):
    sp = (5.0, 0.5, 0.5)
    y, x = np.mgrid[-40:40, -40:40] * 0.5
    comp = (y ** 2 + x ** 2 <= radius_mm ** 2)[None]
    # costal depth growing from the disk's lateral edge inwards
    costal = (depth_mm + x + radius_mm)[None].astype(np.float32)
    assert central_vessel_cut(comp, costal, sp, joins_hilum=joins_hilum) == vessel


@pytest.mark.parametrize("tube, depth_mm, solid", [
    (0.35, 50.0, False),  # tube-like, no thicker than an artery, in the central lung: a hilar artery
    (0.10, 50.0, True),   # as thick and as central, but a blob: a mass
    (0.35, 10.0, True),   # tube-like, but reaching towards the chest wall
])
def test_a_central_tube_as_thick_as_an_artery_is_a_vessel_in_a_volume(tube, depth_mm, solid):
    """On 3.4 mm pixels a hilar artery is a short, thick piece: too short for an elongated
    tube, too full of its hull for a tree of vessels. Wholly in the central lung, no thicker
    than the central arteries and tube-like on the whole, it is a vessel; a blob as thick
    (a mass), or a tube reaching towards the chest wall, stays solid."""
    sp = (5.0, 3.4, 3.4)
    shape = (12, 24, 24)
    z, y, x = np.indices(shape)
    comp = ((z - 6) * 5.0) ** 2 / 15.0 ** 2 + ((y - 12) * 3.4) ** 2 / 7.0 ** 2 \
        + ((x - 12) * 3.4) ** 2 / 7.0 ** 2 <= 1.0
    inside = np.ones(shape, bool)
    smooth = np.where(comp, 30.0, -860.0).astype(np.float32)
    out_solid, out_vessel = solid_components(
        comp, comp, np.zeros(shape, bool), inside, comp, np.zeros(shape, bool), smooth,
        np.where(comp, tube, 0.0).astype(np.float32), np.full(shape, depth_mm, np.float32), sp,
        False, EvidenceParams())
    assert out_solid[comp].all() == solid and out_vessel[comp].all() == (not solid)


@pytest.mark.parametrize("tube, costal_mm, artery", [
    (0.35, 50.0, True),   # a hilar artery: tube-like, as thick as the opening, central
    (0.10, 50.0, False),  # as thick and as central, but a blob: a nodule on the vessel
    (0.35, 15.0, False),  # tube-like, but in the outer lung
])
def test_a_central_artery_joining_consolidation_is_a_vessel(tube, costal_mm, artery):
    """A consolidation (a ball 30 mm across near the chest wall) that a thin vessel joins to a
    thick, short artery (15 mm across: the opening by the 6 mm ball keeps it, in a piece of its
    own). The artery is a vessel when it is tube-like and lies in the central lung; the
    consolidation stays solid whatever the artery is."""
    sp = (2.0, 1.0, 1.0)
    z, y, x = np.indices((30, 60, 120)).astype(float)
    z, y = (z - 15) * sp[0], y - 30
    ball = z ** 2 + y ** 2 + (x - 25) ** 2 <= 15.0 ** 2
    thick = (z ** 2 + y ** 2 <= 7.5 ** 2) & (x >= 70) & (x <= 105)
    thin = (z ** 2 + y ** 2 <= 2.0 ** 2) & (x > 25) & (x < 70)
    comp = ball | thick | thin
    tube_map = np.where(ball, 0.05, tube).astype(np.float32)
    costal = np.where(x >= 45, costal_mm, 10.0).astype(np.float32)
    out = vessel_branches(comp, tube_map, sp, 6.0, 0.6, 0.4, costal_mm=costal, artery_tube=0.25)
    # (the voxels of the surfaces that the opening's ball does not reach are thin parts)
    inner_ball = z ** 2 + y ** 2 + (x - 25) ** 2 <= 12.0 ** 2
    inner_thick = (z ** 2 + y ** 2 <= 5.0 ** 2) & (x >= 80) & (x <= 95)
    assert out[thin & (x > 45) & (x < 60)].all() and not out[inner_ball].any()
    assert out[inner_thick].all() == artery and out[inner_thick].any() == artery
    assert central_artery(thick, tube_map, costal, sp, min_tube=0.25) == artery
    # without the depth below the costal pleura, only large vessels are read (this one is
    # too short and too little tube-like to be one)
    assert not vessel_branches(comp, tube_map, sp, 6.0, 0.6, 0.4)[inner_thick].any()


def test_a_round_central_piece_is_no_artery_however_tube_like_it_reads():
    """A mass at the hilum as thick as an artery reads tube-like to the Hessian in places (a
    22 mm ball: 0.44 on the whole); it is round, not a tube, and stays solid. The same volume
    stretched into a tube 2.5 times longer than thick is an artery."""
    sp = (2.0, 1.0, 1.0)
    z, y, x = np.indices((30, 60, 120)).astype(float)
    z, y, x = (z - 15) * sp[0], y - 30, x - 60
    tube_map = np.full(z.shape, 0.44, np.float32)
    costal = np.full(z.shape, 50.0, np.float32)
    ball = z ** 2 + y ** 2 + x ** 2 <= 9.0 ** 2
    rod = (z ** 2 + y ** 2 <= 6.0 ** 2) & (np.abs(x) <= 20.0)
    assert not central_artery(ball, tube_map, costal, sp, min_tube=0.25)
    assert central_artery(rod, tube_map, costal, sp, min_tube=0.25)


def test_the_elongation_of_a_component_one_slice_cuts_is_read_in_the_slice():
    """A disk in one slice is flat across it, as a vessel is long: in 3D its principal axes
    make any flat piece elongated. Read in its slice, a disk is not; a tube lying in the
    slice is."""
    sp = (5.0, 0.5, 0.5)
    y, x = np.mgrid[-40:40, -60:60] * 0.5
    disk = (y ** 2 + x ** 2 <= 8.0 ** 2)[None]
    tube = ((np.abs(y) <= 3.0) & (np.abs(x) <= 25.0))[None]
    core = np.full(disk.shape, 0.7, np.float32)  # tube-like to the Hessian everywhere
    assert large_vessel(disk, core, sp, 0.6)  # the flat piece, read in 3D
    assert not large_vessel(disk, core, sp, 0.6, in_plane=True)
    assert large_vessel(tube, core, sp, 0.6, in_plane=True)


def test_a_solid_region_laced_with_walls_is_not_consolidation():
    """Thin walls run among the voxels of a net that partial volume thickened, not among those
    of a homogeneous consolidation: the component whose voxels lie (median) among at least
    the given share of thin structures is picked out, whole."""
    solid = np.zeros((4, 40, 40), bool)
    solid[:, 5:15, 5:15] = True      # consolidation
    solid[:, 25:35, 25:35] = True    # a net thickened by partial volume
    share = np.zeros(solid.shape, np.float32)
    share[:, 25:35, 25:35] = 0.3
    share[:, 5:15, 5:7] = 0.3        # thin structures along one edge of the consolidation
    laced = laced_with_walls(solid, share, 0.2)
    assert laced[:, 25:35, 25:35].all()
    assert not laced[:, 5:15, 5:15].any()
    assert not laced_with_walls(solid, share, 0.35).any()


def _box(shape=(13, 80, 80), spacing=(2.0, 0.8, 0.8)):
    z, y, x = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)],
                          indexing="ij")
    return z, y, x, spacing


def _tube_along_x(y, z, radius):
    return y ** 2 + z ** 2 <= radius ** 2


@pytest.mark.parametrize("vessel_mm, tube, passes", [
    (2.5, 0.4, True),    # the thickest stretch of a vessel that runs on both sides
    (2.5, 0.1, False),   # the same shape, but a blob to the Hessian: a nodule on a vessel
    (1.0, 0.4, False),   # a piece much wider than the vessel through it: a nodule
])
def test_a_vessel_leaves_its_thickest_stretch_on_two_sides_about_as_thick(vessel_mm, tube, passes):
    z, y, x, sp = _box()
    piece = z ** 2 + y ** 2 + x ** 2 <= 4.5 ** 2
    firm = piece | _tube_along_x(y, z, vessel_mm)
    assert vessel_passing_through(piece, firm, np.full(piece.shape, tube, np.float32), sp,
                                  min_tube=0.25) == passes


def test_a_vessel_that_ends_in_the_piece_leaves_it_once():
    z, y, x, sp = _box()
    piece = z ** 2 + y ** 2 + x ** 2 <= 4.5 ** 2
    firm = piece | (_tube_along_x(y, z, 2.5) & (x < 0))
    tube = np.full(piece.shape, 0.4, np.float32)
    assert not vessel_passing_through(piece, firm, tube, sp, min_tube=0.25)
