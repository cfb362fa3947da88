"""Reorientation to (z, y, x) = (S, P, L) and the way back to the file's grid."""

import nibabel as nib
import nrrd
import numpy as np
import pytest

from diffseglung_core.io import read_mask, read_scan, write_labels
from diffseglung_core.io.orientation import axcodes

from io_builders import axcodes_affine, unique_hu, write_nifti, write_nrrd_lps

SPACING = (0.7, 0.9, 2.5)  # per stored axis
_AXIS_OF = {"S": "z", "I": "z", "A": "y", "P": "y", "R": "x", "L": "x"}


def _world(affine, index):
    return (affine @ np.append(index, 1.0))[:3]


def _assert_same_voxels_in_world(vol, native, native_affine):
    """Every canonical voxel lies where the same value lies in the stored array."""
    for value in native.ravel()[::7]:
        (n_idx,) = np.argwhere(native == value)
        (c_idx,) = np.argwhere(vol.hu == value)
        np.testing.assert_allclose(_world(vol.affine, c_idx), _world(native_affine, n_idx), atol=1e-6)


@pytest.mark.parametrize("codes", ["RAS", "LPS", "LAS", "PSL", "IRA"])
def test_nifti_orientations_read_canonical_and_round_trip(tmp_path, codes):
    data = unique_hu((5, 6, 7))
    affine = axcodes_affine(codes, SPACING, origin=(12.0, -30.0, 7.5))
    path = write_nifti(tmp_path / f"{codes}.nii.gz", data, affine)

    vol = read_scan(path)

    assert vol.source.orientation == codes
    assert axcodes(vol.affine) == "SPL"
    assert vol.source.native_shape == data.shape
    step = {_AXIS_OF[code]: s for code, s in zip(codes, SPACING)}
    assert vol.spacing == pytest.approx((step["z"], step["y"], step["x"]))
    _assert_same_voxels_in_world(vol, data, affine)
    np.testing.assert_array_equal(vol.to_native(vol.hu), data)

    labels = (vol.hu > 0).astype(np.uint8) + (vol.hu > 900)
    out = write_labels(tmp_path / f"{codes}-labels.nii.gz", labels, vol)
    written = nib.load(str(out))
    np.testing.assert_allclose(written.affine, affine, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(written.dataobj), (data > 0).astype(np.uint8) + (data > 900))
    np.testing.assert_array_equal(read_mask(out, vol), labels)


def test_nrrd_lps_reads_canonical_and_labels_keep_its_header(tmp_path):
    data = unique_hu((6, 5, 4))  # stored x, y, z
    directions = np.diag([0.7, 0.8, 2.0])
    origin = (-120.0, -150.0, -300.0)
    path = write_nrrd_lps(tmp_path / "ct.nrrd", data, directions, origin)

    vol = read_scan(path)

    assert vol.source.orientation == "LPS" and vol.shape == (4, 5, 6)
    assert vol.spacing == pytest.approx((2.0, 0.8, 0.7))
    ras = np.eye(4)
    ras[:3, :3] = np.diag([-0.7, -0.8, 2.0])
    ras[:3, 3] = (120.0, 150.0, -300.0)
    _assert_same_voxels_in_world(vol, data, ras)
    # canonical x runs to the patient's left, as the stored x of an LPS file does
    np.testing.assert_array_equal(vol.hu[0, 0, :], data[:, 0, 0])

    labels = (vol.hu > 200).astype(np.uint8)
    out = write_labels(tmp_path / "labels.nrrd", labels, vol)
    written, header = nrrd.read(str(out), index_order="F")
    np.testing.assert_array_equal(written, (data > 200).astype(np.uint8))
    np.testing.assert_allclose(header["space directions"], directions)
    np.testing.assert_allclose(header["space origin"], origin)
    assert header["space"] == "left-posterior-superior"


def test_oblique_nifti_keeps_its_tilt(tmp_path):
    theta = np.deg2rad(10)
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([-0.8, 0.8, 3.0])  # LAS, rotated 10 degrees in plane
    data = unique_hu((4, 5, 3))
    vol = read_scan(write_nifti(tmp_path / "oblique.nii", data, affine))
    assert vol.spacing == pytest.approx((3.0, 0.8, 0.8))
    _assert_same_voxels_in_world(vol, data, affine)
    np.testing.assert_array_equal(vol.to_native(vol.hu), data)
