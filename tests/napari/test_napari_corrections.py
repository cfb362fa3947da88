"""Learn from corrections: three corrected slices teach a head that relabels the rest (Xvfb)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffseglung_core.segment import segment_volume
from diffseglung_core.segment.changes import label_posteriors
from diffseglung_core.segment.edits import correction_mask
from diffseglung_core.segment.learn import learn_from_corrections
from napari_diffseglung._layers import RESULT_KEY, image_layer_data, labels_layer_data
from napari_diffseglung._widgets.corrections import CorrectionsWidget
from napari_diffseglung._widgets.segment import DEFAULT_MAPPING_KEY

pytestmark = pytest.mark.gui
phantom_mod = pytest.importorskip("diffseglung_core.phantom")

STEPS = 150


@pytest.fixture(scope="module")
def phantom():
    return phantom_mod.make_phantom((32, 128, 128), seed=0)


@pytest.fixture(scope="module")
def result(phantom):
    return segment_volume(phantom.volume, lung_mask=phantom.lung, features="density", k=6,
                          refine=False)


@pytest.fixture
def one_thread():
    """Same float order in the worker and in the test (and faster on two busy cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _setup(make_napari_viewer, phantom, result):
    viewer = make_napari_viewer()
    volume = phantom.volume
    data, kwargs, _ = image_layer_data(volume, "phantom")
    viewer.add_image(data, **kwargs)
    data, kwargs, _ = labels_layer_data(np.array(result.labels, copy=True), volume,
                                        "phantom segmentation",
                                        metadata={RESULT_KEY: result, DEFAULT_MAPPING_KEY: result.mapping})
    layer = viewer.add_labels(data, **kwargs)
    widget = CorrectionsWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.steps_spin.setValue(STEPS)
    widget.device_combo.setCurrentText("cpu")
    return viewer, widget, layer


def _class_dice(pred, truth, where, c):
    a, b = (pred == c) & where, (truth == c) & where
    n = np.count_nonzero(a) + np.count_nonzero(b)
    return 2.0 * np.count_nonzero(a & b) / n if n else 1.0


def _mean_dice(pred, truth, where):
    return float(np.mean([_class_dice(pred, truth, where, c) for c in range(1, 6)
                          if ((pred == c) & where).any() or ((truth == c) & where).any()]))


def test_learn_from_three_corrected_slices(make_napari_viewer, qtbot, phantom, result, one_thread,
                                           monkeypatch):
    import napari_diffseglung._widgets.corrections as corrections

    calls = []

    def recorded(*args, **kwargs):
        out = learn_from_corrections(*args, **kwargs)
        calls.append((args, kwargs, out))
        return out

    monkeypatch.setattr(corrections, "learn_from_corrections", recorded)
    viewer, widget, layer = _setup(make_napari_viewer, phantom, result)
    truth, lung = phantom.labels, phantom.lung > 0
    assert widget.run() is None and "first" in widget.status.text()  # nothing checked yet

    # the radiologist asks where to look, corrects that slice and two more, confirming each
    z = widget.go_to_next_slice()
    assert z is not None and int(round(viewer.dims.point[0])) == int(round(layer.data_to_world((z, 0, 0))[0]))
    zs = np.flatnonzero(lung.any(axis=(1, 2)))
    checked = sorted({z, int(zs[len(zs) // 4]), int(zs[3 * len(zs) // 4])})
    for s in checked:
        layer.data[s] = truth[s]
        viewer.dims.set_point(0, layer.data_to_world((s, 0, 0))[0])
        assert widget.confirm_slice() == s
    assert widget.slices() == checked
    assert widget.go_to_next_slice() not in checked
    # and one stroke elsewhere, deliberately wrong: a hand edit is never overwritten
    other = [s for s in zs if s not in checked][len(zs) // 2]
    yy, xx = np.argwhere(lung[other])[0]
    stroke = (int(other), int(yy), int(xx))
    layer.data[stroke] = 4 if truth[stroke] != 4 else 3
    painted = int(layer.data[stroke])
    before = np.array(layer.data, copy=True)

    job = widget.run()
    assert widget.cancel_btn.isEnabled() and not widget.learn_btn.isEnabled()
    qtbot.waitUntil(lambda: job.ended, timeout=120_000)
    assert job.outcome == "done", widget.status.text()
    after = np.array(layer.data, copy=True)
    outcome = widget.outcome
    assert outcome.accepted, outcome.message
    assert widget.status.text().startswith("done") and "held-out" in widget.status.text()

    # (a) checked voxels unchanged
    assert np.array_equal(after[checked], truth[checked])
    assert after[stroke] == painted
    # trained on the confirmed slices (within the lung) and the painted voxels, with the
    # weight-free features and the engine's posteriors, against the automatic labels
    (hu, labels, confirmed, found), kwargs, _ = calls[0]
    assert kwargs["features"] == "weightfree" and kwargs["steps"] == STEPS
    np.testing.assert_array_equal(labels, before)
    np.testing.assert_array_equal(kwargs["auto"], result.labels)
    np.testing.assert_allclose(kwargs["posteriors"], label_posteriors(result))
    assert confirmed[stroke] and confirmed[checked][lung[checked]].all()
    # (b) everything else is the outcome's labels
    rest = ~correction_mask(truth.shape, checked)
    rest[stroke] = False
    assert np.array_equal(after[rest], outcome.labels[rest])
    # and on the slices nobody checked no class lost more than 0.02 of its Dice (the design's
    # guarantee; whether learning gains there is measured in tests/segment/test_segment_learn.py:
    # with the wrong stroke among the confirmed voxels these three slices teach this phantom
    # next to nothing, measured mean 0.8851 -> 0.8847, healthy -0.002, fibrosis +0.000)
    others = rest & lung
    for c in range(1, 6):
        assert _class_dice(after, truth, others, c) >= _class_dice(before, truth, others, c) - 0.02, c
    assert _mean_dice(after, truth, others) > _mean_dice(before, truth, others) - 0.005

    # one undoable step
    layer.undo()
    assert np.array_equal(layer.data, before)
    layer.redo()
    assert np.array_equal(layer.data, after)
    assert widget.learn_btn.isEnabled() and not widget.cancel_btn.isEnabled()
    # the confidence layer
    conf = widget.show_confidence()
    assert conf.data.shape == truth.shape and 0 < conf.data[lung].min() and conf.data.max() <= 1.0
    assert (conf.data[~lung] == 1.0).all()  # clear outside the lung
    assert conf.data[lung].min() < 0.9


def test_nothing_changes_when_the_head_is_not_better(make_napari_viewer, qtbot, phantom, result,
                                                     one_thread):
    viewer, widget, layer = _setup(make_napari_viewer, phantom, result)
    widget.steps_spin.setValue(40)
    zs = np.flatnonzero(phantom.lung.any(axis=(1, 2)))
    for z in (zs[len(zs) // 3], zs[2 * len(zs) // 3]):  # confirmed as they are: nothing to learn
        widget.confirm_slice(int(z))
    before = np.array(layer.data, copy=True)
    job = widget.run()
    qtbot.waitUntil(lambda: job.ended, timeout=120_000)
    assert job.outcome == "done"
    assert np.array_equal(layer.data, before)
    assert "not applied" in widget.status.text()


def test_cancel_leaves_the_result_untouched(make_napari_viewer, qtbot, phantom, result, one_thread):
    viewer, widget, layer = _setup(make_napari_viewer, phantom, result)
    widget.steps_spin.setValue(5000)
    widget.confirm_slice(int(np.flatnonzero(phantom.lung.any(axis=(1, 2)))[5]))
    before = np.array(layer.data, copy=True)
    job = widget.run()
    qtbot.waitUntil(lambda: widget.bar.maximum() > 0, timeout=30_000)  # it is running
    widget.cancel()
    qtbot.waitUntil(lambda: job.ended, timeout=60_000)
    assert job.outcome == "cancelled"
    assert np.array_equal(layer.data, before)
    assert widget.learn_btn.isEnabled() and not widget.cancel_btn.isEnabled()
    widget.clear_confirmed()
    assert widget.slices() == []
