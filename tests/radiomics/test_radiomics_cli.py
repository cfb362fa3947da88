"""``diffseglung radiomics`` prints and writes the 34 named features."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from diffseglung_core.cli import main
from diffseglung_core.radiomics import FEATURE_NAMES, batched_features


def test_tiff_patch_whole_image(cted_open, tmp_path, capsys):
    import tifffile

    path = cted_open / "patches" / "patch7.tiff"
    out = tmp_path / "f.json"
    assert main(["radiomics", str(path), "--spacing", "1", "0.6", "0.6", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in FEATURE_NAMES)
    got = json.loads(out.read_text())
    assert got["voxels"] == 61 * 61 and list(got["features"]) == list(FEATURE_NAMES)
    hu = tifffile.imread(path).astype(np.float32)
    expected = batched_features(torch.from_numpy(hu)[None, None])[0].numpy()
    # the reader may flip axes into the canonical layout: orientation-free features must match
    for name in ("firstorder_Mean", "firstorder_Median", "glcm_Contrast", "hu_FractionBelow950"):
        assert got["features"][name] == pytest.approx(expected[FEATURE_NAMES.index(name)], rel=1e-9)
    assert main(["radiomics", str(path), "--spacing", "1", "0.6", "0.6", "--json", str(out)]) != 0


def test_nrrd_with_mask(cip_chest, tmp_path):
    from diffseglung_core.io import read_mask, read_scan

    ct, lung = cip_chest / "ct-64.nrrd", cip_chest / "wholeLung-64.nrrd"
    out = tmp_path / "f.json"
    assert main(["radiomics", str(ct), "--mask", str(lung), "--json", str(out)]) == 0
    got = json.loads(out.read_text())
    vol = read_scan(ct)
    mask = read_mask(lung, vol) > 0
    hu = vol.hu[mask]
    assert got["voxels"] == mask.sum()
    assert got["features"]["firstorder_Mean"] == pytest.approx(hu.mean(), rel=1e-5)
    assert got["features"]["hu_FractionBelow950"] == pytest.approx(np.mean(hu < -950), rel=1e-9)


def test_lung_roi_cube_of_a0001(a0001_dicom, tmp_path, capsys):
    """A 5 x 24 x 24 cube inside A0001's right lung: air and lung only, no tissue above -500 HU."""
    from diffseglung_core.io import read_scan, write_scan
    from diffseglung_core.radiomics import region_features
    from diffseglung_core.volume import CTVolume

    scan = read_scan(a0001_dicom)
    cube = scan.hu[28:33, 184:208, 176:200].copy()
    assert cube.min() == -1024 and cube.max() < -500  # what a whole-scan check refused
    path = write_scan(tmp_path / "roi.nii.gz", CTVolume.from_array(cube, spacing=scan.spacing))
    out = tmp_path / "roi.json"
    assert main(["radiomics", str(path), "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # no refusal and no warning: a region need not hold tissue
    got = json.loads(out.read_text())
    assert got["voxels"] == cube.size
    expected = region_features(cube)
    for name in ("firstorder_Mean", "firstorder_Median", "glcm_Contrast", "hu_FractionBelow950"):
        assert got["features"][name] == pytest.approx(expected[name], rel=1e-6)
