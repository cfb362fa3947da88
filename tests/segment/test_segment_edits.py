import numpy as np
import pytest

from diffseglung_core.labels import Tissue
from diffseglung_core.viewer_support import (VOLUME_KEY, HandEdits, describe_volume, layer_geometry,
                                             reference_volume, refine_slice)
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


def test_refine_slice_matches_full_refinement():
    from diffseglung_core.segment.refine import refine_labels

    rng = np.random.default_rng(0)
    shape = (20, 16, 16)
    hu = rng.normal(-850, 40, shape).astype(np.float32)
    hu[:, 4:9, 4:9] = -400  # a dense lesion
    lung = np.zeros(shape, np.uint8)
    lung[1:19, 2:14, 2:14] = 1
    n = int(lung.sum())
    probs = rng.random((n, 6)).astype(np.float32)
    probs[:, 0] = 0
    probs[hu[lung > 0] > -600, 2] += 1.0  # the lesion leans to GGO
    probs /= probs.sum(1, keepdims=True)
    options = {"kappa": 60.0, "iterations": 3, "min_component_mm3": 0.0}
    full = refine_labels(probs, lung, hu, (1.0, 1.0, 1.0), **options)
    for z in (0, 1, 10, 18):
        assert np.array_equal(refine_slice(probs, lung, hu, (1.0, 1.0, 1.0), z, **options), full[z])
    assert (full[10][5:8, 5:8] == 2).all()
    with pytest.raises(IndexError):
        refine_slice(probs, lung, hu, (1.0, 1.0, 1.0), 20)


def test_correction_mask_joins_confirmed_slices_and_painted_voxels():
    from diffseglung_core.viewer_support import correction_mask

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
