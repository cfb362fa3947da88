"""Voxel-wise feature maps: windows, grid, interpolation, progress and cancellation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffseglung_core.errors import Cancelled, NoLungFoundError
from diffseglung_core.radiomics import FEATURE_NAMES, batched_features, feature_maps, window_for_spacing
from diffseglung_core.radiomics.maps import PAD_HU
from diffseglung_core.radiomics.names import group_of

F950 = FEATURE_NAMES.index("hu_FractionBelow950")
MEAN = FEATURE_NAMES.index("firstorder_Mean")


def _volume(shape=(12, 28, 30), seed=0):
    """Lung box: 'emphysema' (-980 HU) on the left half, 'healthy' (-850 HU) on the right."""
    rng = np.random.default_rng(seed)
    hu = np.full(shape, 40.0) + rng.normal(0, 10, shape)
    lung = np.zeros(shape, bool)
    lung[1:-1, 3:-3, 3:-3] = True
    half = shape[2] // 2
    hu[:, :, :half] = np.where(lung[:, :, :half], -980 + rng.normal(0, 15, lung[:, :, :half].shape),
                               hu[:, :, :half])
    hu[:, :, half:] = np.where(lung[:, :, half:], -850 + rng.normal(0, 40, lung[:, :, half:].shape),
                               hu[:, :, half:])
    return hu.astype(np.float32), lung


def test_grid_values_are_window_features():
    hu, lung = _volume()
    fm = feature_maps(hu, lung, window=(3, 5, 5), stride=(2, 3, 4), batch_size=7)
    assert fm.values.shape == (34,) + fm.valid.shape and fm.values.dtype == np.float32
    assert fm.origin == (1, 1, 2) and fm.stride == (2, 3, 4)
    assert np.array_equal(fm.valid, lung[1::2, 1::3, 2::4])
    assert np.isnan(fm.values[:, ~fm.valid]).all() and np.isfinite(fm.values[:, fm.valid]).all()
    padded = np.pad(hu, ((1, 1), (2, 2), (2, 2)), constant_values=PAD_HU)
    lpad = np.pad(lung, ((1, 1), (2, 2), (2, 2)))
    for g in np.argwhere(fm.valid)[::5]:
        z, y, x = g * fm.stride + fm.origin
        win = torch.from_numpy(padded[z:z + 3, y:y + 5, x:x + 5][None])
        m = torch.from_numpy(lpad[z:z + 3, y:y + 5, x:x + 5][None])
        expected = batched_features(win, m, dtype=torch.float32)[0].numpy()
        np.testing.assert_allclose(fm.values[(slice(None),) + tuple(g)], expected, rtol=1e-5, atol=1e-5)



def test_a_map_of_some_groups_holds_their_columns():
    hu, lung = _volume()
    full = feature_maps(hu, lung, window=5, stride=3)
    part = feature_maps(hu, lung, window=5, stride=3, groups=("firstorder", "glcm"))
    cols = [FEATURE_NAMES.index(n) for n in part.names]
    assert part.names == tuple(n for n in FEATURE_NAMES if group_of(n) in ("firstorder", "glcm"))
    assert part.values.shape == (len(cols),) + full.valid.shape
    np.testing.assert_array_equal(part.values, full.values[cols])
    np.testing.assert_array_equal(part.at(lung), full.at(lung)[:, cols])


def test_window_is_cut_to_a_thin_volume():
    """A window longer than twice an axis covers all of it from any centre: cut to 2n - 1.

    One slice: the window is in-plane only (no plane of padding across slices),
    and each grid value is the features of the 2D window about its centre.
    """
    hu, lung = _volume(shape=(3, 28, 30))
    one = (slice(1, 2), slice(None), slice(None))
    fm = feature_maps(hu[one], lung[one], window=(7, 5, 5), stride=3)
    assert fm.window == (1, 5, 5)
    padded = np.pad(hu[1], 2, constant_values=PAD_HU)
    lpad = np.pad(lung[1], 2)
    for g in np.argwhere(fm.valid)[::4]:
        _, y, x = g * fm.stride + fm.origin
        win = torch.from_numpy(padded[y:y + 5, x:x + 5][None])
        m = torch.from_numpy(lpad[y:y + 5, x:x + 5][None])
        expected = batched_features(win, m, dtype=torch.float32)[0].numpy()
        np.testing.assert_allclose(fm.values[(slice(None),) + tuple(g)], expected, rtol=1e-5, atol=1e-5)
    assert feature_maps(hu, lung, window=(9, 5, 5), stride=3).window == (5, 5, 5)


def test_at_points_is_trilinear_interpolation_of_the_filled_grid():
    from scipy import ndimage as ndi

    hu, lung = _volume()
    fm = feature_maps(hu, lung, window=5, stride=(2, 3, 3))
    rng = np.random.default_rng(0)
    # fractional points in no order, some beyond the grid (edge values), some on shared planes
    pts = rng.uniform(-3, np.array(hu.shape) + 3, size=(500, 3))
    pts[:100, 0] = np.round(pts[:100, 0])
    got = fm.at_points(pts)
    coords = ((pts - fm.origin) / np.asarray(fm.stride)).T
    want = np.stack([ndi.map_coordinates(f.astype(np.float64), coords, order=1, mode="nearest")
                     for f in fm.filled()], axis=1)
    # float32 sums in another order: agreement to float32 precision of each feature's range
    err = np.abs(got - want).max(axis=0) / np.maximum(np.abs(want).max(axis=0), 1e-6)
    assert err.max() < 1e-5, err


def test_at_a_mask_is_at_points_of_its_voxels():
    """The slice-by-slice interpolation equals the point-wise one, on a slab of slices too."""
    hu, lung = _volume()
    fm = feature_maps(hu, lung, window=5, stride=(2, 3, 4))
    rng = np.random.default_rng(1)
    mask = lung & (rng.random(lung.shape) < 0.7)
    mask[0, 0, 0] = mask[-1, -1, -1] = True  # beyond the grid: its edge values
    mask[4] = False  # an empty slice
    got = fm.at(mask)
    assert got.shape == (mask.sum(), 34) and got.dtype == np.float32
    scale = np.maximum(np.abs(fm.values[:, fm.valid]).max(axis=1), 1e-6)
    assert (np.abs(got - fm.at_points(np.argwhere(mask))) / scale).max() < 1e-6
    slab = fm.at(mask[3:9], start=3)
    np.testing.assert_array_equal(slab, got[mask[:3].sum():mask[:9].sum()])
    with pytest.raises(ValueError, match="does not fit"):
        fm.at(mask[3:9], start=8)


def test_at_interpolates_and_separates_regions():
    hu, lung = _volume()
    fm = feature_maps(hu, lung, window=5, stride=3)
    # at grid points: the grid values
    pts = np.argwhere(fm.valid) * fm.stride + fm.origin
    np.testing.assert_allclose(fm.at_points(pts), fm.values[:, fm.valid].T, rtol=1e-6)
    # half-way between two valid neighbours along x: their mean
    g = np.argwhere(fm.valid[:, :, :-1] & fm.valid[:, :, 1:])[0]
    p = g * fm.stride + fm.origin + np.array([0, 0, fm.stride[2] / 2])
    mid = 0.5 * (fm.values[(slice(None),) + tuple(g)] + fm.values[(slice(None),) + tuple(g + [0, 0, 1])])
    np.testing.assert_allclose(fm.at_points(p[None])[0], mid, rtol=1e-5, atol=1e-6)
    # every lung voxel gets finite features; the emphysema half is darker
    v = fm.at(lung)
    assert v.shape == (lung.sum(), 34) and np.isfinite(v).all()
    x = np.argwhere(lung)[:, 2]
    left, right = x < 10, x > 20
    assert v[left, F950].mean() > 0.8 and v[right, F950].mean() < 0.1
    assert v[left, MEAN].mean() < v[right, MEAN].mean() - 100
    full = fm.upsample(lung)
    assert full.shape == (34,) + hu.shape and np.all(full[:, ~lung] == 0)


def test_progress_and_cancel():
    hu, lung = _volume()
    calls = []
    feature_maps(hu, lung, window=3, stride=4, batch_size=10, progress=lambda *a: calls.append(a))
    assert calls[0][0] == 0 and calls[-1][0] == calls[-1][1] > 1
    assert all(stage == "radiomic maps" for *_, stage in calls)

    def cancel(done, total, stage):
        if done >= 1:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        feature_maps(hu, lung, window=3, stride=4, batch_size=10, progress=cancel)


def test_empty_lung_and_bad_arguments():
    hu, lung = _volume()
    with pytest.raises(NoLungFoundError):
        feature_maps(hu, np.zeros_like(lung))
    with pytest.raises(ValueError):
        feature_maps(hu, lung[:-1])
    with pytest.raises(ValueError):
        feature_maps(hu, lung, stride=0)


def test_window_for_spacing():
    assert window_for_spacing((5.0, 0.7, 0.7), size_mm=7) == (3, 11, 11)
    assert window_for_spacing((1.0, 1.0, 1.0), size_mm=8) == (9, 9, 9)


def test_memory_budget_splits_chunks_without_changing_values(monkeypatch):
    from diffseglung_core.radiomics import maps

    hu, lung = _volume()
    full = feature_maps(hu, lung, window=3, stride=3, batch_size=64, dtype=torch.float64)
    monkeypatch.setattr(maps, "GLCM_BUDGET_BYTES", 1)  # one window per sub-batch
    split = feature_maps(hu, lung, window=3, stride=3, batch_size=64, dtype=torch.float64)
    # float64 features stored as float32: equal up to float32 rounding
    np.testing.assert_allclose(split.values, full.values, rtol=1e-6, atol=1e-9)
