"""Every bad input gives one ScanReadError line that names the file and the problem."""

import warnings

import numpy as np
import pytest

from diffseglung_core.errors import GridMismatchError, ScanReadError
from diffseglung_core.io import list_dicom_series, read_mask, read_scan

from io_builders import axcodes_affine, ct_raw, unique_hu, write_dicom_series, write_nifti, write_nrrd_lps

LAS = axcodes_affine("LAS", (0.8, 0.8, 2.0))


def _fails(path, match, **kwargs):
    with pytest.raises(ScanReadError, match=match) as info:
        read_scan(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    return message


def test_missing_path_and_unknown_type(tmp_path):
    _fails(tmp_path / "nope.nii.gz", "no such file")
    (tmp_path / "notes.txt").write_text("hello")
    _fails(tmp_path / "notes.txt", "not a supported image")


def test_not_an_image_with_an_image_ending(tmp_path):
    (tmp_path / "fake.nii").write_text("this is not a NIfTI file at all " * 20)
    _fails(tmp_path / "fake.nii", "cannot read this nifti file")
    (tmp_path / "fake.nrrd").write_text("hello\n")
    _fails(tmp_path / "fake.nrrd", "cannot read this nrrd file")
    (tmp_path / "fake.zip").write_text("not a zip")
    _fails(tmp_path / "fake.zip", "not a readable zip")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no DICOM here")
    _fails(tmp_path / "empty", "no DICOM images")


def test_truncated_files(tmp_path):
    data = unique_hu((8, 9, 10))
    good = write_nifti(tmp_path / "ct.nii.gz", data, LAS).read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(good[: len(good) // 2])
    _fails(tmp_path / "cut.nii.gz", "corrupt or truncated")
    raw = write_nifti(tmp_path / "ct.nii", data, LAS).read_bytes()
    (tmp_path / "cut.nii").write_bytes(raw[:400])
    _fails(tmp_path / "cut.nii", "corrupt or truncated")
    nrrd_bytes = write_nrrd_lps(tmp_path / "ct.nrrd", data, np.eye(3), (0, 0, 0)).read_bytes()
    (tmp_path / "cut.nrrd").write_bytes(nrrd_bytes[:-100])
    _fails(tmp_path / "cut.nrrd", "corrupt or truncated")


def test_truncated_dicom_slice_is_named(tmp_path):
    files = write_dicom_series(tmp_path / "s", ct_raw(4, 8, 8))
    files[2].write_bytes(files[2].read_bytes()[:-40])
    _fails(tmp_path / "s", f"pixels of {files[2].name}")


@pytest.mark.parametrize("modality, word", [("MR", "an MR"), ("PT", "a PET")])
def test_mr_and_pet_dicom_are_refused(tmp_path, modality, word):
    write_dicom_series(tmp_path / "s", ct_raw(), modality=modality)
    _fails(tmp_path / "s", f"{word} series")


def test_raw_scanner_units_say_how_to_fix(tmp_path):
    raw = (unique_hu((6, 7, 8)).astype(np.int32) + 1024).astype(np.int16)  # 24..2524, no rescale
    path = write_nifti(tmp_path / "raw.nii.gz", raw, LAS)
    _fails(path, r"raw scanner units .*1024.*--hu-offset")
    vol = read_scan(path, hu_offset=-1024)
    assert vol.hu.min() == raw.min() - 1024


def test_pet_like_and_normalised_values(tmp_path):
    suv = np.random.default_rng(1).uniform(0, 12, (5, 6, 7)).astype(np.float32)
    _fails(write_nifti(tmp_path / "suv.nii.gz", suv, LAS), "not CT in HU")
    norm = (unique_hu((5, 6, 7)) + 1000) / 700 - 1
    _fails(write_nifti(tmp_path / "norm.nii.gz", norm.astype(np.float32), LAS), "normalised")
    labels = np.random.default_rng(2).integers(0, 6, (5, 6, 7)).astype(np.uint8)
    _fails(write_nifti(tmp_path / "lab.nii.gz", labels, LAS), "label map")


def test_nan_values(tmp_path):
    hu = unique_hu((5, 6, 7)).astype(np.float32)
    hu[2, 3, 4] = np.nan
    _fails(write_nifti(tmp_path / "nan.nii.gz", hu, LAS), "1 NaN values")


def test_missing_spacing(tmp_path):
    data = unique_hu((5, 6, 7))
    path = write_nifti(tmp_path / "nospacing.nii", data, None)
    stored = bytearray(path.read_bytes())
    stored[80:92] = bytes(12)  # pixdim[1:4] = 0 (nibabel's writer refuses to store that)
    path.write_bytes(bytes(stored))
    _fails(path, "missing voxel spacing.*--spacing")
    vol = read_scan(path, spacing=(3.0, 0.9, 0.8))
    assert vol.spacing == (3.0, 0.9, 0.8)

    import nrrd
    nrrd.write(str(tmp_path / "nospacing.nrrd"), data)
    _fails(tmp_path / "nospacing.nrrd", "missing voxel spacing")
    np.savez(tmp_path / "seed.npz", ct=(data + 1000.0) / 700 - 1)
    _fails(tmp_path / "seed.npz", "missing voxel spacing")


def test_4d_and_2d_files(tmp_path):
    four = np.stack([unique_hu((5, 6, 7)), unique_hu((5, 6, 7), seed=1)], axis=-1)
    _fails(write_nifti(tmp_path / "4d.nii.gz", four, np.eye(4)), "4D image of shape")
    one_volume = write_nifti(tmp_path / "4d1.nii.gz", four[..., :1], np.eye(4))
    assert read_scan(one_volume).shape == (7, 6, 5)
    _fails(write_nifti(tmp_path / "2d.nii.gz", unique_hu((6, 7)), np.eye(4)),
           "2D image.*3D volume is required")


def test_dicom_missing_slice(tmp_path):
    raw = ct_raw(6, 6, 5)
    keep = [0, 1, 2, 4, 5]
    write_dicom_series(tmp_path / "s", raw[keep], positions_z=2.5 * np.array(keep))
    _fails(tmp_path / "s", r"missing slices: 1 slice\(s\) missing .* 2.5 mm")


def test_dicom_uneven_spacing(tmp_path):
    write_dicom_series(tmp_path / "s", ct_raw(5, 6, 5), positions_z=[0, 2.5, 5.0, 6.0, 8.5])
    _fails(tmp_path / "s", "uneven slice spacing")


def test_dicom_mixed_series(tmp_path):
    write_dicom_series(tmp_path / "s", ct_raw(3, 6, 5))
    write_dicom_series(tmp_path / "s", ct_raw(2, 8, 8), positions_z=[10.0, 12.5], names=["b0.dcm", "b1.dcm"])
    _fails(tmp_path / "s", r"mixed series: slices of sizes \[\(6, 5\), \(8, 8\)\]")
    write_dicom_series(tmp_path / "d", ct_raw(3, 6, 5), positions_z=[0, 2.5, 2.5])
    _fails(tmp_path / "d", "mixed series: 1 slices share a position")


def test_several_series_pick_the_largest_ct_and_say_so(tmp_path):
    write_dicom_series(tmp_path / "s", ct_raw(3), series_uid="1.2.3.1", description="scout",
                       series_number=1)
    write_dicom_series(tmp_path / "s", ct_raw(5, seed=2), series_uid="1.2.3.2", description="lung",
                       series_number=2)
    write_dicom_series(tmp_path / "s", ct_raw(7), series_uid="1.2.3.3", description="t1",
                       series_number=3, modality="MR")
    assert [s.n_slices for s in list_dicom_series(tmp_path / "s")] == [7, 5, 3]
    with pytest.warns(UserWarning, match="3 DICOM series; reading series 2 'lung'"):
        vol = read_scan(tmp_path / "s")
    assert vol.shape == (5, 6, 5) and "lung" in vol.source.description
    assert "scout" in vol.source.description
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_scan(tmp_path / "s", series="1.2.3.1").shape == (3, 6, 5)
        assert read_scan(tmp_path / "s", series="scout").shape == (3, 6, 5)
    _fails(tmp_path / "s", "an MR series", series="3")
    _fails(tmp_path / "s", "no DICOM series '9'", series="9")


def test_npz_ct_in_hu_is_refused(tmp_path):
    np.savez(tmp_path / "hu.npz", ct=unique_hu((4, 5, 6)).astype(np.float32), spacing=[1, 1, 1])
    _fails(tmp_path / "hu.npz", "not on the model scale")


def test_tiff_needs_spacing_and_refuses_colour(tmp_path):
    import tifffile
    tifffile.imwrite(tmp_path / "slice.tif", unique_hu((6, 7)))
    _fails(tmp_path / "slice.tif", "TIFF stores no voxel size")
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((6, 7, 3), np.uint8), photometric="rgb")
    _fails(tmp_path / "rgb.tif", "colour image", spacing=(1, 1, 1))


def test_read_mask_grid_and_value_checks(tmp_path):
    data = unique_hu((5, 6, 7))
    vol = read_scan(write_nifti(tmp_path / "ct.nii.gz", data, LAS))
    mask = (data > 0).astype(np.uint8)
    assert read_mask(write_nifti(tmp_path / "m.nii.gz", mask, LAS), vol).sum() == mask.sum()
    with pytest.raises(GridMismatchError, match=r"mask grid \(7, 6, 4\) .* scan's \(7, 6, 5\)"):
        read_mask(write_nifti(tmp_path / "small.nii.gz", mask[:4], LAS), vol)
    other = axcodes_affine("LAS", (0.8, 0.8, 3.0))
    with pytest.raises(GridMismatchError, match=r"at \(3, 0.8, 0.8\) mm .* at \(2, 0.8, 0.8\) mm"):
        read_mask(write_nifti(tmp_path / "thick.nii.gz", mask, other), vol)
    shifted = LAS.copy()
    shifted[:3, 3] = (10.0, 0, 0)
    with pytest.raises(GridMismatchError, match="position differs"):
        read_mask(write_nifti(tmp_path / "shifted.nii.gz", mask, shifted), vol)
    with pytest.raises(ScanReadError, match="not all integers"):
        read_mask(write_nifti(tmp_path / "prob.nii.gz", mask * np.float32(0.5), LAS), vol)
    with pytest.raises(ScanReadError, match="negative"):
        read_mask(write_nifti(tmp_path / "neg.nii.gz", mask.astype(np.int16) - 1, LAS), vol)
