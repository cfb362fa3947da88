"""Local means over the parenchyma and the healthy level of each slice (segment.parenchyma)."""

from __future__ import annotations

import numpy as np
import pytest

from diffseglung_core.segment.parenchyma import (
    gaussian_sigmas,
    healthy_levels,
    histogram_mode,
    lightest_within_slope,
    masked_mean,
)


def test_lightest_within_slope_bounds_each_level_by_the_others():
    level = np.array([[-860.0, -855.0, np.nan, -600.0],
                      [-850.0, -640.0, -845.0, -840.0]])
    out = lightest_within_slope(level, (5.0, 15.0), max_slope=1.0, tolerance=10.0)
    # every level within 10 HU + 1 HU/mm (city-block mm) of every other stays
    assert out[0, 0] == -860.0 and out[0, 1] == -855.0 and out[1, 0] == -850.0
    assert np.isnan(out[0, 2])
    # a jump of 200 HU over 15 mm is bounded by its lighter neighbours
    assert out[1, 1] == pytest.approx(min(-860.0 + 10 + 20, -855.0 + 10 + 5, -850.0 + 10 + 15))
    assert out[0, 3] == pytest.approx(-840.0 + 10 + 5)
    # against every pair, on a larger random grid
    rng = np.random.default_rng(0)
    level = rng.uniform(-900, -600, (6, 9))
    level[rng.random(level.shape) < 0.2] = np.nan
    out = lightest_within_slope(level, (2.5, 15.0), max_slope=1.0, tolerance=60.0)
    for p in np.ndindex(level.shape):
        if np.isnan(level[p]):
            assert np.isnan(out[p])
            continue
        bound = min(level[q] + 60.0 + 2.5 * abs(p[0] - q[0]) + 15.0 * abs(p[1] - q[1])
                    for q in np.ndindex(level.shape) if np.isfinite(level[q]))
        assert out[p] == pytest.approx(min(level[p], bound))


def test_healthy_levels_are_read_along_the_axis_gravity_runs():
    """A patient lying on the left side has the denser lung on the left (x grows towards the
    patient's left): the levels read along x follow that gradient, and are those read along y
    on the same lung turned a quarter."""
    rng = np.random.default_rng(0)
    shape, sp = (4, 60, 120), (5.0, 1.0, 1.0)
    x = np.arange(shape[2], dtype=np.float32)
    hu = (-900.0 + 0.8 * x)[None, None, :] + rng.normal(0, 10, shape).astype(np.float32)
    par = np.ones(shape, bool)
    level, spread, lowered = healthy_levels(hu, par, sp, axis=2)
    assert level.shape == (4, 1, 120) and lowered.shape == (4, 1, 120) and spread.shape == (4,)
    # the peak of each 15 mm band of columns, interpolated: within 15 HU of the true gradient
    assert np.abs(level[:, 0, 8:-8] - (-900.0 + 0.8 * x[8:-8])).max() < 15.0
    turned, turned_spread, _ = healthy_levels(np.swapaxes(hu, 1, 2), par.swapaxes(1, 2),
                                               (5.0, 1.0, 1.0), axis=1)
    assert np.array_equal(np.swapaxes(turned, 1, 2), level) and np.array_equal(turned_spread, spread)
    # read along y instead, every row holds the whole gradient: one level, far from the ends
    along_y, _, _ = healthy_levels(hu, par, sp, axis=1)
    assert along_y.shape == (4, 60, 1) and np.ptp(along_y) < 30.0


def test_masked_mean_averages_only_the_weighted_voxels():
    """A normalised convolution: what lies outside the weight (a vessel at +40 HU) does not
    leak into the mean of the parenchyma around it, and a uniform field stays uniform."""
    shape, sp = (6, 40, 40), (2.0, 1.0, 1.0)
    lung = np.zeros(shape, bool)
    lung[:, :, :20] = True
    hu = np.where(lung, -850.0, 40.0).astype(np.float32)
    mean, den = masked_mean(hu, lung, sp, 3.0)
    assert mean.dtype == np.float32 and den.shape == shape
    np.testing.assert_allclose(mean[lung], -850.0, atol=1e-3)
    # the local weight is the share of the Gaussian on the lung: 1 deep inside, about 1/2 at its edge
    assert den[:, 20, 2] == pytest.approx(1.0, abs=1e-3) and 0.4 < den[3, 20, 19] < 0.7
    # a second call with the same weight reuses it and gives the same mean
    again, den2 = masked_mean(hu, lung, sp, 3.0, den=den)
    assert den2 is den and np.array_equal(again, mean)
    # a single slice is smoothed in-plane only (no sigma along an axis of one voxel)
    assert gaussian_sigmas(sp, 3.0, (1, 40, 40)) == [0.0, 3.0, 3.0]


def test_histogram_mode_is_the_commonest_density_not_the_mean():
    rng = np.random.default_rng(0)
    healthy = rng.normal(-860.0, 25.0, 4000)
    ground_glass = rng.normal(-650.0, 30.0, 1500)
    v = np.concatenate([healthy, ground_glass])
    assert abs(histogram_mode(v) - (-860.0)) <= 10.0
    assert np.mean(v) > -810.0  # the mean is pulled towards the ground glass, the mode is not
