"""Learn from corrections: confirmed slices and painted voxels teach a head that labels the rest (Xvfb)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffseglung_core.segment import segment_volume
from diffseglung_core.segment.edits import HandEdits, correction_mask
from diffseglung_core.segment.head import extract_head_features, predict_head
from diffseglung_core.segment.learn import learn_from_corrections
from napari_diffseglung._layers import RESULT_KEY, image_layer_data, labels_layer_data
from napari_diffseglung._widgets.corrections import CorrectionsWidget
from napari_diffseglung._widgets.segment import EDITS_KEY

pytestmark = pytest.mark.gui
phantom_mod = pytest.importorskip("diffseglung_core.phantom")

STEPS = 25


@pytest.fixture(scope="module")
def phantom():
    return phantom_mod.make_phantom((8, 48, 48), seed=0)


@pytest.fixture
def one_thread():
    """Same float order in the worker and in the test (and faster on two busy cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _setup(make_napari_viewer, phantom):
    viewer = make_napari_viewer()
    volume = phantom.volume
    data, kwargs, _ = image_layer_data(volume, "phantom")
    viewer.add_image(data, **kwargs)
    result = segment_volume(volume, features="density", k=5, refine=False)
    labels = np.array(result.labels, copy=True)
    data, kwargs, _ = labels_layer_data(labels, volume, "phantom segmentation", metadata={
        RESULT_KEY: result, EDITS_KEY: HandEdits(labels)})
    layer = viewer.add_labels(data, **kwargs)
    widget = CorrectionsWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.steps_spin.setValue(STEPS)
    widget.device_combo.setCurrentText("cpu")
    return viewer, widget, layer


def _accuracy(pred, truth, where):
    return float(np.mean(pred[where] == truth[where]))


def _mean_dice(pred, truth, where):
    dice = []
    for c in range(1, 6):
        a, b = (pred == c) & where, (truth == c) & where
        dice.append(2.0 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1))
    return float(np.mean(dice))


def test_learn_keeps_checked_voxels_and_relabels_the_rest(make_napari_viewer, qtbot, phantom, one_thread,
                                                          monkeypatch):
    import napari_diffseglung._widgets.corrections as corrections

    calls = []

    def recorded(*args, **kwargs):
        out = learn_from_corrections(*args, **kwargs)
        calls.append((args, kwargs, out))
        return out

    monkeypatch.setattr(corrections, "learn_from_corrections", recorded)
    viewer, widget, layer = _setup(make_napari_viewer, phantom)
    truth, lung = phantom.labels, phantom.lung > 0
    assert widget.run() is None and "first" in widget.status.text()  # nothing checked yet

    # the user paints the truth onto two slices and confirms them while looking at them
    checked = [2, 5]
    for z in checked:
        layer.data[z] = truth[z]
        viewer.dims.set_point(0, layer.data_to_world((z, 0, 0))[0])
        assert widget.confirm_slice() == z
    assert widget.slices() == checked and "2, 5" in widget.confirmed_label.text()
    # and one stroke elsewhere, deliberately wrong: a hand edit is never overwritten
    yy, xx = np.argwhere(lung[4])[0]
    stroke = (4, int(yy), int(xx))
    layer.data[stroke] = 4 if truth[stroke] != 4 else 3
    painted = int(layer.data[stroke])
    before = np.array(layer.data, copy=True)

    job = widget.run()
    assert widget.cancel_btn.isEnabled() and not widget.learn_btn.isEnabled()
    qtbot.waitUntil(lambda: job.ended, timeout=60_000)
    assert job.outcome == "done", widget.status.text()
    after = np.asarray(layer.data)

    # (a) checked voxels unchanged
    assert np.array_equal(after[checked], truth[checked])
    assert after[stroke] == painted
    # trained on exactly the confirmed slices (within the lung) and the painted voxels
    (hu, labels, confirmed, found), kwargs, (prediction, head) = calls[0]
    assert kwargs["model"] is None and kwargs["steps"] == STEPS  # the shipped model
    np.testing.assert_array_equal(labels, before)
    np.testing.assert_array_equal(found, np.asarray(layer.metadata[RESULT_KEY].lung) > 0)
    edited = np.zeros(truth.shape, bool)
    edited[stroke] = True
    for z in checked:  # the painted slices differ from the automatic result
        edited[z] |= before[z] != layer.metadata[RESULT_KEY].labels[z]
    np.testing.assert_array_equal(
        confirmed, correction_mask(truth.shape, checked, edited=edited, within=found | (before > 0)))
    # (b) everything else is the trained head's prediction, as the core computes it directly
    features = extract_head_features(hu, None, lung_mask=found, device="cpu")
    direct = predict_head(head, features, found, device="cpu")
    rest = ~correction_mask(truth.shape, checked)
    rest[stroke] = False
    assert np.array_equal(after[rest], direct[rest])
    assert np.array_equal(prediction, direct)
    assert not after[~found & rest].any()
    # and it moved toward the truth on the slices nobody checked (mean Dice of classes 1..5;
    # density clustering misses emphysema, which the two corrected slices show)
    others = rest & lung
    dice_before, dice_after = _mean_dice(before, truth, others), _mean_dice(after, truth, others)
    assert dice_after > dice_before, (dice_after, dice_before)

    # one undoable step
    layer.undo()
    assert np.array_equal(layer.data, before)
    layer.redo()
    assert np.array_equal(layer.data, after)
    assert widget.learn_btn.isEnabled() and not widget.cancel_btn.isEnabled()


def test_cancel_leaves_the_result_untouched(make_napari_viewer, qtbot, phantom, one_thread):
    viewer, widget, layer = _setup(make_napari_viewer, phantom)
    widget.steps_spin.setValue(5000)
    widget.confirm_slice(3)
    before = np.array(layer.data, copy=True)
    job = widget.run()
    qtbot.waitUntil(lambda: widget.bar.maximum() > 0, timeout=30_000)  # it is running
    widget.cancel()
    qtbot.waitUntil(lambda: job.ended, timeout=30_000)
    assert job.outcome == "cancelled"
    assert np.array_equal(layer.data, before)
    assert widget.learn_btn.isEnabled() and not widget.cancel_btn.isEnabled()
    widget.clear_confirmed()
    assert widget.slices() == []
