"""Footprints in mm and openings of the structure evidence (segment/shapes.py)."""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi

from diffseglung_core.segment.shapes import (
    ball_footprint,
    component_ml,
    dilate_parts,
    in_plane_depth,
    opening_mm,
    solidity,
)


def test_dilating_part_by_part_is_the_dilation():
    rng = np.random.default_rng(0)
    mask = rng.random((20, 60, 70)) > 0.995  # scattered parts, some at the array's edges
    mask[0, 0, 0] = mask[-1, -1, -1] = True
    ball = ball_footprint(3.0, (2.0, 0.8, 0.8), mask.shape)
    np.testing.assert_array_equal(dilate_parts(mask, ball), ndi.binary_dilation(mask, ball))


def test_opening_by_distance_maps_is_the_opening_by_a_ball():
    rng = np.random.default_rng(1)
    for _ in range(10):
        shape = tuple(int(v) for v in rng.integers(8, 30, 3))
        mask = ndi.binary_dilation(rng.random(shape) > 0.97, iterations=int(rng.integers(1, 5)))
        sp = tuple(float(v) for v in rng.uniform(0.6, 2.5, 3))
        r = float(rng.uniform(1.0, 5.0))
        want = ndi.binary_opening(mask, ball_footprint(r, sp, (99, 99, 99)), border_value=0)
        np.testing.assert_array_equal(opening_mm(mask, sp, r), want)


def test_a_ball_footprint_is_round_in_mm_on_an_anisotropic_grid():
    ball = ball_footprint(3.0, (2.0, 1.0, 0.5), (99, 99, 99))
    assert ball.shape == (3, 7, 13)
    assert ball[1, 3, 0] and ball[1, 0, 6] and ball[0, 3, 6]
    # no wider than the array along an axis
    assert ball_footprint(3.0, (2.0, 1.0, 0.5), (1, 99, 99)).shape == (1, 7, 13)


def test_component_measures_in_mm():
    sp = (2.0, 1.0, 1.0)
    z, y, x = np.ogrid[:9, :40, :40]
    ball = ((z - 4) * 2.0) ** 2 + (y - 20.0) ** 2 + (x - 20.0) ** 2 <= 8.0 ** 2
    ml = component_ml(ball, sp, cut=False)
    assert abs(ml - 4.0 / 3.0 * np.pi * 0.512) < 0.15  # a ball of 8 mm radius: 2.1 mL
    assert 7.0 <= in_plane_depth(ball, sp) <= 9.0
    assert solidity(ball, sp) > 0.7  # voxel cubes of 2 mm against the hull of their corners
    # a component cut by the scan counts as a ball as wide as its largest cross-section
    slab = ball[3:6]
    assert component_ml(slab, sp, cut=True) > component_ml(slab, sp, cut=False)
    ring = ball & ~(((y - 20.0) ** 2 + (x - 20.0) ** 2) <= 6.0 ** 2)
    assert solidity(ring, sp) < solidity(ball, sp)
