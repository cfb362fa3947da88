import numpy as np
import pytest

from diffseglung_core.labels import Tissue
from diffseglung_core.viewer_support import (VOLUME_KEY, HandEdits, class_volumes, cluster_table,
                                             describe_volume, layer_geometry, reference_volume)
from diffseglung_core.volume import CTVolume, ScanSource


def test_layer_geometry_places_voxels_in_spl_world():
    vol = CTVolume.from_array(np.zeros((4, 5, 6)), spacing=(2.0, 0.5, 0.7), origin=(10.0, -20.0, 30.0))
    scale, translate = layer_geometry(vol)
    assert scale == (2.0, 0.5, 0.7)
    # world (S, P, L) of voxel 0 is (S, -A, -R) of the RAS origin
    assert translate == (30.0, 20.0, -10.0)
    # any voxel: napari world = index * scale + translate equals the affine mapped to (S, P, L)
    idx = np.array([3, 2, 5])
    ras = vol.affine @ np.r_[idx, 1.0]
    assert np.allclose(idx * scale + translate, [ras[2], -ras[1], -ras[0]])


def test_reference_volume_prefers_stored_volume_and_rebuilds_geometry():
    vol = CTVolume.from_array(np.zeros((4, 5, 6)), spacing=(2.0, 0.5, 0.7), origin=(10.0, -20.0, 30.0),
                              source=ScanSource(path="x.nii", format="nifti"))
    assert reference_volume((4, 5, 6), {VOLUME_KEY: vol}) is vol
    scale, translate = layer_geometry(vol)
    rebuilt = reference_volume((4, 5, 6), {VOLUME_KEY: "junk"}, scale=scale, translate=translate)
    assert np.allclose(rebuilt.affine, vol.affine)
    assert rebuilt.hu.strides == (0, 0, 0)  # geometry only, no memory
    # a stored volume of another shape is not used
    other = reference_volume((2, 5, 6), {VOLUME_KEY: vol})
    assert other.shape == (2, 5, 6) and other is not vol


def test_describe_volume_mentions_size_spacing_and_range():
    hu = np.full((3, 4, 5), -1000.0)
    hu[1, 2, 3] = 400
    vol = CTVolume.from_array(hu, spacing=(5.0, 0.8, 0.8),
                              source=ScanSource(format="dicom", orientation="LPS", description="lung 5mm"))
    text = describe_volume(vol)
    assert "3 x 4 x 5" in text and "5 x 0.8 x 0.8 mm" in text
    assert "-1000 .. 400" in text and "LPS" in text and "lung 5mm" in text


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


def test_cluster_table_statistics():
    hu = np.array([[-900.0, -800.0, -100.0, 0.0, 55.0]])
    clusters = np.array([[0, 0, 1, 1, -1]])
    rows = cluster_table(hu, clusters, {0: 4, 1: 2, 2: 5})
    assert [r["cluster"] for r in rows] == [0, 1, 2]
    assert rows[0]["voxels"] == 2 and rows[0]["mean_hu"] == pytest.approx(-850)
    assert rows[0]["p50_hu"] == pytest.approx(-850) and rows[0]["p5_hu"] == pytest.approx(-895)
    assert rows[0]["label_name"] == "emphysema"
    assert rows[1]["p95_hu"] == pytest.approx(-5) and rows[1]["label"] == 2
    assert rows[2]["voxels"] == 0 and np.isnan(rows[2]["mean_hu"])


def test_class_volumes_in_ml_and_percent():
    labels = np.zeros((2, 10, 10), dtype=np.uint8)
    labels[0] = 1
    labels[1, :5] = 4
    rows = {r["label"]: r for r in class_volumes(labels, (2.0, 1.0, 1.0))}
    assert rows[1]["voxels"] == 100 and rows[1]["ml"] == pytest.approx(0.2)
    assert rows[4]["percent"] == pytest.approx(100 * 50 / 150)
    assert rows[2]["voxels"] == 0 and 0 not in rows
    assert all(r["percent"] == 0 for r in class_volumes(np.zeros((2, 2, 2), np.uint8), (1, 1, 1)))
