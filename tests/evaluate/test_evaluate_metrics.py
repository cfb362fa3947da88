import numpy as np
import pytest

from diffseglung_core.evaluate.baselines import density_mask_labels
from diffseglung_core.evaluate.metrics import (
    dice,
    edge_band,
    evaluate_labels,
    hd95,
    surface_dice,
    volume_error_ml,
)
from diffseglung_core.labels import Tissue


def test_dice_of_known_overlaps():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[:, :5] = True
    b[:, 2:7] = True
    assert dice(a, b) == pytest.approx(2 * 30 / 100)
    assert dice(a, a) == 1.0
    assert np.isnan(dice(np.zeros(3, bool), np.zeros(3, bool)))


def test_hd95_is_in_mm_and_spacing_aware():
    a = np.zeros((20, 30, 30), bool)
    a[5:15, 5:15, 5:15] = True
    b = np.roll(a, 3, axis=2)  # shifted by 3 voxels along x
    assert hd95(a, b, (1.0, 1.0, 1.0)) == pytest.approx(3.0)
    assert hd95(a, b, (1.0, 1.0, 2.0)) == pytest.approx(6.0)
    assert hd95(a, a, (1.0, 1.0, 1.0)) == 0.0
    assert hd95(a, np.zeros_like(a), (1, 1, 1)) == float("inf")


def test_surface_dice_forgives_a_boundary_shift_within_the_tolerance_only():
    a = np.zeros((20, 30, 30), bool)
    a[5:15, 5:15, 5:15] = True
    b = np.roll(a, 1, axis=2)  # the boundary one voxel off along x
    assert dice(a, b) == pytest.approx(0.9)
    assert surface_dice(a, b, (1.0, 1.0, 1.0), 1.0) == 1.0
    assert surface_dice(a, b, (1.0, 1.0, 1.0), 0.5) < 0.9
    # mm, not voxels: the same shift is 2 mm with 2 mm voxels along x
    assert surface_dice(a, b, (1.0, 1.0, 2.0), 1.5) < 0.9
    assert surface_dice(a, b, (1.0, 1.0, 2.0), 2.0) == 1.0


def test_surface_dice_counts_a_wrong_region_by_its_surface():
    """A second cube, far off, doubles nothing of the right one: 2 of 3 surfaces agree."""
    gt = np.zeros((20, 40, 40), bool)
    gt[5:15, 5:15, 5:15] = True
    pred = gt | np.roll(gt, 20, axis=2)
    assert surface_dice(pred, gt, (1.0, 1.0, 1.0), 2.0) == pytest.approx(2 / 3)
    assert np.isnan(surface_dice(np.zeros_like(gt), np.zeros_like(gt), (1, 1, 1), 1.0))
    assert surface_dice(gt, np.zeros_like(gt), (1, 1, 1), 1.0) == 0.0
    with pytest.raises(ValueError, match="tolerance_mm"):
        surface_dice(gt, gt, (1, 1, 1), -1.0)


def test_edge_band_is_in_plane_and_as_wide_as_asked():
    labels = np.zeros((3, 9, 12), np.uint8)
    labels[:, :, 6:] = 2
    labels[1, 3:6, 2:4] = 1  # a 3 x 2 patch in the middle slice only
    one = edge_band(labels, 1)
    assert np.flatnonzero(one[0].any(axis=0)).tolist() == [5, 6]  # both sides of the 0|2 line
    assert np.flatnonzero(edge_band(labels, 2)[0].any(axis=0)).tolist() == [4, 5, 6, 7]
    # the patch's band: the patch and one voxel round it (diagonals too), in its slice only
    assert one[1, 2:7, 1:5].all() and not one[1, 7, 1:5].any() and not one[1, 2:7, 0].any()
    assert not one[0, 2:7, 1:5].any()
    with pytest.raises(ValueError, match="voxels"):
        edge_band(labels, 0)


def test_volume_error_and_table():
    gt = np.zeros((4, 10, 10), np.uint8)
    gt[:, :, :5] = 1
    gt[:, :, 5:] = 2
    pred = gt.copy()
    pred[:, :, 4] = 2
    assert volume_error_ml(pred == 2, gt == 2, (2.0, 1.0, 1.0)) == pytest.approx(0.08)
    rows = {r["label"]: r for r in evaluate_labels(pred, gt, (2.0, 1.0, 1.0))}
    assert rows[1]["dice"] == pytest.approx(2 * 160 / 360)
    assert np.isnan(rows[3]["dice"]) and rows[2]["hd95_mm"] == pytest.approx(1.0)
    # the default tolerance is one in-plane voxel: the one-column shift is within it
    assert rows[2]["tolerance_mm"] == 1.0 and rows[2]["surface_dice"] == 1.0
    assert np.isnan(rows[3]["surface_dice"])
    strict = {r["label"]: r for r in evaluate_labels(pred, gt, (2.0, 1.0, 1.0), tolerance_mm=0.0)}
    assert strict[2]["surface_dice"] < 1.0


def test_density_mask_thresholds():
    hu = np.array([[[-1000, -920, -800, -500, 0, 100]]], np.float32)
    lung = np.ones_like(hu, bool)
    lung[0, 0, 5] = False
    lab = density_mask_labels(hu, lung)
    assert lab.tolist() == [[[Tissue.EMPHYSEMA, Tissue.HEALTHY, Tissue.HEALTHY, Tissue.GGO,
                              Tissue.CONSOLIDATION, 0]]]
