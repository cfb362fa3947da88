"""Load CT, class volumes and export widgets in a real viewer (Xvfb)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from diffseglung_core.io import read_mask, write_scan
from diffseglung_core.lung import segment_scan_lungs
from diffseglung_core.render import WINDOWS
from napari_diffseglung._layers import VOLUME_KEY, image_layer_data, labels_layer_data
from napari_diffseglung._widgets import _common
from napari_diffseglung._widgets.export import ExportWidget, export_paths
from napari_diffseglung._widgets.load import LoadCTWidget
from napari_diffseglung._widgets.volumes import VolumesWidget

pytestmark = pytest.mark.gui


def _wait_job(qtbot, job, timeout=20_000):
    qtbot.waitUntil(lambda: job.ended, timeout=timeout)


def test_load_widget_reads_scan_shows_info_windows_and_mask(make_napari_viewer, qtbot, tmp_path, chest):
    viewer = make_napari_viewer()
    widget = LoadCTWidget(viewer)
    viewer.window.add_dock_widget(widget)
    path = write_scan(tmp_path / "chest.nii.gz", chest)
    widget.set_path(path)
    assert not widget.series_combo.isEnabled()  # a file has no series to choose
    job = widget.load()
    _wait_job(qtbot, job)
    assert job.outcome == "done"
    layer = viewer.layers["chest"]
    assert layer.data.shape == chest.shape and tuple(layer.contrast_limits) == WINDOWS["lung"]
    assert "12 x 48 x 48" in widget.info.text() and "4 x 2 x 2 mm" in widget.info.text()
    widget.window_combo.setCurrentText("mediastinum")
    assert tuple(layer.contrast_limits) == WINDOWS["mediastinum"]

    job = widget.compute_mask()
    _wait_job(qtbot, job)
    mask_layer = viewer.layers["chest lung mask"]
    expected = segment_scan_lungs(chest).labels
    assert np.array_equal(mask_layer.data, expected) and set(np.unique(expected)) == {0, 1, 2}
    assert np.allclose(mask_layer.scale, layer.scale) and np.allclose(mask_layer.translate, layer.translate)

    # a mask file on the same grid loads as a layer; a wrong grid is an error notification
    from diffseglung_core.io import write_labels

    write_labels(tmp_path / "mask.nii.gz", expected, layer.metadata[VOLUME_KEY])
    viewer.layers.remove(mask_layer)
    widget.load_mask(tmp_path / "mask.nii.gz")
    assert np.array_equal(viewer.layers["chest lung mask"].data, expected)


def test_load_widget_reports_unreadable_file_without_crashing(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    widget = LoadCTWidget(viewer)
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a nifti at all")
    widget.set_path(bad)
    job = widget.load()
    _wait_job(qtbot, job)
    assert job.outcome == "error" and "broken.nii.gz" in widget.status.text()
    assert len(viewer.layers) == 0 and widget.load_btn.isEnabled()


def test_load_widget_lists_dicom_series(make_napari_viewer, qtbot, a0001_dicom):
    viewer = make_napari_viewer()
    widget = LoadCTWidget(viewer)
    widget.set_path(a0001_dicom)
    assert widget.series_combo.count() == 1 and "64 slices" in widget.series_combo.itemText(0)


def _labels_on(viewer, chest, labels):
    data, kwargs, _ = image_layer_data(chest, "chest")
    viewer.add_image(data, **kwargs)
    data, kwargs, _ = labels_layer_data(labels, chest, "labels")
    return viewer.add_labels(data, **kwargs)


def test_volumes_widget_follows_painting(make_napari_viewer, qtbot, chest):
    viewer = make_napari_viewer()
    labels = np.zeros(chest.shape, np.uint8)
    labels[2:4] = 1
    layer = _labels_on(viewer, chest, labels)
    widget = VolumesWidget(viewer)
    rows = {r["label"]: r for r in widget.rows}
    voxel_ml = np.prod(chest.spacing) / 1000
    assert rows[1]["volume_ml"] == pytest.approx(2 * 48 * 48 * voxel_ml) and rows[1]["percent_of_lung"] == 100
    assert widget.table.rowCount() == 5 and widget.table.item(0, 0).text() == "healthy"
    layer.paint((3, 10, 10), 4, refresh=True)  # a hand edit to emphysema
    qtbot.waitUntil(lambda: {r["label"]: r for r in widget.rows}[4]["voxels"] > 0, timeout=5000)
    assert {r["label"]: r for r in widget.rows}[4]["percent_of_lung"] > 0


def test_export_writes_files_and_asks_before_overwriting(make_napari_viewer, qtbot, tmp_path, chest,
                                                         monkeypatch):
    viewer = make_napari_viewer()
    labels = np.zeros(chest.shape, np.uint8)
    labels[2:6, 10:30, 8:20] = 1
    labels[3, 12:16, 10:14] = 4
    _labels_on(viewer, chest, labels)
    widget = ExportWidget(viewer)
    widget.stem_edit.setText(str(tmp_path / "case"))
    assert not widget.want["dicom_seg"].isEnabled()  # the CT was not read from DICOM
    written = widget.export()
    paths = {k: p for k, p in export_paths(tmp_path / "case").items() if k != "dicom_seg"}
    assert sorted(written) == sorted(paths.values())
    assert widget.status.text().startswith("done: wrote")
    assert np.array_equal(read_mask(paths["labels"], chest), labels)
    assert np.allclose(nib.load(paths["labels"]).affine, chest.affine)
    report = json.loads(paths["report"].read_text())
    classes = {c["label"]: c for c in report["classes"]}
    assert classes[4]["voxels"] == 16 and classes[1]["voxels"] == int((labels == 1).sum())
    assert "laa950_percent" in report["density"] and "emphysema" in paths["csv"].read_text()
    assert paths["png"].stat().st_size > 1000

    # existing files: the user says no -> nothing is touched
    asked = []
    monkeypatch.setattr(_common, "confirm_overwrite", lambda parent, text: asked.append(text) or False)
    before = paths["labels"].stat().st_mtime_ns
    viewer.layers["labels"].data = np.zeros_like(labels)
    assert widget.export() == [] and asked and "case_labels.nii.gz" in asked[0]
    assert paths["labels"].stat().st_mtime_ns == before
    # the user says yes -> replaced
    monkeypatch.setattr(_common, "confirm_overwrite", lambda parent, text: True)
    assert len(widget.export()) == 4  # labels, JSON, CSV, PNG
    assert read_mask(paths["labels"], chest).max() == 0
    # NRRD on the same grid
    widget.format_combo.setCurrentText("NRRD")
    viewer.layers["labels"].data = labels
    written = widget.export()
    nrrd = tmp_path / "case_labels.nrrd"
    assert nrrd in written and np.array_equal(read_mask(nrrd, chest), labels)


def test_export_dicom_seg_of_a_dicom_series(make_napari_viewer, qtbot, tmp_path, a0001_dicom):
    pytest.importorskip("highdicom")
    import pydicom

    from diffseglung_core.io import read_scan

    volume = read_scan(a0001_dicom)
    viewer = make_napari_viewer()
    data, kwargs, _ = image_layer_data(volume, "A0001")
    viewer.add_image(data, **kwargs)
    labels = np.zeros(volume.shape, np.uint8)
    labels[30:34, 200:260, 100:160] = 1
    labels[31:33, 220:240, 120:140] = 5
    data, kwargs, _ = labels_layer_data(labels, volume, "labels")
    viewer.add_labels(data, **kwargs)
    widget = ExportWidget(viewer)
    assert widget.want["dicom_seg"].isEnabled()
    for key in ("labels", "report", "png"):
        widget.want[key].setChecked(False)
    widget.stem_edit.setText(str(tmp_path / "a0001"))
    written = widget.export()
    assert written == [tmp_path / "a0001_seg.dcm"], widget.status.text()
    seg = pydicom.dcmread(written[0])
    assert seg.Modality == "SEG" and len(seg.SegmentSequence) == 2


def test_load_widget_sets_how_the_patient_lay(make_napari_viewer, qtbot, tmp_path):
    """A NIfTI file does not store the patient's position: Load CT sets it on the CT layer's
    volume (the lung mask then reports a prone patient's fluid in front), and "as the scan
    says" gives the file's own back."""
    from diffseglung_core.phantom import make_phantom

    ph = make_phantom((48, 128, 128), seed=0, case="effusion_prone")
    viewer = make_napari_viewer()
    widget = LoadCTWidget(viewer)
    widget.set_path(write_scan(tmp_path / "prone.nii.gz", ph.volume))
    _wait_job(qtbot, widget.load())
    layer = viewer.layers["prone"]
    assert "patient_position" not in layer.metadata[VOLUME_KEY].source.metadata
    assert widget.position_combo.currentData() == ""
    widget.position_combo.setCurrentIndex(widget.position_combo.findData("HFP"))
    assert layer.metadata[VOLUME_KEY].source.metadata["patient_position"] == "HFP"
    assert "lay prone" in widget.info.text() and "prone (HFP)" in widget.status.text()
    job = widget.compute_mask()
    _wait_job(qtbot, job)
    prone = viewer.layers["prone lung mask"].data
    assert "pleural effusion" in widget.status.text()  # the lung mask's notes are shown
    from diffseglung_core.io import read_scan

    read = read_scan(tmp_path / "prone.nii.gz")
    seg = segment_scan_lungs(read.with_position("HFP"))
    assert np.array_equal(prone, seg.labels)
    # and what it left out in the pleural space is a layer of its own (1 effusion)
    pleural = viewer.layers["prone pleural space"]
    assert seg.effusion.any() and np.array_equal(pleural.data == 1, seg.effusion)
    assert not np.array_equal(prone, segment_scan_lungs(read).labels)  # supine assumed: another mask
    widget.position_combo.setCurrentIndex(0)
    assert "patient_position" not in layer.metadata[VOLUME_KEY].source.metadata
    assert "not stored" in widget.status.text()
