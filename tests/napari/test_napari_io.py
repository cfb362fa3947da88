"""The npe2 manifest, reader, writer and sample data."""

from __future__ import annotations

import shutil
import zipfile

import nibabel as nib
import numpy as np
import pytest

from diffseglung_core.display import display_geometry as layer_geometry
from diffseglung_core.io import read_mask, write_scan
from napari_diffseglung._layers import VOLUME_KEY
from napari_diffseglung._reader import napari_get_reader
from napari_diffseglung._writer import write_labels


def test_manifest_validates():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-diffseglung")
    manifest.validate_imports()
    assert {w.display_name for w in manifest.contributions.widgets} >= {
        "Load CT", "Segment", "Clusters and label mapping", "Refine and export", "Class volumes"}


@pytest.mark.parametrize("ending", [".nii.gz", ".nii", ".nrrd", ".npz"])
def test_reader_opens_files_in_hu_with_geometry(tmp_path, chest, ending):
    path = write_scan(tmp_path / f"scan{ending}", chest)
    reader = napari_get_reader(str(path))
    assert reader is not None
    [(data, kwargs, kind)] = reader(str(path))
    assert kind == "image"
    assert data.shape == chest.shape
    assert np.abs(data - chest.hu).max() <= 0.51  # HU, rounded to int16 in NIfTI and NRRD
    assert kwargs["contrast_limits"] == (-1350.0, 150.0) and kwargs["colormap"] == "gray"
    scale, translate = layer_geometry(chest)
    assert np.allclose(kwargs["scale"], scale) and np.allclose(kwargs["translate"], translate)
    assert kwargs["metadata"][VOLUME_KEY].source.path == str(path)


def test_reader_declines_what_it_cannot_read(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    assert napari_get_reader(str(tmp_path / "notes.txt")) is None
    assert napari_get_reader(str(tmp_path / "missing.nii.gz")) is None
    assert napari_get_reader([str(tmp_path / "a.nii"), str(tmp_path / "b.nii")]) is None


def test_reader_opens_dicom_folder_and_zip(tmp_path, a0001_dicom):
    files = sorted(p for p in a0001_dicom.rglob("*") if p.is_file())[:6]
    folder = tmp_path / "dicom"
    folder.mkdir()
    with zipfile.ZipFile(tmp_path / "scan.zip", "w") as archive:
        for f in files:
            shutil.copy(f, folder / f.name)
            archive.write(f, f.name)
    for path in (folder, tmp_path / "scan.zip"):
        [(data, kwargs, _)] = napari_get_reader(str(path))(str(path))
        assert data.shape == (6, 512, 512)
        assert data.min() < -900 and data.max() > 100  # HU: air and soft tissue
        assert kwargs["scale"][1] == pytest.approx(kwargs["scale"][2]) and kwargs["scale"][0] > 1


@pytest.mark.parametrize("ending", [".nii.gz", ".nrrd"])
def test_writer_uses_the_source_grid(tmp_path, cip_chest, ending):
    """A label map saved from a layer overlays the source NRRD (LPS) scan."""
    scan = cip_chest / "ct-64.nrrd"
    [(data, kwargs, _)] = napari_get_reader(str(scan))(str(scan))
    volume = kwargs["metadata"][VOLUME_KEY]
    labels = (data < -500).astype(np.uint8)
    labels[:, :, : labels.shape[2] // 2] *= 2
    meta = {"metadata": kwargs["metadata"], "scale": kwargs["scale"], "translate": kwargs["translate"]}
    [written] = write_labels(str(tmp_path / f"labels{ending}"), labels, meta)
    assert np.array_equal(read_mask(written, volume), labels)
    if ending == ".nii.gz":
        assert np.allclose(nib.load(written).affine, volume.native_affine)


def test_writer_without_source_uses_layer_geometry(tmp_path, chest):
    labels = np.zeros(chest.shape, np.uint8)
    labels[3, 4, 5] = 4
    scale, translate = layer_geometry(chest)
    [written] = write_labels(str(tmp_path / "l.nii.gz"), labels, {"scale": scale, "translate": translate})
    back = read_mask(written, chest)
    assert back[3, 4, 5] == 4 and back.sum() == 4
    assert np.allclose(nib.load(written).affine, chest.affine)  # same world placement


@pytest.mark.gui
def test_viewer_opens_scans_through_the_plugin(make_napari_viewer, tmp_path, chest):
    """napari's own open path (File > Open) picks this reader for files and folders."""
    from npe2 import PluginManager

    viewer = make_napari_viewer()
    path = write_scan(tmp_path / "scan.nrrd", chest)
    [layer] = viewer.open(str(path), plugin="napari-diffseglung")
    assert layer.data.shape == chest.shape and np.allclose(layer.scale, chest.spacing)
    readers = PluginManager.instance().iter_compatible_readers([str(tmp_path)])
    assert "napari-diffseglung.get_reader" in {r.command for r in readers}


@pytest.mark.gui
def test_widgets_and_samples_open_from_the_plugin_menus(make_napari_viewer):
    pytest.importorskip("diffseglung_core.phantom")
    viewer = make_napari_viewer()
    for name, cls in (("Load CT", "LoadCTWidget"), ("Segment", "SegmentWidget"),
                      ("Clusters and label mapping", "ClustersWidget"),
                      ("Refine and export", "ExportWidget"), ("Class volumes", "VolumesWidget")):
        _, widget = viewer.window.add_plugin_dock_widget("napari-diffseglung", name)
        assert type(widget).__name__ == cls
    layers = viewer.open_sample("napari-diffseglung", "phantom_small")
    assert [layer._type_string for layer in layers] == ["image", "labels"]
    segment = viewer.window.add_plugin_dock_widget("napari-diffseglung", "Segment")[1]
    assert segment.image_combo.layer().name == layers[0].name == "phantom (small)"
