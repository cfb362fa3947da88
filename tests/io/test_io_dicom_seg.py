"""DICOM-SEG export: written on the real A0001 series, read back with highdicom and pydicom."""

from __future__ import annotations

import numpy as np
import pytest

from diffseglung_core.errors import DiffSegLungError, OutputExistsError
from diffseglung_core.volume import CTVolume

hd = pytest.importorskip("highdicom")
pytestmark = pytest.mark.filterwarnings("ignore:The string .* person name:UserWarning")
pydicom = pytest.importorskip("pydicom")

from diffseglung_core.io import read_scan  # noqa: E402
from diffseglung_core.io.dicom_seg import SEGMENT_CODES, DicomSegError, write_dicom_seg  # noqa: E402


@pytest.fixture(scope="module")
def a0001(a0001_dicom) -> CTVolume:
    return read_scan(a0001_dicom)


def _labels(shape) -> np.ndarray:
    """Healthy box, a consolidation box inside it, emphysema on a single slice."""
    labels = np.zeros(shape, dtype=np.uint8)
    labels[10:20, 100:300, 80:200] = 1
    labels[12:15, 150:190, 100:130] = 5
    labels[40, 200:260, 300:420] = 4
    return labels


def _source_uids_in_order(folder) -> list[str]:
    """SOPInstanceUIDs of the series sorted inferior to superior (canonical z order)."""
    datasets = [pydicom.dcmread(str(p), stop_before_pixels=True) for p in sorted(folder.glob("*.dcm"))]
    normal = np.cross(*np.reshape([float(v) for v in datasets[0].ImageOrientationPatient], (2, 3)))
    datasets.sort(key=lambda ds: float(np.dot([float(v) for v in ds.ImagePositionPatient], normal)))
    return [str(ds.SOPInstanceUID) for ds in datasets]


def test_dicom_seg_round_trip(a0001, a0001_dicom, tmp_path):
    labels = _labels(a0001.shape)
    out = write_dicom_seg(tmp_path / "seg.dcm", labels, a0001)

    seg = hd.seg.segread(out)
    assert seg.Modality == "SEG"
    ct = pydicom.dcmread(str(next(a0001_dicom.glob("*.dcm"))), stop_before_pixels=True)
    assert seg.StudyInstanceUID == ct.StudyInstanceUID
    assert seg.FrameOfReferenceUID == ct.FrameOfReferenceUID
    referenced = {str(s.SeriesInstanceUID) for s in seg.ReferencedSeriesSequence}
    assert referenced == {str(ct.SeriesInstanceUID)}

    # one segment per class present, with its codes and label value
    numbers = list(seg.get_segment_numbers())
    assert numbers == [1, 2, 3]
    values = [1, 4, 5]
    for number, value in zip(numbers, values):
        desc = seg.get_segment_description(number)
        assert desc.SegmentedPropertyTypeCodeSequence[0].CodeValue == SEGMENT_CODES[value][1][1]
        assert desc.TrackingID == f"diffseglung label {value}"

    # voxels: each source slice's frame of each segment equals the canonical label map
    uids = _source_uids_in_order(a0001_dicom)
    assert len(uids) == a0001.shape[0]
    pixels = seg.get_pixels_by_source_instance(uids, segment_numbers=numbers)  # (z, rows, cols, seg)
    native = a0001.to_native(labels)
    assert pixels.shape == native.shape + (3,)
    for k, (number, value) in enumerate(zip(numbers, values)):
        np.testing.assert_array_equal(pixels[..., k], native == value, err_msg=f"segment {number}")
    assert pixels[..., 2].sum() == (labels == 5).sum() > 0
    # frames map to the right slices: consolidation only on canonical (inferior-first) slices 12..14
    per_slice = pixels[..., 2].reshape(len(uids), -1).sum(axis=1)
    assert set(np.flatnonzero(per_slice)) == {12, 13, 14}

    # plain pydicom sees an ordinary multi-frame SEG with only the non-empty frames
    raw = pydicom.dcmread(str(out))
    assert raw.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    frames_expected = sum(int((native[z] == v).any()) for z in range(native.shape[0]) for v in values)
    assert int(raw.NumberOfFrames) == frames_expected


def test_dicom_seg_frames_at_source_positions(a0001, a0001_dicom, tmp_path):
    """Each frame sits at the ImagePositionPatient of the CT slice it segments."""
    labels = np.zeros(a0001.shape, dtype=np.uint8)
    labels[5, 200:220, 250:270] = 2
    out = write_dicom_seg(tmp_path / "ggo.dcm", labels, a0001)
    raw = pydicom.dcmread(str(out))
    assert int(raw.NumberOfFrames) == 1
    frame = raw.PerFrameFunctionalGroupsSequence[0]
    position = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
    source_uid = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
    expected_uid = _source_uids_in_order(a0001_dicom)[5]
    assert source_uid == expected_uid
    ct = next(ds for ds in (pydicom.dcmread(str(p), stop_before_pixels=True)
                            for p in a0001_dicom.glob("*.dcm")) if ds.SOPInstanceUID == expected_uid)
    np.testing.assert_allclose(position, [float(v) for v in ct.ImagePositionPatient], atol=1e-3)
    mask = raw.pixel_array.astype(bool)
    native = a0001.to_native(labels)[5] == 2
    np.testing.assert_array_equal(mask, native)
    desc = raw.SegmentSequence[0]
    assert desc.SegmentedPropertyTypeCodeSequence[0].CodeValue == "112120"
    assert desc.SegmentLabel == "ground-glass opacity"


def _frames_by_position(path) -> dict:
    """(ImagePositionPatient rounded to 0.01 mm, segment number) -> the frame's mask."""
    raw = pydicom.dcmread(str(path))
    masks = raw.pixel_array.reshape(int(raw.NumberOfFrames), int(raw.Rows), int(raw.Columns))
    out = {}
    for frame, mask in zip(raw.PerFrameFunctionalGroupsSequence, masks):
        position = tuple(round(float(v), 2) for v in frame.PlanePositionSequence[0].ImagePositionPatient)
        number = int(frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        out[position, number] = mask.astype(bool)
    return out


def test_dicom_seg_of_an_enhanced_ct_file_has_the_frames_of_its_slices(a0001_dicom, tmp_path):
    """A scan stored as one multi-frame file gets the SEG its single-frame slices get."""
    from io_builders import enhanced_ct

    files = sorted(a0001_dicom.glob("1-2*.dcm"))
    slices = tmp_path / "slices"
    slices.mkdir()
    for f in files:
        (slices / f.name).write_bytes(f.read_bytes())
    single = read_scan(slices)
    multi = read_scan(enhanced_ct(files, tmp_path / "enhanced" / "ct.dcm"))
    labels = np.zeros(single.shape, dtype=np.uint8)
    labels[2:6, 100:300, 80:200] = 1
    labels[7, 200:260, 300:420] = 4
    a = _frames_by_position(write_dicom_seg(tmp_path / "single.dcm", labels, single))
    b = _frames_by_position(write_dicom_seg(tmp_path / "multi.dcm", labels, multi))
    assert a.keys() == b.keys() and len(a) == 5
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_dicom_seg_refuses_non_dicom_and_overwrite(a0001, tmp_path):
    labels = _labels(a0001.shape)
    memory = CTVolume.from_array(np.full((4, 8, 8), -800, np.float32))
    with pytest.raises(DicomSegError, match="needs a scan read from DICOM"):
        write_dicom_seg(tmp_path / "x.dcm", np.ones((4, 8, 8), np.uint8), memory)
    assert issubclass(DicomSegError, DiffSegLungError)

    out = write_dicom_seg(tmp_path / "seg.dcm", labels, a0001)
    before = out.read_bytes()
    with pytest.raises(OutputExistsError):
        write_dicom_seg(out, labels, a0001)
    assert out.read_bytes() == before
    write_dicom_seg(out, labels, a0001, overwrite=True)
    assert out.read_bytes() != before  # new UIDs

    with pytest.raises(DicomSegError, match="no lung tissue"):
        write_dicom_seg(tmp_path / "empty.dcm", np.zeros(a0001.shape, np.uint8), a0001)
    bad = labels.copy()
    bad[0, 0, 0] = 9
    with pytest.raises(DicomSegError, match=r"\[9\]"):
        write_dicom_seg(tmp_path / "bad.dcm", bad, a0001)


def test_export_seg_command(a0001, a0001_dicom, tmp_path, capsys):
    from diffseglung_core.cli import main
    from diffseglung_core.io import write_labels

    labels = _labels(a0001.shape)
    nifti = write_labels(tmp_path / "labels.nii.gz", labels, a0001)
    out = tmp_path / "seg.dcm"
    argv = ["export-seg", str(nifti), "--reference", str(a0001_dicom), "-o", str(out)]
    assert main(argv) == 0
    assert "3 segment(s): healthy, emphysema, consolidation" in capsys.readouterr().out
    seg = hd.seg.segread(out)
    pixels = seg.get_pixels_by_source_instance(_source_uids_in_order(a0001_dicom), segment_numbers=[3])
    np.testing.assert_array_equal(pixels[..., 0], a0001.to_native(labels) == 5)
    assert main(argv) == 2  # exists: refused without --overwrite
    assert "file exists" in capsys.readouterr().err
    assert main(argv + ["--overwrite"]) == 0
