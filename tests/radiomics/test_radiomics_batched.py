"""The batched torch features agree with the numpy reference (1e-4 relative)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffseglung_core.radiomics import FEATURE_NAMES, N_FEATURES, batched_features, patch_features

from radiomics_realdata import a0001_patches, cip_patches, cted_patches

RTOL = 1e-4


def _check(patches, masks, dtype=torch.float64, rtol=RTOL, atol_scale=1e-9):
    ref = np.stack([patch_features(p, m) for p, m in zip(patches, masks)])
    got = batched_features(torch.as_tensor(np.stack(patches)), torch.as_tensor(np.stack(masks)),
                           dtype=dtype).cpu().numpy()
    assert got.shape == (len(patches), N_FEATURES)
    # absolute floor relative to the column's scale, for features that are ~0 (skewness, shade)
    atol = atol_scale * np.maximum(np.abs(ref).max(0), 1e-12)
    bad = ~np.isclose(got, ref, rtol=rtol, atol=0) & (np.abs(got - ref) > atol)
    names = [FEATURE_NAMES[j] for j in np.unique(np.nonzero(bad)[1])]
    assert not bad.any(), f"disagree: {names}"
    return ref


def _phantom_patches(n=6, shape=(7, 12, 10), seed=0):
    rng = np.random.default_rng(seed)
    patches, masks = [], []
    for k in range(n):
        base = rng.choice([-900.0, -600.0, -100.0, 40.0])
        x = base + rng.normal(0, 20 + 60 * k, shape)
        x[:, :, : shape[2] // 2] += 300 * (k % 2)  # an edge
        patches.append(x.round())
        masks.append(rng.random(shape) > 0.25)
    return patches, masks


def test_phantom_patches_agree():
    patches, masks = _phantom_patches()
    ref = _check(patches, masks)
    assert np.all(np.isfinite(ref))


def test_one_slice_and_2d_input():
    patches, masks = _phantom_patches(shape=(1, 15, 15))
    _check(patches, masks)
    got2d = batched_features(torch.as_tensor(np.stack(patches))[:, 0], torch.as_tensor(np.stack(masks))[:, 0])
    got3d = batched_features(torch.as_tensor(np.stack(patches)), torch.as_tensor(np.stack(masks)))
    torch.testing.assert_close(got2d, got3d)


def test_masks_of_different_sizes_in_one_batch():
    patches, masks = _phantom_patches(n=4)
    masks[0][:] = False
    masks[0][3, 5, 5] = True  # one voxel: no GLCM pair, features still finite
    masks[1][:] = False       # empty: the whole patch
    ref = _check(patches, masks)
    np.testing.assert_allclose(ref[1], patch_features(patches[1]), rtol=1e-12)
    assert np.all(np.isfinite(ref))


def test_known_values():
    # constant patch: no spread, one gray level
    f = dict(zip(FEATURE_NAMES, patch_features(np.full((3, 5, 5), -800.0))))
    assert f["firstorder_Mean"] == -800 and f["firstorder_StandardDeviation"] == 0
    assert f["glcm_Contrast"] == 0 and f["glcm_JointEnergy"] == pytest.approx(1)
    assert f["glcm_Correlation"] == 1 and f["lbp_Uniform7to8"] == 1
    assert f["hu_FractionBetween700And250"] == 0 and f["hu_FractionBelow910"] == 0
    # checkerboard of two levels 50 HU apart: every in-plane direction has contrast 0 or 4
    z, y, x = np.indices((1, 8, 8))
    board = np.where((y + x) % 2, -900.0, -850.0)
    g = dict(zip(FEATURE_NAMES, patch_features(board)))
    assert g["firstorder_Mean"] == -875 and g["firstorder_StandardDeviation"] == 25
    assert g["firstorder_Kurtosis"] == pytest.approx(1.0)  # not excess kurtosis
    assert g["hu_FractionBelow950"] == 0 and g["hu_FractionBelow910"] == 0
    # levels 1 and 3; (0,1,0),(0,0,1): all pairs differ (contrast 4); diagonals: equal (0)
    assert g["glcm_Contrast"] == pytest.approx(2.0)
    assert g["firstorder_Entropy"] == pytest.approx(1.0)


def test_emphysema_fraction_separates_cted_patches(cted_open):
    import csv

    with open(cted_open / "patches.csv") as fh:
        rows = {r["file"].split("/")[-1]: int(r["label"]) for r in csv.DictReader(fh)}
    pts = cted_patches(cted_open)
    files = sorted((cted_open / "patches").glob("*.tif*"), key=lambda p: int(p.stem[5:]))
    feats = batched_features(torch.as_tensor(np.stack([p for p, _ in pts])))
    f950 = feats[:, FEATURE_NAMES.index("hu_FractionBelow950")].numpy()
    labels = np.array([rows[f.name] for f in files])
    normal, emph = f950[labels == labels.min()], f950[labels != labels.min()]
    # Mann-Whitney AUC; the database README reports 0.95 on all 168 patches
    auc = np.mean(emph[:, None] > normal[None, :]) + 0.5 * np.mean(emph[:, None] == normal[None, :])
    assert auc > 0.85


def test_cted_patches_agree(cted_open):
    pts = cted_patches(cted_open, n=8)
    _check([p for p, _ in pts], [m for _, m in pts])


def test_a0001_patches_agree(a0001_dicom):
    pts = a0001_patches(a0001_dicom, n=6)
    assert len(pts) == 6
    _check([p for p, _ in pts], [m for _, m in pts])


def test_cip_patches_agree(cip_chest):
    pts = cip_patches(cip_chest, n=6)
    assert len(pts) == 6
    _check([p for p, _ in pts], [m for _, m in pts])


def test_float32_close_to_float64():
    patches, masks = _phantom_patches()
    x, m = torch.as_tensor(np.stack(patches)), torch.as_tensor(np.stack(masks))
    f64 = batched_features(x, m, dtype=torch.float64)
    f32 = batched_features(x, m, dtype=torch.float32)
    assert f32.dtype == torch.float32
    scale = f64.abs().amax(0).clamp(min=1e-6)
    assert ((f32.double() - f64).abs() / scale).max() < 1e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_agrees():
    patches, masks = _phantom_patches()
    x, m = torch.as_tensor(np.stack(patches)), torch.as_tensor(np.stack(masks))
    # the CPU runs the Gabor convolution in float32 (about 1e-6 relative), CUDA in float64
    torch.testing.assert_close(batched_features(x.cuda(), m.cuda()).cpu(), batched_features(x, m),
                               rtol=1e-5, atol=1e-6)
