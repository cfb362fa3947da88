"""Segment, Clusters and Refine widgets end to end on a phantom with known labels (Xvfb)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from qtpy.QtCore import QTimer

from diffseglung_core.labels import Tissue
from diffseglung_core.segment import segment_volume
from diffseglung_core.segment.changes import remap_change
from napari_diffseglung._layers import RESULT_KEY, image_layer_data
from napari_diffseglung._sample_data import phantom_small
from napari_diffseglung._widgets.clusters import ClustersWidget
from napari_diffseglung._widgets.export import ExportWidget
from napari_diffseglung._widgets.segment import EDITS_KEY, SegmentWidget

pytestmark = pytest.mark.gui
phantom_mod = pytest.importorskip("diffseglung_core.phantom")

SHAPE = (16, 64, 64)


@pytest.fixture(scope="module")
def phantom():
    return phantom_mod.make_phantom(SHAPE, seed=0)


def _wait(qtbot, job, timeout=60_000):
    qtbot.waitUntil(lambda: job.ended, timeout=timeout)


def _segment(viewer, qtbot, phantom, features="density"):
    data, kwargs, _ = image_layer_data(phantom.volume, "phantom")
    viewer.add_image(data, **kwargs)
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.features_combo.setCurrentText(features)
    widget.k_spin.setValue(5)
    job = widget.run()
    return widget, job


def test_segment_end_to_end_on_phantom(make_napari_viewer, qtbot, phantom):
    viewer = make_napari_viewer()
    widget, job = _segment(viewer, qtbot, phantom, features="radiomics")
    assert widget.cancel_btn.isEnabled() and not widget.run_btn.isEnabled()
    _wait(qtbot, job)
    assert job.outcome == "done", widget.status.text()
    layer = viewer.layers["phantom segmentation"]
    result = layer.metadata[RESULT_KEY]
    # same answer as the engine called directly (no algorithm in the widget)
    direct = segment_volume(phantom.volume, features="radiomics", k=5)
    assert np.array_equal(layer.data, direct.labels)
    # sanity against the ground truth (the engine's accuracy is tested with the engine):
    # the lung is found and most of it is labelled healthy where the truth is healthy
    truth = phantom.labels
    found, lung = layer.data > 0, truth > 0
    assert 2 * np.count_nonzero(found & lung) / (found.sum() + lung.sum()) > 0.9
    healthy = truth == Tissue.HEALTHY
    assert np.mean(layer.data[healthy] == Tissue.HEALTHY) > 0.6
    # one named colour per class
    assert np.allclose(layer.colormap.map(np.array([2]))[0][:3], (1.0, 0.85, 0.2), atol=0.01)
    assert list(layer.features["class"])[2] == "ground-glass opacity"
    # cluster maps of each clustering as hidden layers, and the computed lung mask
    names = [f"phantom clusters {key}" for key in result.clusters]
    assert {"final", "radiomics"} <= set(result.clusters)
    for name in names:
        assert not viewer.layers[name].visible
        assert viewer.layers[name].data.max() == 5
    assert not viewer.layers["phantom lung mask"].visible
    assert widget.run_btn.isEnabled() and not widget.cancel_btn.isEnabled()
    # what the lung mask computed here noted (the phantom's bowel gas) is shown under "done"
    notes = list(result.lung_segmentation.notes)
    assert notes and widget.status.text().splitlines()[1:] == notes


def test_cancel_stops_the_run_and_gui_stays_responsive(make_napari_viewer, qtbot, phantom):
    viewer = make_napari_viewer()
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(5)
    widget, job = _segment(viewer, qtbot, phantom, features="radiomics")
    # the event loop runs while the worker works: timer ticks and progress updates arrive
    qtbot.waitUntil(lambda: widget.bar.maximum() > 0 and widget.bar.value() > 0, timeout=30_000)
    assert job.worker.is_running
    seen = len(ticks)
    qtbot.waitUntil(lambda: len(ticks) > seen + 3, timeout=5_000)
    assert job.worker.is_running
    widget.cancel()
    _wait(qtbot, job)
    timer.stop()
    assert job.outcome == "cancelled" and widget.status.text() == "cancelled"
    assert "phantom segmentation" not in viewer.layers
    assert widget.run_btn.isEnabled()


def test_engine_errors_are_notifications(make_napari_viewer, qtbot, phantom):
    viewer = make_napari_viewer()
    data, kwargs, _ = image_layer_data(phantom.volume, "phantom")
    viewer.add_image(data, **kwargs)
    viewer.add_labels(np.zeros(SHAPE, np.uint8), name="empty mask")
    widget = SegmentWidget(viewer)
    widget.mask_combo.set_layer(viewer.layers["empty mask"])
    job = widget.run()
    _wait(qtbot, job)
    assert job.outcome == "error" and "lung voxels" in widget.status.text()


def test_remap_keeps_hand_edits_and_resets(make_napari_viewer, qtbot, phantom):
    viewer = make_napari_viewer()
    widget, job = _segment(viewer, qtbot, phantom)
    clusters = ClustersWidget(viewer)
    _wait(qtbot, job)
    layer = viewer.layers["phantom segmentation"]
    assert clusters.result_combo.layer() is layer
    result = layer.metadata[RESULT_KEY]
    assert clusters.table.rowCount() == 5
    assert [r["voxels"] for r in clusters.rows] == [s["n_voxels"] for s in result.mapping.stats]
    # each row's tooltip says what its voxels were labelled (the evidence judges them one by one)
    for i, row in enumerate(clusters.rows):
        if row["voxels"]:
            assert "its voxels labelled " in clusters.table.item(i, 0).toolTip()
    # a hand edit: paint a healthy voxel as fibrosis
    healthy = np.argwhere(layer.data == Tissue.HEALTHY)
    edit = tuple(int(i) for i in healthy[len(healthy) // 2])
    layer.brush_size = 1
    layer.paint(edit, Tissue.FIBROSIS, refresh=True)
    assert layer.data[edit] == Tissue.FIBROSIS
    assert np.count_nonzero(layer.data != result.labels) == 1
    # remap a cluster from its dropdown: the first (cluster, label) change that moves voxels
    before = np.array(layer.data, copy=True)
    target, new_label, change = _effective_remap(result)
    box = clusters.label_box(target)
    box.setCurrentIndex(box.findData(int(new_label)))
    _wait(qtbot, clusters.job)
    after = np.array(layer.data, copy=True)
    assert after[edit] == Tissue.FIBROSIS  # never lose an edit
    # everywhere else: the argmax label of every voxel whose argmax the remap changes
    expected = before.copy()
    expected.reshape(-1)[np.flatnonzero(result.lung > 0)[change.rows]] = change.after
    expected[edit] = Tissue.FIBROSIS
    assert np.array_equal(after, expected)
    assert np.count_nonzero(after != before) > 50
    assert f"{np.count_nonzero(after != before)} voxels changed" in clusters.status.text()
    assert clusters.status.text().startswith("done")
    assert layer.metadata[RESULT_KEY].mapping.labels[target] == new_label
    assert layer.metadata[EDITS_KEY].n_edited == 1
    # Ctrl+Z restores the labels before the remap exactly, and the table follows
    layer.undo()
    assert np.array_equal(layer.data, before)
    assert clusters.label_box(target).currentData() == result.mapping.labels[target]
    layer.redo()
    assert np.array_equal(layer.data, after)
    assert clusters.label_box(target).currentData() == new_label
    # reset to the engine's labels and mapping: the automatic labels come back, the edit stays
    job = clusters.reset()
    _wait(qtbot, job)
    expected = result.labels.copy()
    expected[edit] = Tissue.FIBROSIS
    assert np.array_equal(layer.data, expected)
    assert clusters.label_box(target).currentData() == result.mapping.labels[target]
    assert layer.metadata[EDITS_KEY].n_edited == 1
    # a new run (other K) replaces the result but keeps the hand edit
    widget.k_spin.setValue(4)
    job = widget.run()
    _wait(qtbot, job)
    layer = viewer.layers["phantom segmentation"]
    rerun = layer.metadata[RESULT_KEY]
    assert rerun.mapping.n_clusters == 4 and clusters.table.rowCount() == 4
    assert layer.data[edit] == Tissue.FIBROSIS
    others = np.ones(SHAPE, bool)
    others[edit] = False
    assert np.array_equal(layer.data[others], rerun.labels[others])


def _effective_remap(result):
    for cluster, current in enumerate(result.mapping.labels):
        for label in (Tissue.GGO, Tissue.CONSOLIDATION, Tissue.FIBROSIS, Tissue.HEALTHY):
            if label == current:
                continue
            change = remap_change(result, result.mapping.with_label(cluster, label))
            if change.n_changed > 50:
                return cluster, label, change
    raise AssertionError("no cluster remap changes the labels")


def test_refine_preview_and_apply(make_napari_viewer, qtbot, phantom):
    viewer = make_napari_viewer()
    widget, job = _segment(viewer, qtbot, phantom)
    _wait(qtbot, job)
    layer = viewer.layers["phantom segmentation"]
    export = ExportWidget(viewer)
    export.labels_combo.set_layer(layer)
    z = SHAPE[0] // 2
    viewer.dims.set_current_step(0, z)
    assert export.refine_options().kappa is None  # "auto": the engine's noise-adaptive default
    # with the run's settings the preview slice is the result's slice (up to small
    # components cut by the preview's slab)
    preview = export.preview()
    lung = layer.data[z] > 0
    assert np.array_equal(preview > 0, lung)
    assert np.count_nonzero(preview != layer.data[z]) <= 0.01 * lung.sum()
    assert "voxels differ from the result" in export.status.text()
    # refinement off: the raw argmax is noisier (more voxels differ), shown in its own layer
    export.refine_box.setChecked(False)
    raw = export.preview()
    assert np.count_nonzero(raw != layer.data[z]) > 0
    assert np.array_equal(viewer.layers["phantom segmentation refine preview"].data[z], raw)
    # applying to the volume replaces the labels with the unrefined argmax
    before = np.array(layer.data, copy=True)
    job = export.apply_refine()
    _wait(qtbot, job)
    assert np.array_equal(layer.data[z], raw)
    assert layer.metadata[RESULT_KEY].params["refine"] is False
    assert export.status.text().startswith("done") and "preview" not in " ".join(
        lay.name for lay in viewer.layers)
    layer.undo()  # one undo step
    assert np.array_equal(layer.data, before)


def test_sample_data_has_ground_truth():
    image, truth = phantom_small()
    assert image[2] == "image" and truth[2] == "labels"
    assert image[0].shape == truth[0].shape and set(np.unique(truth[0])) == set(range(6))
    assert image[1]["contrast_limits"] == (-1350.0, 150.0)


def test_segment_shows_the_caution_of_a_dense_healthy_level(make_napari_viewer, qtbot):
    """Lungs dense throughout (the phantom's lungs 200 HU denser): under "done" the status
    says that ground glass may be labelled healthy."""
    from diffseglung_core.volume import CTVolume

    ph = phantom_mod.make_phantom((16, 128, 128), seed=0)  # bands of lung wide enough for a level
    dense = SimpleNamespace(volume=CTVolume(hu=ph.volume.hu + np.float32(200.0) * (ph.lung > 0),
                                            spacing=ph.volume.spacing, affine=ph.volume.affine))
    widget, job = _segment(make_napari_viewer(), qtbot, dense)
    _wait(qtbot, job)
    assert job.outcome == "done", widget.status.text()
    assert "ground glass may be labelled healthy" in widget.status.text()
