"""A region of interest or a patch is CT too: only the checks that need a whole chest differ."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from diffseglung_core.errors import ScanReadError
from diffseglung_core.io import read_scan
from diffseglung_core.io.checks import check_hu

from io_builders import write_nifti

AFFINE = np.diag([0.8, 0.8, 2.0, 1.0])


def _lung_cube(seed=0) -> np.ndarray:
    """Aerated lung only, -1024..-915 HU as in a lung ROI: no tissue denser than air."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(-980, 25, (24, 24, 5)), -1024, -915).round().astype(np.int16)


def test_lung_roi_is_read_as_a_region_without_a_word(tmp_path):
    path = write_nifti(tmp_path / "roi.nii.gz", _lung_cube(), AFFINE)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vol = read_scan(path, whole_scan=False)
    assert vol.shape == (5, 24, 24) and vol.hu.max() <= -915


def test_lung_crop_read_as_a_scan_is_a_warning_not_a_refusal(tmp_path):
    path = write_nifti(tmp_path / "crop.nii.gz", _lung_cube(), AFFINE)
    with pytest.warns(UserWarning, match=r"crop.nii.gz: values -1024..-9\d\d: no tissue denser than "
                                         r"air, so this is a crop of the lung"):
        vol = read_scan(path)
    assert vol.shape == (5, 24, 24)


def test_soft_tissue_region_warns_but_a_whole_scan_is_refused(tmp_path):
    nodule = np.random.default_rng(1).normal(40, 15, (10, 10, 10)).round().clip(1, 120)
    path = write_nifti(tmp_path / "nodule.nii.gz", nodule.astype(np.int16), AFFINE)
    with pytest.raises(ScanReadError, match=r"values 1..\d+ are not CT in HU"):
        read_scan(path)
    with pytest.warns(UserWarning, match="fine for a region of soft tissue"):
        assert read_scan(path, whole_scan=False).shape == (10, 10, 10)


@pytest.mark.parametrize("whole_scan", [True, False])
def test_what_is_refused_for_scans_and_regions_alike(whole_scan):
    cube = _lung_cube().astype(np.float32)
    with pytest.raises(ScanReadError, match="every voxel is -1000"):
        check_hu("x", np.full((3, 4, 5), -1000.0), whole_scan=whole_scan)
    broken = cube.copy()
    broken[0, 0, 0] = np.nan
    with pytest.raises(ScanReadError, match="1 NaN values"):
        check_hu("x", broken, whole_scan=whole_scan)
    with pytest.raises(ScanReadError, match="look normalised"):
        check_hu("x", (cube + 1000) / 700 - 1, whole_scan=whole_scan)
    with pytest.raises(ScanReadError, match="below any HU"):
        check_hu("x", cube - 31000, whole_scan=whole_scan)
