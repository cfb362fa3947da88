"""Reading the real chest CT of ../shared/data (skipped when it is absent)."""

import time
import zipfile

import nrrd
import numpy as np
import pydicom
import pytest

from diffseglung_core.errors import GridMismatchError, ScanReadError
from diffseglung_core.io import list_dicom_series, read_mask, read_scan, write_labels
from diffseglung_core.io.orientation import axcodes


def _spine_is_posterior_and_central(vol):
    """Dense bone (> 300 HU) of the central x band sits behind the body centre."""
    z, y, x = vol.shape
    band = vol.hu[:, :, x // 3: 2 * x // 3]
    body_rows = np.flatnonzero((band > -300).any(axis=(0, 2)))
    bone_rows = np.nonzero(band > 300)[1]
    return bone_rows.mean() > body_rows.mean()


def test_a0001_dicom_series(a0001_dicom):
    calls = []
    start = time.perf_counter()
    vol = read_scan(a0001_dicom, progress=lambda d, t, s: calls.append((d, t)))
    seconds = time.perf_counter() - start

    assert vol.shape == (64, 512, 512)
    assert vol.spacing == pytest.approx((5.0, 0.841796875, 0.841796875))
    assert vol.source.format == "dicom" and vol.source.description == "5mm"
    assert vol.source.metadata["modality"] == "CT"
    assert axcodes(vol.affine) == "SPL" and vol.source.orientation == "SPL"
    # z runs inferior to superior: the first slice is the lowest ImagePositionPatient
    assert vol.affine[2, 3] == pytest.approx(-439.0) and vol.affine[2, 0] == pytest.approx(5.0)
    # HU = stored value - 1024 (RescaleIntercept), checked on the top slice's raw pixels
    top = pydicom.dcmread(str(a0001_dicom / "1-01.dcm"))
    np.testing.assert_array_equal(vol.hu[-1], top.pixel_array.astype(np.float32) - 1024)
    assert vol.hu.min() == -1024 and 1000 < vol.hu.max() < 3100
    assert np.mean(vol.hu < -900) > 0.2  # outside air and lungs
    assert _spine_is_posterior_and_central(vol)
    assert calls[-1][0] == calls[-1][1] and len(calls) >= 64
    assert seconds < 20, f"reading 64 slices took {seconds:.1f} s"


def test_a0001_zip_matches_folder(a0001_dicom, tmp_path):
    files = sorted(a0001_dicom.glob("*.dcm"))[:12]
    archive = tmp_path / "a0001.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for f in files:
            zf.write(f, f"patient/series/{f.name}")
    folder = tmp_path / "part"
    folder.mkdir()
    for f in files:
        (folder / f.name).write_bytes(f.read_bytes())

    from_zip, from_folder = read_scan(archive), read_scan(folder)
    assert from_zip.shape == (12, 512, 512)
    np.testing.assert_array_equal(from_zip.hu, from_folder.hu)
    np.testing.assert_allclose(from_zip.affine, from_folder.affine)
    [info] = list_dicom_series(archive)
    assert info.n_slices == 12 and info.modality == "CT" and info.description == "5mm"


def test_a0001_series_list_and_single_file(a0001_dicom):
    [info] = list_dicom_series(a0001_dicom)
    assert (info.n_slices, info.rows, info.columns, info.number) == (64, 512, 512, "2")
    vol = read_scan(a0001_dicom / "1-10.dcm")  # one file stands for its whole series
    assert vol.shape == (64, 512, 512)


def test_a0001_as_one_enhanced_ct_file_matches_its_slices(a0001_dicom, tmp_path):
    """The scanner's slices converted to one multi-frame Enhanced CT file (as newer scanners
    store a series): the same HU on the same grid, the rescale read from the frames' groups."""
    from io_builders import enhanced_ct

    files = sorted(a0001_dicom.glob("1-2*.dcm"))  # 1-20 .. 1-29
    slices = tmp_path / "slices"
    slices.mkdir()
    for f in files:
        (slices / f.name).write_bytes(f.read_bytes())
    path = enhanced_ct(files, tmp_path / "enhanced.dcm")
    assert "RescaleIntercept" not in pydicom.dcmread(str(path), stop_before_pixels=True)
    single, multi = read_scan(slices), read_scan(path)
    assert multi.shape == single.shape == (len(files), 512, 512)
    np.testing.assert_array_equal(multi.hu, single.hu)
    np.testing.assert_allclose(multi.affine, single.affine, atol=1e-6)
    assert multi.hu.min() == -1024.0


def test_cip_ct64_nrrd(cip_chest):
    vol = read_scan(cip_chest / "ct-64.nrrd")
    raw, header = nrrd.read(str(cip_chest / "ct-64.nrrd"))
    assert raw.shape == (64, 64, 79) and vol.shape == (79, 64, 64)
    assert vol.spacing == pytest.approx((3.98734177, 4.171872, 4.171872))
    assert vol.source.orientation == "LPS"
    np.testing.assert_array_equal(vol.to_native(vol.hu), raw)
    assert -1100 < vol.hu.min() < -900 and vol.hu.max() > 500
    assert _spine_is_posterior_and_central(vol)
    # RAS origin of the canonical grid: LPS origin with x, y negated (x, y axes not flipped here)
    np.testing.assert_allclose(vol.affine[:3, 3], [128.413806, 264.413806, -360.25632911])

    mask = read_mask(cip_chest / "wholeLung-64.nrrd", vol)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    assert np.median(vol.hu[mask > 0]) < -700  # the mask lies on the lungs: grids agree
    lm = read_mask(cip_chest / "lm-64.nrrd", vol)  # CIP's region codes, up to 782
    assert lm.dtype == np.int32 and lm.max() == 782
    both = np.sum((lm > 0) & (mask > 0))
    assert 2 * both / (np.sum(lm > 0) + np.sum(mask > 0)) > 0.98


def test_cip_label_map_written_back_overlays_the_source(cip_chest, tmp_path):
    vol = read_scan(cip_chest / "ct-64.nrrd")
    mask = read_mask(cip_chest / "wholeLung-64.nrrd", vol)
    out = write_labels(tmp_path / "lung.nrrd", mask, vol)
    written, header = nrrd.read(str(out))
    original, original_header = nrrd.read(str(cip_chest / "wholeLung-64.nrrd"))
    np.testing.assert_array_equal(written, original)
    np.testing.assert_allclose(header["space directions"], original_header["space directions"], atol=1e-6)
    np.testing.assert_allclose(header["space origin"], original_header["space origin"], atol=1e-6)


def test_cip_partial_label_map_on_two_slices_is_a_grid_mismatch(cip_chest):
    vol = read_scan(cip_chest / "crop_ct_2slices.nrrd")
    assert vol.shape == (2, 349, 443)
    with pytest.raises(GridMismatchError, match=r"\(96, 349, 443\).*\(2, 349, 443\)"):
        read_mask(cip_chest / "crop_ct_partialLungLabelMap.nrrd", vol)


def test_cip_label_map_is_not_a_scan(cip_chest):
    with pytest.raises(ScanReadError, match="label map"):
        read_scan(cip_chest / "lm-64.nrrd")


def test_cted_tiff_slice_with_given_spacing(cted_open):
    path = cted_open / "slices" / "subject11_top.tiff"
    vol = read_scan(path, spacing=(1.25, 0.78, 0.78))
    assert vol.shape == (1, 512, 512) and vol.spacing == (1.25, 0.78, 0.78)
    assert vol.hu.min() == -3024  # outside the field of view
    assert np.mean((vol.hu > -1000) & (vol.hu < -500)) > 0.05  # lung parenchyma present
    with pytest.raises(ScanReadError, match="--spacing"):
        read_scan(path)
