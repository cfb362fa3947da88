import numpy as np
import pytest

from diffseglung_core.labels import Tissue
from diffseglung_core.segment.edits import (
    HandEdits,
    changed_voxels,
    confirmed_voxels,
    correction_mask,
    merge_prediction,
)


def test_hand_edits_survive_remaps():
    auto = np.array([[1, 1, 2, 2]], dtype=np.uint8)
    edits = HandEdits(auto)
    shown = auto.copy()
    shown[0, 0] = Tissue.FIBROSIS  # painted by hand
    new = edits.remap(shown, np.array([[4, 4, 2, 2]]))
    assert new.tolist() == [[3, 4, 2, 2]] and new.dtype == np.uint8
    # painted to what a later mapping gives: still an edit, kept on the next remap
    new[0, 1] = 5
    again = edits.remap(new, np.array([[1, 5, 1, 1]]))
    assert again.tolist() == [[3, 5, 1, 1]]
    third = edits.remap(again, np.array([[2, 2, 2, 2]]))
    assert third.tolist() == [[3, 5, 2, 2]]
    assert edits.n_edited == 2
    with pytest.raises(ValueError):
        edits.update(np.zeros((2, 2)))


def test_correction_mask_joins_confirmed_slices_and_painted_voxels():
    lung = np.zeros((4, 5, 6), np.uint8)
    lung[:, 1:4, 1:5] = 1
    edited = np.zeros(lung.shape, bool)
    edited[0, 0, 0] = True  # painted outside the lung: kept whole
    mask = correction_mask(lung.shape, [2], edited=edited, within=lung)
    assert mask.dtype == bool and mask.shape == lung.shape
    assert np.array_equal(mask[2], lung[2] > 0)
    assert mask[0, 0, 0] and mask.sum() == 12 + 1
    assert correction_mask(lung.shape, [1, 3]).sum() == 2 * 30  # no limit: whole slices
    assert not correction_mask(lung.shape).any()
    with pytest.raises(IndexError):
        correction_mask(lung.shape, [4])
    with pytest.raises(ValueError):
        correction_mask(lung.shape, edited=np.zeros((4, 5, 5), bool))


def test_confirmed_voxels_are_checked_slices_in_the_lung_and_painted_voxels():
    auto = np.zeros((3, 4, 4), np.uint8)
    auto[:, 1:3, 1:3] = 1
    edits = HandEdits(auto)
    shown = auto.copy()
    shown[0, 0, 0] = 4  # painted outside the lung
    confirmed = confirmed_voxels(shown, [2], edits=edits, lung=auto)
    assert confirmed[0, 0, 0] and confirmed[2].sum() == 4 and confirmed.sum() == 5
    assert edits.n_edited == 1


def test_merge_prediction_keeps_confirmed_slices_and_painted_voxels():
    auto = np.ones((3, 2, 2), np.uint8)
    edits = HandEdits(auto)
    shown = auto.copy()
    shown[1, 0, 0] = 3  # painted
    prediction = np.full(auto.shape, 2, np.uint8)
    out, n_kept = merge_prediction(shown, prediction, [0], edits=edits)
    assert (out[0] == 1).all() and out[1, 0, 0] == 3 and (out[2] == 2).all()
    assert n_kept == 4 + 1 and out.dtype == shown.dtype
    plain, n = merge_prediction(shown, prediction, [2])
    assert (plain[2] == 1).all() and plain[1, 0, 0] == 2 and n == 4
    where, values = changed_voxels(shown, out)
    changed = shown.copy()
    changed[where] = values
    assert np.array_equal(changed, out) and values.dtype == shown.dtype
