"""HU calibration: padding never calibrates; only air the scan clearly shows does."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from diffseglung_core.calibration import HUCalibration, calibrate_hu, detect_padding, padding_from_metadata
from diffseglung_core.errors import ScanReadError
from diffseglung_core.io import read_scan
from diffseglung_core.io.checks import check_hu
from diffseglung_core.labels import Tissue
from diffseglung_core.phantom import make_phantom
from diffseglung_core.segment.assign import LabelMapping
from diffseglung_core.segment.engine import segment_volume
from diffseglung_core.segment.report import make_report
from diffseglung_core.volume import CTVolume, ScanSource

PADDING_VALUES = (-1024.0, -2000.0, -2048.0, -3024.0)


def outside_circle(shape) -> np.ndarray:
    """(Y, X) bool: outside the circle inscribed in the slice (the reconstruction field of view)."""
    y, x = shape[-2:]
    yy, xx = np.mgrid[:y, :x]
    return (yy - (y - 1) / 2) ** 2 + (xx - (x - 1) / 2) ** 2 > (min(y, x) / 2) ** 2


def padded(hu: np.ndarray, value: float) -> np.ndarray:
    out = np.array(hu, np.float32, copy=True)
    out[..., outside_circle(hu.shape)] = value
    return out


def same(a: HUCalibration, b: HUCalibration) -> bool:
    return a.offset_hu == b.offset_hu and a.applied == b.applied and a.source == b.source


@pytest.fixture(scope="module")
def slice_phantom():
    return make_phantom((1, 128, 128), seed=0)


@pytest.fixture(scope="module")
def small_phantom():
    return make_phantom((8, 96, 96), seed=0)


def trachea(ph, radius: float = 4.0) -> np.ndarray:
    """(Z, Y, X) bool disk in the anterior mediastinum, far from both lungs, on every slice."""
    from scipy import ndimage as ndi

    lung = ph.lung > 0
    right, left = (ph.lung == 1).any(0), (ph.lung == 2).any(0)
    between = np.zeros(lung.shape[1:], bool)
    rows = np.flatnonzero(lung.any((0, 2)))
    between[rows.min():(rows.min() + rows.max()) // 2, np.flatnonzero(right.any(0)).max():
            np.flatnonzero(left.any(0)).min()] = True
    dist = ndi.distance_transform_edt(~lung.any(0)) * between
    cy, cx = np.unravel_index(int(dist.argmax()), dist.shape)
    yy, xx = np.mgrid[:lung.shape[1], :lung.shape[2]]
    disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2
    assert dist.max() > radius and not (lung & disk).any()
    return np.broadcast_to(disk, lung.shape).copy()


def with_air(hu: np.ndarray, mask: np.ndarray, air_hu: float, seed: int = 0) -> np.ndarray:
    """``hu`` with noisy air reading ``air_hu`` inside ``mask``."""
    out = np.array(hu, np.float32, copy=True)
    out[mask] = air_hu + np.random.default_rng(seed).normal(0, 18, int(mask.sum()))
    return out


# -- padding ------------------------------------------------------------------------

@pytest.mark.parametrize("value", PADDING_VALUES)
def test_padding_is_found_and_never_calibrates(slice_phantom, value):
    hu, lung = slice_phantom.volume.hu, slice_phantom.lung
    ref = calibrate_hu(hu, lung)
    assert ref.offset_hu == 0.0 and not ref.applied and ref.padding_hu == ()
    assert ref.source == "outside air" and abs(ref.measured_offset_hu) <= 2.0
    pad = detect_padding(padded(hu, value))
    assert pad.values == (value,)
    out = outside_circle(hu.shape)
    assert pad.mask[0][out].all()
    # beyond the circle: at most a few voxels of air clipped at -1024 that touch the padding
    extra = pad.mask[0] & ~out
    assert extra.sum() <= 0.02 * out.sum() and (hu[0][extra] == -1024).all()
    cal = calibrate_hu(padded(hu, value), lung)
    assert same(cal, ref) and cal.padding_hu == (value,)
    assert cal.padding_fraction == pytest.approx(pad.fraction)
    assert cal.padding_fraction == pytest.approx(out.mean(), abs=0.005)
    assert abs(cal.median_hu - ref.median_hu) <= 1.0


@pytest.mark.parametrize("value", PADDING_VALUES)
def test_padding_of_a_shifted_scan_gives_the_same_offset(small_phantom, value):
    hu, lung = small_phantom.volume.hu + np.float32(30), small_phantom.lung
    ref = calibrate_hu(hu, lung)
    cal = calibrate_hu(padded(hu, value), lung)
    assert ref.applied and ref.offset_hu == 30.0
    assert same(cal, ref), (cal.reason, ref.reason)


def test_padding_value_from_metadata(small_phantom):
    # a padding value that is not the minimum of the slice (air clipped at -1024 reads lower)
    hu, lung = small_phantom.volume.hu + np.float32(30), small_phantom.lung
    pad = padded(hu, -1000.0)
    meta = {"padding_hu": [-1000.0]}
    assert padding_from_metadata(meta) == ((-1000.0,), None)
    cal = calibrate_hu(pad, lung, metadata=meta)
    assert cal.padding_hu == (-1000.0,) and cal.offset_hu == 30.0
    # PixelPaddingValue with PixelPaddingRangeLimit: a range of padding values
    rng = np.random.default_rng(3)
    ranged = np.array(hu, copy=True)
    out = outside_circle(hu.shape)
    ranged[:, out] = rng.integers(-3024, -2900, size=(hu.shape[0], int(out.sum())))
    meta = {"padding_hu": [-3024.0], "padding_range_hu": [-3024.0, -2900.0]}
    cal = calibrate_hu(ranged, lung, metadata=meta)
    assert np.array_equal(detect_padding(ranged, padding_hu=-3024.0,
                                         padding_range_hu=(-3024.0, -2900.0)).mask[:, out],
                          np.ones((hu.shape[0], int(out.sum())), bool))
    assert cal.offset_hu == 30.0


def test_clipped_air_is_not_padding(slice_phantom):
    # the phantom clips air noise at -1024 HU, like many scanners: isolated voxels, not padding
    hu = slice_phantom.volume.hu
    assert (hu == -1024).sum() > 100
    pad = detect_padding(hu, padding_hu=-1024.0)
    assert pad.mask.sum() < 0.01 * (hu == -1024).sum()


# -- measurement and decision -------------------------------------------------------

def test_shift_with_outside_air_is_detected_and_corrected(small_phantom):
    hu, lung = small_phantom.volume.hu, small_phantom.lung
    cal = calibrate_hu(hu + np.float32(30), lung)
    assert cal.applied and cal.offset_hu == 30.0 and cal.source == "outside air"
    assert cal.median_hu == pytest.approx(-970.0, abs=1.0)
    assert cal.n_voxels > 5000 and cal.spread_hu < 30
    assert "+30 HU subtracted" in cal.reason
    down = calibrate_hu(hu - np.float32(25), lung)
    assert down.applied and down.offset_hu == -25.0


def test_crop_without_outside_air_has_no_offset(small_phantom):
    hu, lung = small_phantom.volume.hu + np.float32(30), small_phantom.lung
    ys, xs = np.nonzero(lung.any(0))
    crop = (slice(None), slice(ys.min() + 4, ys.max() - 4), slice(xs.min() + 4, xs.max() - 4))
    cal = calibrate_hu(hu[crop], lung[crop])
    assert cal.measurements[0].n_voxels < 500  # at most a few airway voxels touch the crop edge
    assert cal.offset_hu == 0.0 and not cal.applied and cal.source == "none"
    assert "outside air" in cal.reason or "no air around the patient" in cal.reason
    assert "no offset applied" in cal.reason


def test_crop_showing_lung_at_its_edge_without_a_lung_mask_is_refused(small_phantom):
    hu, lung = small_phantom.volume.hu, small_phantom.lung
    ys, xs = np.nonzero(lung.any(0))
    crop = (slice(None), slice(ys.min() + 4, ys.max() - 4), slice(xs.min() + 4, xs.max() - 4))
    cal = calibrate_hu(hu[crop])  # lung touches the crop border and reads about -850
    assert cal.offset_hu == 0.0 and not cal.applied


def test_too_few_air_voxels_is_not_applied(small_phantom):
    hu, lung = small_phantom.volume.hu + np.float32(30), small_phantom.lung
    corner = (slice(None), slice(0, 14), slice(0, 14))
    cal = calibrate_hu(hu[corner], lung[corner])
    assert 0 < cal.measurements[0].n_voxels < 500
    assert cal.offset_hu == 0.0 and not cal.applied
    assert "voxels" in cal.reason and "no offset applied" in cal.reason


def test_wide_spread_is_not_applied(small_phantom):
    hu, lung = small_phantom.volume.hu, small_phantom.lung
    noisy = hu + np.float32(30) + np.random.default_rng(0).normal(0, 150, hu.shape).astype(np.float32)
    cal = calibrate_hu(noisy, lung)
    assert cal.offset_hu == 0.0 and not cal.applied
    assert "wide" in cal.reason or "peak" in cal.reason


def test_offset_beyond_the_bound_is_refused(small_phantom):
    hu, lung = small_phantom.volume.hu, small_phantom.lung
    cal = calibrate_hu(hu + np.float32(130), lung)
    assert cal.measured_offset_hu == pytest.approx(130.0, abs=1.0)
    assert cal.offset_hu == 0.0 and not cal.applied and "100 HU" in cal.reason
    bounded = calibrate_hu(hu + np.float32(50), lung, max_offset=40.0)
    assert bounded.offset_hu == 0.0 and "40 HU" in bounded.reason
    assert calibrate_hu(hu + np.float32(80), lung).offset_hu == pytest.approx(80.0, abs=1.0)


def test_small_offset_is_left_alone(small_phantom):
    hu, lung = small_phantom.volume.hu, small_phantom.lung
    cal = calibrate_hu(hu + np.float32(3), lung)
    assert cal.measured_offset_hu == pytest.approx(3.0, abs=1.0)
    assert cal.offset_hu == 0.0 and not cal.applied and "no offset needed" in cal.reason


def test_table_behind_the_patient_is_left_out(slice_phantom):
    # a mattress below the patient reads about -900 HU in part of the outside air
    hu, lung = slice_phantom.volume.hu, slice_phantom.lung
    rows = np.zeros(hu.shape, bool)
    rows[:, 112:, :] = True
    table = with_air(hu, rows & (hu < -500), -900.0, seed=1)
    cal = calibrate_hu(table, lung)
    assert cal.offset_hu == 0.0 and abs(cal.median_hu + 1000) <= 2
    m = cal.measurements[0]
    assert m.sectors_used < len(m.sector_hu)
    shifted = calibrate_hu(table + np.float32(30), lung)
    assert shifted.offset_hu == pytest.approx(30.0, abs=1.0)


# -- raw scanner units ---------------------------------------------------------------

def test_raw_scanner_units_are_never_corrected(slice_phantom):
    hu, lung = slice_phantom.volume.hu, slice_phantom.lung
    raw = hu + np.float32(1024)  # stored values without the rescale: all >= 0
    with pytest.raises(ScanReadError, match="--hu-offset -1024"):
        check_hu("scan", raw)
    cal = calibrate_hu(raw, lung)
    assert cal.offset_hu == 0.0 and not cal.applied and "raw scanner units" in cal.reason
    # GE-like raw values with padding -2000 pass check_hu (negative values) but still never calibrate
    raw_padded = padded(raw, -2000.0)
    check_hu("scan", raw_padded)
    cal = calibrate_hu(raw_padded, lung)
    assert cal.padding_hu == (-2000.0,)
    assert cal.offset_hu == 0.0 and not cal.applied and "raw scanner units" in cal.reason
    # the rescale applied twice: air at -2024
    twice = calibrate_hu(hu - np.float32(1024), lung)
    assert twice.measured_offset_hu == pytest.approx(-1024.0, abs=2.0)
    assert twice.offset_hu == 0.0 and not twice.applied and "1024 HU shift" in twice.reason
    # the explicit option is the way: read_scan's hu_offset puts raw units back in HU
    assert calibrate_hu(raw - np.float32(1024), lung).offset_hu == 0.0


# -- trachea --------------------------------------------------------------------------

def test_trachea_confirms_outside_air(small_phantom):
    hu, lung = small_phantom.volume.hu, small_phantom.lung
    airway = trachea(small_phantom)
    shifted = with_air(hu, airway, -1000.0) + np.float32(30)
    cal = calibrate_hu(shifted, lung, airway=airway)
    # a few hundred trachea voxels of 18 HU noise: their median is good to about 2 HU
    assert cal.source == "outside air and trachea" and cal.offset_hu == pytest.approx(30.0, abs=2.0)
    assert [m.source for m in cal.measurements] == ["outside air", "trachea"]
    assert all(m.usable for m in cal.measurements)


def test_trachea_alone_calibrates_a_crop(small_phantom):
    hu, lung = small_phantom.volume.hu, small_phantom.lung
    airway = trachea(small_phantom)
    shifted = with_air(hu, airway, -1000.0) + np.float32(30)
    ys, xs = np.nonzero(lung.any(0))
    ty = np.flatnonzero(airway.any((0, 2)))
    crop = (slice(None), slice(min(ys.min() + 4, ty.min() - 2), max(ys.max() - 4, ty.max() + 2)),
            slice(xs.min() + 4, xs.max() - 4))
    cal = calibrate_hu(shifted[crop], lung[crop], airway=airway[crop])
    assert not cal.measurements[0].usable  # no air around the patient in this crop
    assert cal.source == "trachea" and cal.offset_hu == pytest.approx(30.0, abs=3.0), cal.reason
    # the fat of the crop reads high too (the phantom's fat is -95 HU, its mediastinum -75)
    assert cal.fat_hu > -95.0 + 10.0 and "fat" in cal.reason


def test_trachea_alone_reading_high_is_not_a_shift_when_fat_reads_as_it_should(small_phantom):
    """Tracheal air reads above air (partial volume with its wall): a crop whose trachea reads
    -970 HU while its fat reads as fat does is not shifted; the reason says why."""
    hu, lung = small_phantom.volume.hu, small_phantom.lung
    airway = trachea(small_phantom)
    biased = with_air(hu, airway, -970.0)
    fat = (biased > -130.0) & (biased < -40.0) & (lung == 0)  # fat, mediastinal fat: -100 HU
    biased[fat] = -100.0 + np.random.default_rng(1).normal(0.0, 15.0, int(fat.sum()))
    ys, xs = np.nonzero(lung.any(0))
    ty = np.flatnonzero(airway.any((0, 2)))
    crop = (slice(None), slice(min(ys.min() + 4, ty.min() - 2), max(ys.max() - 4, ty.max() + 2)),
            slice(xs.min() + 4, xs.max() - 4))
    cal = calibrate_hu(biased[crop], lung[crop], airway=airway[crop])
    assert cal.measurements[1].usable and cal.measurements[1].median_hu == pytest.approx(-970.0, abs=3.0)
    assert cal.offset_hu == 0.0 and not cal.applied
    assert cal.fat_hu == pytest.approx(-100.0, abs=5.0) and "fat" in cal.reason, cal.reason
    # the whole scan shows air around the patient: fat is not read
    assert np.isnan(calibrate_hu(biased, lung, airway=airway).fat_hu)


def test_fat_peak_is_read_and_a_scan_without_fat_has_none():
    from diffseglung_core.calibration import Padding, measure_fat

    rng = np.random.default_rng(0)
    hu = rng.normal(40.0, 15.0, (2, 64, 64)).astype(np.float32)  # soft tissue
    hu[:, :16] = rng.normal(-110.0, 15.0, (2, 16, 64))  # a layer of fat
    none = Padding(np.zeros(hu.shape, bool))
    assert measure_fat(hu, none) == pytest.approx(-110.0, abs=3.0)
    lean = rng.normal(40.0, 15.0, (2, 64, 64)).astype(np.float32)
    assert np.isnan(measure_fat(lean, none))  # the shoulder of soft tissue is no peak


def test_disagreeing_sources_apply_only_the_shift_both_support(small_phantom):
    hu, lung = small_phantom.volume.hu, small_phantom.lung
    airway = trachea(small_phantom)
    # outside air reads -970, the trachea -1000: which one is right is not clear, no shift
    cal = calibrate_hu(with_air(hu + np.float32(30), airway, -1000.0), lung, airway=airway)
    assert cal.offset_hu == 0.0 and not cal.applied and "disagree" in cal.reason
    # outside air reads -920, the trachea -950: both say air reads high, by at least 50 HU
    cal = calibrate_hu(with_air(hu + np.float32(80), airway, -950.0), lung, airway=airway)
    assert cal.offset_hu == pytest.approx(50.0, abs=2.0) and "disagree" in cal.reason
    # a "trachea" reading -830 HU is no air (a bronchus read with its wall): outside air decides
    cal = calibrate_hu(with_air(hu + np.float32(80), airway, -830.0), lung, airway=airway)
    assert cal.source == "outside air" and cal.offset_hu == pytest.approx(80.0, abs=2.0)
    assert "not air" in cal.reason


# -- results and reports -------------------------------------------------------------


def _air_peak_by_definition(vals):
    """The air peak of the calibration, read with np.histogram and np.median over masks."""
    from scipy import ndimage as ndi

    vals = np.asarray(vals, np.float64)
    pile = vals == vals.min()
    hist_vals = vals[~pile] if pile.mean() > 0.005 and (~pile).any() else vals
    edges = np.arange(np.floor(hist_vals.min()) - 1.0, np.ceil(hist_vals.max()) + 3.0, 2.0)
    hist, edges = np.histogram(hist_vals, bins=edges)
    centre = float(edges[int(ndi.gaussian_filter1d(hist.astype(np.float64), 3.0,
                                                   mode="constant").argmax())] + 1.0)
    for _ in range(3):
        below = vals[vals <= centre]
        spread = max(float(1.4826 * np.median(centre - below)) if below.size else 1.0, 1.0)
        near = np.abs(vals - centre) <= 2.5 * spread
        centre = float(np.median(vals[near]))
    return centre, spread, float(near.mean())


def test_air_peak_from_sorted_values_is_the_definition():
    """The air peak reads its histogram and medians from the values sorted once: exactly the
    figures of np.histogram and np.median (odd and even counts, integer HU, a clipped pile at
    the minimum, a denser second peak, float32 and float64)."""
    from diffseglung_core.calibration import _air_peak

    rng = np.random.default_rng(0)
    for trial in range(200):
        v = rng.normal(-1000.0 + rng.normal(0, 20), rng.uniform(1, 60), int(rng.integers(1, 3000)))
        if trial % 4 == 1:
            v = np.round(v)
        elif trial % 4 == 2:
            v = np.concatenate([np.round(v), np.full(int(rng.integers(1, 200)), -1024.0)])
        elif trial % 4 == 3:
            v = v + rng.choice([0.0, 300.0], size=v.size, p=[0.9, 0.1])
        v = v.astype(np.float32 if trial % 2 else np.float64)
        assert _air_peak(v) == _air_peak_by_definition(v)

def test_calibration_dict_is_json_ready(small_phantom):
    cal = calibrate_hu(padded(small_phantom.volume.hu, -3024.0) + np.float32(30), small_phantom.lung)
    d = json.loads(json.dumps(cal.to_dict()))
    assert d["offset_hu"] == 30.0 and d["applied"] is True and d["source"] == "outside air"
    assert d["padding_hu"] == [-2994.0]
    assert d["reason"] == cal.reason and d["measurements"][0]["n_voxels"] == cal.n_voxels
    with pytest.raises(AttributeError):
        cal.offset_hu = 1.0  # frozen


def _segment(hu, ph, metadata=None):
    vol = CTVolume.from_array(hu, ph.volume.spacing, source=ScanSource(metadata=metadata or {}))
    return segment_volume(vol, lung_mask=ph.lung, features="density", k=4, n_init=1, device="cpu")


@pytest.mark.parametrize("shift", [0.0, 30.0])
def test_segmentation_is_the_same_with_and_without_padding(small_phantom, shift):
    ph = small_phantom
    hu = ph.volume.hu + np.float32(shift)
    ref = _segment(hu, ph)
    assert ref.mapping.hu_offset == shift
    for value in (-1024.0, -3024.0):
        res = _segment(padded(hu, value), ph)
        assert res.mapping.hu_offset == ref.mapping.hu_offset
        assert np.array_equal(res.labels, ref.labels), value
    res = _segment(padded(hu, -1000.0), ph, metadata={"padding_hu": [-1000.0]})
    assert np.array_equal(res.labels, ref.labels)
    report = make_report(res.labels, hu, ph.volume.spacing, mapping=res.mapping)
    assert report["hu_calibration"]["padding_hu"] == [-1000.0]
    assert report["hu_calibration"]["offset_hu"] == shift
    assert report["hu_calibration"]["applied"] is (shift != 0)
    assert report["mapping"]["calibration"] == report["hu_calibration"]
    back = LabelMapping.from_dict(json.loads(json.dumps(res.mapping.to_dict())))
    assert back.calibration == res.mapping.calibration and back.hu_offset == shift
    assert (res.labels[ph.lung > 0] != 0).all() and (res.labels[ph.lung == 0] == 0).all()
    assert set(np.unique(res.labels)) <= {0, *map(int, Tissue)}


# -- DICOM padding ------------------------------------------------------------------------

def test_dicom_pixel_padding_value_reaches_the_metadata(tmp_path, slice_phantom):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    hu = padded(np.round(slice_phantom.volume.hu), -3024.0)[0]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "CT", "1.2.3.4.5", "1.2.3.4"
    ds.ImagePositionPatient, ds.ImageOrientationPatient = [0.0, 0.0, 0.0], [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing, ds.SliceThickness = [2.7, 2.7], 2.5
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.Rows, ds.Columns = hu.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelPaddingValue = -2000  # GE: raw -2000 is -3024 HU
    ds.PixelData = (hu + 1024).astype(np.int16).tobytes()
    path = tmp_path / "slice.dcm"
    ds.save_as(str(path), enforce_file_format=True)

    vol = read_scan(path)
    assert vol.source.metadata["padding_hu"] == [-3024.0]
    shifted = read_scan(path, hu_offset=10)
    assert shifted.source.metadata["padding_hu"] == [-3014.0]
    cal = calibrate_hu(vol.hu, metadata=vol.source.metadata)
    assert cal.padding_hu == (-3024.0,)
    ref = calibrate_hu(np.round(slice_phantom.volume.hu))
    assert same(cal, ref)


# -- real scans ------------------------------------------------------------------------------

def test_cted_slices_padding_value_does_not_change_the_calibration(cted_open):
    paths = sorted((cted_open / "slices").glob("*.tiff"))[::5]
    assert paths
    for path in paths:
        hu = read_scan(path, spacing=(1.25, 0.78, 0.78)).hu
        fov_out = hu == -3024
        assert fov_out.mean() > 0.15
        ref = calibrate_hu(hu)
        assert ref.padding_hu == (-3024.0,)
        # the air of this HRCT database (bone kernel) reads about -925 HU all around the
        # patient: a real, consistent reading, never the padding
        assert ref.source == "outside air" and -940 < ref.median_hu < -910
        assert ref.applied and ref.offset_hu == pytest.approx(ref.median_hu + 1000, abs=0.5)
        for value in (-1024.0, -2048.0):
            other = np.where(fov_out, np.float32(value), hu)
            cal = calibrate_hu(other)
            assert same(cal, ref) and cal.padding_hu == (value,), (path.name, value, cal.reason)
            assert cal.median_hu == ref.median_hu
            assert cal.measured_offset_hu == ref.measured_offset_hu


def test_covid_slices_padding_value_does_not_change_the_calibration(shared_data):
    folder = shared_data / "covid-ny-sbu-open"
    paths = sorted(folder.glob("*.dcm"))
    if not paths:
        pytest.skip(f"{folder} not found")
    for path in paths:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vol = read_scan(path)
        hu = vol.hu
        ref = calibrate_hu(hu, metadata=vol.source.metadata)
        pad = float(hu.min())
        assert ref.padding_hu == (pad,) and pad in (-2048.0, -3024.0)
        if "padding_hu" in vol.source.metadata:
            assert vol.source.metadata["padding_hu"] == [pad]
        assert ref.source == "outside air" and abs(ref.measured_offset_hu) < 20, path.name
        for value in (-1024.0, -2000.0):
            cal = calibrate_hu(np.where(hu == pad, np.float32(value), hu))
            assert same(cal, ref), (path.name, value, cal.reason)
