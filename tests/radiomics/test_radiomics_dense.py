"""Features of every lung voxel's window from box sums: the same values as window by window."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffseglung_core.errors import Cancelled
from diffseglung_core.radiomics import FEATURE_NAMES, batched_features, feature_maps
from diffseglung_core.radiomics.dense import dense_applies, dense_features, window_counts
from diffseglung_core.radiomics.maps import PAD_HU

GROUPS = ("firstorder", "glcm")
NAMES = [n for n in FEATURE_NAMES if n.startswith(("firstorder_", "hu_", "glcm_"))]


def _scan(shape=(8, 18, 19), seed=1):
    """Whole HU: lung-like noise, a denser block (a lesion), a lung mask with holes."""
    rng = np.random.default_rng(seed)
    hu = np.round(rng.normal(-820, 140, shape))
    hu[2:6, 4:10, 5:12] += 650
    lung = rng.random(shape) < 0.75
    lung[0, :4] = False
    return hu.astype(np.float32), lung


def _cancel_after_two(done, total, what):
    if done >= 2:
        raise Cancelled()


def _windows(hu, lung, window):
    """Every lung voxel's window and its lung voxels, gathered as feature_maps pads them."""
    half = [w // 2 for w in window]
    pads = [(h, w - 1 - h) for h, w in zip(half, window)]
    hp, lp = np.pad(hu, pads, constant_values=PAD_HU), np.pad(lung, pads)
    sl = [tuple(slice(c, c + w) for c, w in zip(p, window)) for p in np.argwhere(lung)]
    return (torch.from_numpy(np.stack([hp[s] for s in sl]).astype(np.float64)),
            torch.from_numpy(np.stack([lp[s] for s in sl])))


@pytest.mark.parametrize("window", [(5, 7, 7), (4, 6, 5), (9, 9, 9), (1, 3, 3)])
def test_box_sums_give_the_features_of_each_window(window):
    hu, lung = _scan()
    ours = dense_features(hu, lung, window, dtype=torch.float64)
    win, msk = _windows(hu, lung, window)
    theirs = batched_features(win, msk, dtype=torch.float64, groups=GROUPS).float().numpy()
    assert ours.shape == theirs.shape == (lung.sum(), len(NAMES))
    for k, name in enumerate(NAMES):
        np.testing.assert_allclose(ours[:, k], theirs[:, k], rtol=2e-6, atol=1e-5, err_msg=name)


def test_one_group_and_tiles_smaller_than_the_scan(monkeypatch):
    import diffseglung_core.radiomics.dense as dense

    hu, lung = _scan((6, 30, 26), seed=2)
    calls = []
    whole = dense_features(hu, lung, (3, 5, 5), progress=lambda *a: calls.append(a))
    assert calls[0][0] == 0 and calls[-1][0] == calls[-1][1] == len(calls) - 1
    monkeypatch.setattr(dense, "TILE_BUDGET_BYTES", 4 * 3 * 700 * 30)  # tiles of a few voxels a side
    calls.clear()
    tiled = dense_features(hu, lung, (3, 5, 5), progress=lambda *a: calls.append(a))
    assert calls[-1][0] == calls[-1][1] == len(calls) - 1 > 10
    np.testing.assert_array_equal(tiled, whole)
    with pytest.raises(Cancelled):
        dense_features(hu, lung, (3, 5, 5), progress=_cancel_after_two)
    glcm = dense_features(hu, lung, (3, 5, 5), groups=("glcm",))
    np.testing.assert_array_equal(glcm, whole[:, [k for k, n in enumerate(NAMES) if n.startswith("glcm")]])


def test_feature_maps_at_stride_one_use_them_and_agree_with_window_by_window():
    hu, lung = _scan()
    fast = feature_maps(hu, lung, window=5, stride=1, groups=GROUPS, dtype=torch.float64)
    slow = feature_maps(hu, lung, window=5, stride=1, groups=GROUPS, dtype=torch.float64,
                        box_sums=False)
    assert fast.names == slow.names == tuple(NAMES)
    np.testing.assert_array_equal(fast.valid, lung)
    np.testing.assert_allclose(fast.values, slow.values, rtol=2e-6, atol=1e-5)
    # at stride 1 the features of the lung voxels are read, not interpolated: the same values
    np.testing.assert_allclose(fast.at(lung), fast.at_points(np.argwhere(lung)), rtol=1e-6, atol=1e-6)
    assert fast.at(lung[2:5], start=2).shape == (lung[2:5].sum(), len(NAMES))


def test_they_apply_to_whole_hu_and_the_first_two_groups_only():
    hu, lung = _scan()
    assert dense_applies(hu, lung, GROUPS)
    assert not dense_applies(hu, lung, ("firstorder", "lbp"))
    assert not dense_applies(hu + 0.5, lung, GROUPS)
    wide = hu.copy()
    wide[lung] = np.where(np.arange(lung.sum()) % 2, -1000.0, 3000.0)  # 161 gray levels
    assert not dense_applies(wide, lung, GROUPS)


def test_window_counts_count_codes_in_clipped_boxes():
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 4, (5, 6, 7))
    valid = rng.random(codes.shape) < 0.7
    centres = np.argwhere(np.ones(codes.shape, bool))
    lo, hi = (-1, -2, 0), (2, 1, 3)
    counts, keys = window_counts(torch.from_numpy(codes), torch.from_numpy(valid), lo, hi,
                                 torch.from_numpy(centres.T.copy()))
    assert keys.tolist() == sorted(set(codes[valid].tolist()))
    for n, p in enumerate(centres[::7]):
        box = tuple(slice(max(c + a, 0), c + b + 1) for c, a, b in zip(p, lo, hi))
        expected = [np.sum((codes[box] == k) & valid[box]) for k in keys.tolist()]
        assert counts[7 * n].tolist() == expected


def test_nearly_uniform_windows_far_from_the_other_values_keep_their_moments():
    # one voxel 1 HU off in air-like lung, and dense tissue elsewhere in the mask: the
    # moments come from sums of powers, which must lose no digits here
    hu = np.full((3, 9, 20), -1000.0, np.float32)
    hu[1, 4, 4] = -999.0
    hu[:, :, 14:] = 60.0 + np.arange(3 * 9 * 6).reshape(3, 9, 6) % 7
    lung = np.ones(hu.shape, bool)
    ours = dense_features(hu, lung, (3, 5, 5), groups=("firstorder",))
    win, msk = _windows(hu, lung, (3, 5, 5))
    theirs = batched_features(win, msk, dtype=torch.float64, groups=("firstorder",)).float().numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
    assert np.abs(ours[:, NAMES.index("firstorder_Kurtosis")]).max() > 10  # the odd voxel is seen
