"""NPZ, TIFF and DICOM details, writers and the info command."""

import json
import os

import nibabel as nib
import numpy as np
import pytest
import tifffile

from diffseglung_core.cli import main
from diffseglung_core.errors import GridMismatchError, OutputExistsError, ScanReadError
from diffseglung_core.io import list_dicom_series, read_mask, read_scan, write_labels, write_scan
from diffseglung_core.volume import CTVolume, normalize_hu

from io_builders import axcodes_affine, ct_raw, enhanced_ct, unique_hu, write_dicom_series, write_nifti


def test_seed_npz_denormalises_ct_and_reads_its_mask(tmp_path):
    hu = unique_hu((4, 5, 6)).astype(np.float32)
    mask = (hu > -200).astype(np.uint8)
    np.savez(tmp_path / "seed.npz", ct=normalize_hu(hu), mask=mask, spacing=np.array([2.0, 0.7, 0.7]))
    vol = read_scan(tmp_path / "seed.npz")
    np.testing.assert_allclose(vol.hu, hu, atol=1e-3)
    assert vol.spacing == (2.0, 0.7, 0.7) and vol.source.format == "npz"
    np.testing.assert_array_equal(read_mask(tmp_path / "seed.npz", vol), mask)
    # spacing from the caller when the file has none
    np.savez(tmp_path / "bare.npz", ct=normalize_hu(hu))
    assert read_scan(tmp_path / "bare.npz", spacing=(1.5, 1, 1)).spacing == (1.5, 1.0, 1.0)


@pytest.mark.parametrize("name", ["scan.nii.gz", "scan.nrrd", "scan.npz"])
def test_write_scan_round_trip(tmp_path, name):
    hu = unique_hu((4, 5, 6)).astype(np.float32) + 0.3
    vol = CTVolume.from_array(hu, spacing=(2.5, 0.8, 0.7), origin=(10, -20, 30))
    back = read_scan(write_scan(tmp_path / name, vol))
    if name.endswith("npz"):  # float on the model scale
        np.testing.assert_allclose(back.hu, hu, atol=1e-3)
    else:  # int16 HU
        np.testing.assert_array_equal(back.hu, np.round(hu))
    assert back.spacing == pytest.approx(vol.spacing)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-4)
    if not name.endswith("npz"):
        assert back.source.native_shape == hu.shape or back.source.native_shape == hu.shape[::-1]


def test_write_scan_nifti_is_int16_on_the_source_grid(tmp_path):
    data = unique_hu((5, 6, 7))
    affine = axcodes_affine("RAS", (0.7, 0.8, 3.0), origin=(1, 2, 3))
    vol = read_scan(write_nifti(tmp_path / "in.nii.gz", data, affine))
    img = nib.load(str(write_scan(tmp_path / "out.nii.gz", vol)))
    assert img.get_data_dtype() == np.int16
    np.testing.assert_array_equal(np.asarray(img.dataobj), data)
    np.testing.assert_allclose(img.affine, affine)


def test_write_labels_never_replaces_unless_asked(tmp_path):
    vol = CTVolume.from_array(unique_hu((3, 4, 5)), spacing=(1, 1, 1))
    labels = np.ones(vol.shape, np.uint8)
    target = tmp_path / "out" / "labels.nii.gz"
    write_labels(target, labels, vol)
    before = target.read_bytes()
    with pytest.raises(OutputExistsError, match="labels.nii.gz: file exists"):
        write_labels(target, labels * 2, vol)
    assert target.read_bytes() == before
    write_labels(target, labels * 2, vol, overwrite=True)
    assert nib.load(str(target)).get_fdata().max() == 2
    assert os.listdir(target.parent) == ["labels.nii.gz"]  # no temporary files left
    with pytest.raises(GridMismatchError, match=r"\(3, 4, 4\)"):
        write_labels(tmp_path / "bad.nii.gz", labels[..., :4], vol)


def test_labels_npz_round_trip_and_intent(tmp_path):
    vol = CTVolume.from_array(unique_hu((3, 4, 5)), spacing=(2, 1, 1))
    labels = np.arange(60).reshape(3, 4, 5) % 6
    np.testing.assert_array_equal(read_mask(write_labels(tmp_path / "l.npz", labels, vol), vol), labels)
    img = nib.load(str(write_labels(tmp_path / "l.nii", labels, vol)))
    assert img.get_data_dtype() == np.uint8 and img.header.get_intent()[0] == "label"


def test_nifti_scl_slope_and_inter_give_hu(tmp_path):
    raw = (unique_hu((4, 5, 6)).astype(np.int32) + 1024).astype(np.uint16)
    img = nib.Nifti1Image(raw, np.eye(4))
    img.header.set_slope_inter(1.0, -1024.0)
    nib.save(img, str(tmp_path / "scaled.nii.gz"))
    vol = read_scan(tmp_path / "scaled.nii.gz")
    np.testing.assert_array_equal(vol.to_native(vol.hu), raw.astype(np.float32) - 1024)


def test_multipage_tiff_is_a_stack(tmp_path):
    stack = unique_hu((3, 6, 7))
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    vol = read_scan(tmp_path / "stack.tif", spacing=(2, 0.5, 0.5))
    np.testing.assert_array_equal(vol.hu, stack)
    mask = (stack > 0).astype(np.uint8)
    tifffile.imwrite(tmp_path / "mask.tif", mask, photometric="minisblack")
    np.testing.assert_array_equal(read_mask(tmp_path / "mask.tif", vol), mask)


def test_dicom_rescale_per_slice_and_sorting_along_the_normal(tmp_path):
    raw = ct_raw(4, 6, 5)
    # shuffled file names and positions: order must come from ImagePositionPatient
    z = np.array([7.5, 0.0, 5.0, 2.5])
    write_dicom_series(tmp_path / "s", raw, positions_z=z, slope=2.0, intercept=-2048.0,
                       names=["d.dcm", "a.dcm", "c.dcm", "b.dcm"])
    calls = []
    vol = read_scan(tmp_path / "s", progress=lambda done, total, stage: calls.append((done, total)))
    expected = raw[np.argsort(z)].astype(np.float32) * 2 - 2048
    np.testing.assert_array_equal(vol.hu, expected)
    assert vol.spacing == pytest.approx((2.5, 0.8, 0.7))
    assert vol.affine[2, 3] == pytest.approx(0.0)
    assert calls[:4] == [(1, 4), (2, 4), (3, 4), (4, 4)]


@pytest.mark.parametrize("iop", [(1, 0, 0, 0, 1, 0), (1, 0, 0, 0, 0, -1), (0, 1, 0, 0, 0, -1),
                                 (-1, 0, 0, 0, -1, 0)], ids=["axial", "coronal", "sagittal", "flipped"])
def test_dicom_geometry_in_any_plane(tmp_path, iop):
    raw = ct_raw(3, 6, 5)
    write_dicom_series(tmp_path / "s", raw, iop=iop, pixel_spacing=(0.8, 0.7), origin=(5.0, -7.0, 11.0))
    vol = read_scan(tmp_path / "s")
    row, col = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    normal = np.cross(row, col)
    for k, r, c in [(0, 0, 0), (2, 5, 4), (1, 3, 2), (2, 0, 4)]:
        lps = np.array([5.0, -7.0, 11.0]) + 2.5 * k * normal + c * 0.7 * row + r * 0.8 * col
        (idx,) = np.argwhere(vol.hu == float(raw[k, r, c]) - 1024)
        ras = (vol.affine @ np.append(idx, 1))[:3]
        np.testing.assert_allclose(ras, lps * [-1, -1, 1], atol=1e-6)
    assert sorted(vol.spacing) == pytest.approx(sorted((2.5, 0.8, 0.7)))
    labels = (vol.hu > 0).astype(np.uint8)
    for name in ("labels.nii.gz", "labels.nrrd"):
        np.testing.assert_array_equal(read_mask(write_labels(tmp_path / name, labels, vol), vol), labels)


@pytest.mark.parametrize("iop", [(1, 0, 0, 0, 1, 0), (1, 0, 0, 0, 0, -1)], ids=["axial", "coronal"])
def test_one_multiframe_file_reads_as_its_single_frame_series(tmp_path, iop):
    """Enhanced CT (one file, every slice a frame) gives the same HU on the same grid."""
    raw = ct_raw(5, 6, 7)
    z = np.array([5.0, 0.0, 10.0, 2.5, 7.5])  # frames in no order along the normal
    files = write_dicom_series(tmp_path / "slices", raw, positions_z=z, iop=iop, slope=2.0,
                               intercept=-2048.0, patient_position="HFP")
    path = enhanced_ct(files, tmp_path / "enhanced" / "ct.dcm")
    single = read_scan(tmp_path / "slices")
    for source in (path, path.parent):
        vol = read_scan(source)
        np.testing.assert_array_equal(vol.hu, single.hu)
        np.testing.assert_allclose(vol.affine, single.affine, atol=1e-6)
        assert vol.source.metadata["patient_position"] == "HFP"
    # one series of 5 slices, however many files hold them
    (series,) = list_dicom_series(path.parent)
    assert series.n_slices == 5


def test_a_series_of_several_multiframe_files_is_refused_with_a_way_out(tmp_path):
    files = write_dicom_series(tmp_path / "slices", ct_raw(4, 6, 5))
    first = enhanced_ct(files[:2], tmp_path / "mf" / "a.dcm")
    second = enhanced_ct(files[2:], tmp_path / "mf" / "b.dcm")
    import pydicom

    ds = pydicom.dcmread(str(second))
    ds.SeriesInstanceUID = pydicom.dcmread(str(first)).SeriesInstanceUID
    ds.save_as(str(second))
    with pytest.raises(ScanReadError, match="a series of 2 multi-frame DICOM files: give one of them"):
        read_scan(tmp_path / "mf")
    assert read_scan(first).shape == (2, 6, 5)


def test_info_command(tmp_path, capsys):
    data = unique_hu((5, 6, 7))
    path = write_nifti(tmp_path / "ct.nii.gz", data, axcodes_affine("LPS", (0.7, 0.8, 3.0)))
    assert main(["info", str(path), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["format"] == "nifti" and facts["shape_zyx"] == [7, 6, 5]
    assert facts["spacing_zyx_mm"] == pytest.approx([3.0, 0.8, 0.7])
    assert facts["stored_orientation"] == "LPS"
    assert facts["hu_min"] == data.min() and facts["hu_max"] == data.max()

    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert "orientation  stored LPS" in text and "7 x 6 x 5" in text

    bad = write_nifti(tmp_path / "raw.nii.gz", (data + 1024).astype(np.int16), np.eye(4))
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "raw.nii.gz" in err and "--hu-offset" in err
    assert main(["info", str(bad), "--hu-offset", "-1024", "--json"]) == 0


def test_detached_nrrd_header(tmp_path):
    import nrrd

    data = unique_hu((4, 5, 6))
    header = {"space": "right-anterior-superior", "space directions": np.diag([0.5, 0.6, 2.0]),
              "space origin": [1.0, 2.0, 3.0]}
    nrrd.write(str(tmp_path / "ct.nhdr"), data, header, detached_header=True, index_order="F")
    vol = read_scan(tmp_path / "ct.nhdr")
    assert vol.source.orientation == "RAS" and vol.spacing == pytest.approx((2.0, 0.6, 0.5))
    np.testing.assert_array_equal(vol.to_native(vol.hu), data)


def test_given_spacing_fills_gaps_but_never_overrides_the_file(tmp_path):
    raw = ct_raw(3, 6, 5)
    files = write_dicom_series(tmp_path / "s", raw)
    import pydicom
    for f in files:
        ds = pydicom.dcmread(f)
        del ds.PixelSpacing
        ds.save_as(f)
    with pytest.raises(ScanReadError, match="no PixelSpacing.*--spacing"):
        read_scan(tmp_path / "s")
    with pytest.warns(UserWarning, match=r"the file's spacing \(2.5, 0.5, 0.4\) mm is used"):
        vol = read_scan(tmp_path / "s", spacing=(9, 0.5, 0.4))  # slice step from the positions
    assert vol.spacing == pytest.approx((2.5, 0.5, 0.4))

    path = write_nifti(tmp_path / "ct.nii.gz", unique_hu((5, 6, 7)), axcodes_affine("LAS", (1, 1, 2)))
    with pytest.warns(UserWarning, match=r"the file's spacing \(2, 1, 1\) mm is used"):
        assert read_scan(path, spacing=(3, 1, 1)).spacing == (2.0, 1.0, 1.0)


def test_cancelling_a_dicom_read(tmp_path):
    from diffseglung_core.errors import Cancelled

    write_dicom_series(tmp_path / "s", ct_raw(5, 6, 5))

    def cancel_at_third(done, total, stage):
        if done == 3:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        read_scan(tmp_path / "s", progress=cancel_at_third)


def test_dicom_patient_position_is_kept_when_the_series_agrees(tmp_path):
    raw = ct_raw(3, 6, 5)
    write_dicom_series(tmp_path / "prone", raw, patient_position="HFP")
    assert read_scan(tmp_path / "prone").source.metadata["patient_position"] == "HFP"
    write_dicom_series(tmp_path / "unknown", raw)
    assert "patient_position" not in read_scan(tmp_path / "unknown").source.metadata


def test_info_says_when_the_patient_lay_prone(tmp_path, capsys):
    write_dicom_series(tmp_path / "prone", ct_raw(3, 6, 5), patient_position="HFP")
    assert main(["info", str(tmp_path / "prone")]) == 0
    assert "position     HFP: the patient lay prone" in capsys.readouterr().out
    write_dicom_series(tmp_path / "supine", ct_raw(3, 6, 5), patient_position="FFS")
    assert main(["info", str(tmp_path / "supine")]) == 0
    assert "position     FFS (supine)" in capsys.readouterr().out
