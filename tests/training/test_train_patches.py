"""Tests of patch sampling, precompute memmaps and the patch datasets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from diffseglung_core.errors import NoLungFoundError, OutputExistsError
from diffseglung_core.lung import compute_lung_mask
from diffseglung_core.training.patches import (
    PatchDataset,
    VolumePatchDataset,
    extract_patch,
    extract_patches,
    precompute,
    sample_centres,
)
from diffseglung_core.volume import CTVolume, normalize_hu

SPACING = (5.0, 3.0, 3.0)


def small_chest(seed: int, shape=(20, 64, 72)) -> np.ndarray:
    """HU of a tiny chest: body (40 HU), two box-ish lungs (-850 HU), noise."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    hu = np.full(shape, -1000.0, np.float32)
    body = ((y - shape[1] / 2) / (0.45 * shape[1])) ** 2 + ((x - shape[2] / 2) / (0.46 * shape[2])) ** 2 <= 1
    hu[body] = 40.0
    for cx in (0.3 * shape[2], 0.7 * shape[2]):
        lung = (((x - cx) / (0.15 * shape[2])) ** 2 + ((y - shape[1] / 2) / (0.3 * shape[1])) ** 2
                + ((z - shape[0] / 2) / (0.4 * shape[0])) ** 2) <= 1
        hu[lung] = -850.0
    return hu + rng.normal(0, 15, shape).astype(np.float32)


def test_sample_centres_inside_lung_and_deterministic():
    lung = np.zeros((20, 40, 40), bool)
    lung[5:15, 10:30, 5:15] = True
    a = sample_centres(lung, 50, (4, 8, 8), seed=3)
    b = sample_centres(lung, 50, (4, 8, 8), seed=3)
    c = sample_centres(lung, 50, (4, 8, 8), seed=4)
    assert a.shape == (50, 3) and a.dtype == np.int64
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert lung[tuple(a.T)].all()
    with pytest.raises(NoLungFoundError):
        sample_centres(np.zeros((4, 4, 4), bool), 1, (2, 2, 2))


def test_min_lung_fraction_is_respected():
    lung = np.zeros((30, 60, 60), bool)
    lung[:, :, :30] = True
    lung[15, 30, 55] = True  # one isolated voxel: its patch has almost no lung
    centres = sample_centres(lung, 200, (8, 16, 16), min_lung_fraction=0.5, seed=0)
    fractions = [extract_patch(lung.astype(np.uint8), c, (8, 16, 16)).mean() for c in centres]
    assert min(fractions) >= 0.5


def test_extract_patch_pads_at_the_borders():
    a = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    p = extract_patch(a, (0, 0, 0), (2, 2, 2), fill=-7)
    # centre at index size // 2 = (1, 1, 1) of the patch
    assert p[1, 1, 1] == a[0, 0, 0]
    assert p[0, 0, 0] == -7 and p[1, 1, 0] == -7
    assert np.array_equal(extract_patch(a, (2, 2, 3), (4, 5, 6)), a)
    hu = np.full((4, 5, 6), -500.0, np.float32)
    ct, mask = extract_patches(hu, np.ones(hu.shape, bool), [(0, 0, 0)], (4, 4, 4))
    assert ct.shape == (1, 4, 4, 4) and mask.dtype == np.uint8
    assert ct[0, 0, 0, 0] == pytest.approx(-1.0)  # padding is air
    assert ct[0, 2, 2, 2] == pytest.approx(float(normalize_hu(-500.0)))
    assert mask[0, 0, 0, 0] == 0 and mask[0, 2, 2, 2] == 1


def test_volume_patch_dataset():
    hu = small_chest(0)
    lung = compute_lung_mask(hu, SPACING) > 0
    ds = VolumePatchDataset([(hu, lung, "p0"), (CTVolume.from_array(hu, SPACING), lung)],
                            patches_per_volume=5, patch_size=(8, 16, 16), seed=1)
    assert len(ds) == 10
    x, pid = ds[3]
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and x.shape == (2, 8, 16, 16)
    assert pid == "p0" and ds[7][1] == "scan0001"
    assert torch.equal(x, ds[3][0])  # the same item every time
    assert x[1, 4, 8, 8] == 1  # the centre is lung
    assert set(torch.unique(x[1]).tolist()) <= {0.0, 1.0}
    with pytest.raises(IndexError):
        ds[10]


@pytest.mark.parametrize("workers", [1, 2])
def test_precompute_round_trip(tmp_path, workers):
    vols = [CTVolume.from_array(small_chest(s), SPACING) for s in (0, 1)]
    out = precompute(vols, tmp_path / "p", patches_per_scan=3, patch_size=(8, 16, 16),
                     workers=workers, seed=5, dtype="float32")
    ct = np.load(out / "ct.npy", mmap_mode="r")
    mask = np.load(out / "mask.npy", mmap_mode="r")
    ids = np.load(out / "patient_ids.npy")
    assert ct.shape == mask.shape == (6, 8, 16, 16) and ct.dtype == np.float32 and mask.dtype == np.uint8
    assert ids.tolist() == ["scan0000"] * 3 + ["scan0001"] * 3
    settings = json.loads((out / "patches.json").read_text())
    assert settings["patch_size"] == [8, 16, 16] and settings["n_patches"] == 6

    # the files hold what extraction from the volumes gives
    for k, vol in enumerate(vols):
        lung = compute_lung_mask(vol.hu, vol.spacing) > 0
        centres = np.asarray(settings["scans"][k]["centres"])
        assert lung[tuple(centres.T)].all()
        ct_ref, mask_ref = extract_patches(vol.hu, lung, centres, (8, 16, 16))
        np.testing.assert_allclose(ct[3 * k:3 * k + 3], ct_ref, rtol=0, atol=1e-6)
        assert np.array_equal(mask[3 * k:3 * k + 3], mask_ref)

    ds = PatchDataset(out)
    assert len(ds) == 6 and ds.patch_size == (8, 16, 16)
    x, pid = ds[4]
    assert x.shape == (2, 8, 16, 16) and x.dtype == torch.float32 and pid == "scan0001"
    assert torch.equal(x[0], torch.from_numpy(np.array(ct[4])))
    assert torch.equal(x[1], torch.from_numpy(np.asarray(mask[4], np.float32)))

    with pytest.raises(OutputExistsError):
        precompute(vols, out, patches_per_scan=1, patch_size=(8, 16, 16), workers=1)


def test_precompute_same_result_for_any_worker_count(tmp_path):
    vols = [CTVolume.from_array(small_chest(s), SPACING) for s in (2, 3)]
    a = precompute(vols, tmp_path / "a", patches_per_scan=2, patch_size=(4, 8, 8), workers=1, seed=1)
    b = precompute(vols, tmp_path / "b", patches_per_scan=2, patch_size=(4, 8, 8), workers=2, seed=1)
    assert np.load(a / "ct.npy").dtype == np.float16
    for name in ("ct.npy", "mask.npy", "patient_ids.npy"):
        assert np.array_equal(np.load(a / name), np.load(b / name))


def test_precompute_no_lung_names_the_scan_and_cleans_up(tmp_path):
    soft = CTVolume.from_array(np.full((8, 32, 32), 40.0, np.float32), SPACING)
    with pytest.raises(NoLungFoundError, match="scan0000"):
        precompute([soft], tmp_path / "x", patches_per_scan=1, patch_size=(4, 8, 8), workers=1)
    assert not (tmp_path / "x" / "ct.npy").exists()


def test_cli_lungmask_and_precompute(tmp_path, capsys):
    from diffseglung_core.cli import main
    from diffseglung_core.io import read_mask, read_scan, write_scan

    scans = tmp_path / "scans"
    for s in (0, 1):
        write_scan(scans / f"chest{s}.nii.gz", CTVolume.from_array(small_chest(s), SPACING))
    out = tmp_path / "mask.nii.gz"
    assert main(["lungmask", str(scans / "chest0.nii.gz"), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "right lung" in text and "mL" in text
    vol = read_scan(scans / "chest0.nii.gz")
    assert np.array_equal(read_mask(out, vol), compute_lung_mask(vol.hu, vol.spacing))
    # no overwrite without --overwrite: exit code 2 and a one-line message
    assert main(["lungmask", str(scans / "chest0.nii.gz"), "-o", str(out)]) == 2
    assert "exists" in capsys.readouterr().err

    dest = tmp_path / "patches"
    assert main(["precompute", str(scans), "-o", str(dest), "--patches-per-scan", "2",
                 "--patch-size", "4", "8", "8", "--workers", "1"]) == 0
    ds = PatchDataset(dest)
    assert len(ds) == 4 and {ds[0][1], ds[3][1]} == {"chest0", "chest1"}


def test_scan_id():
    from diffseglung_core.training.patches import scan_id

    assert scan_id("/data/chest0.nii.gz") == "chest0"
    assert scan_id("/data/patient-17/dicom") == "patient-17"
    assert scan_id("/data/patient-17") == "patient-17"
    assert scan_id(CTVolume.from_array(np.zeros((1, 2, 2)), SPACING), 3) == "scan0003"
