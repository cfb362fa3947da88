"""First-order and GLCM features agree with pyradiomics to 1e-3 relative (``tox -e crosscheck``)."""

from __future__ import annotations

import numpy as np
import pytest

from diffseglung_core.radiomics import FEATURE_NAMES, PYRADIOMICS_NAMES, patch_features, pyrad

from radiomics_realdata import a0001_patches, cip_patches, cted_patches

pytestmark = [pytest.mark.crosscheck,
              pytest.mark.skipif(not pyrad.available(), reason="pyradiomics is not installed")]

RTOL = 1e-3
COLUMNS = [FEATURE_NAMES.index(n) for n in PYRADIOMICS_NAMES]


def _compare(pairs):
    extractor = pyrad.make_extractor()
    ours = np.stack([patch_features(p, m)[COLUMNS] for p, m in pairs])
    theirs = np.stack([[pyrad.pyradiomics_features(p, m, extractor)[n] for n in PYRADIOMICS_NAMES]
                       for p, m in pairs])
    # features that are 0 up to rounding (e.g. skewness of a symmetric patch) get an absolute floor
    atol = 1e-9 * np.abs(theirs).max(0)
    rel = np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-300)
    bad = (rel > RTOL) & (np.abs(ours - theirs) > atol)
    worst = {PYRADIOMICS_NAMES[j]: float(rel[:, j].max()) for j in range(len(COLUMNS)) if bad[:, j].any()}
    assert not worst, f"disagree with pyradiomics: {worst}"
    return rel


def test_cted_patches_match_pyradiomics(cted_open):
    pairs = cted_patches(cted_open, n=20)
    assert len(pairs) == 20
    _compare(pairs)


def test_a0001_patches_match_pyradiomics(a0001_dicom):
    pairs = a0001_patches(a0001_dicom, n=12)
    assert len(pairs) == 12
    _compare(pairs)


def test_cip_patches_match_pyradiomics(cip_chest):
    pairs = cip_patches(cip_chest, n=6)
    _compare(pairs)


def test_a0001_voxel_maps_match_pyradiomics_voxel_based(a0001_dicom):
    """Maps at every lung voxel (box sums) against pyradiomics' voxel-based extraction."""
    import SimpleITK as sitk

    from diffseglung_core.radiomics import feature_maps

    (patch, mask), = a0001_patches(a0001_dicom, n=1, size=(4, 14, 14))
    ours = feature_maps(patch, mask, window=5, stride=1, groups=("firstorder", "glcm"))
    extractor = pyrad.make_extractor()
    extractor.settings.update(kernelRadius=2, maskedKernel=True, initValue=np.nan, voxelBatch=-1)
    # pyradiomics needs background in the mask: one unmasked voxel around the box
    img = sitk.GetImageFromArray(np.pad(patch.astype(np.float64), 1, mode="edge"))
    result = extractor.execute(img, sitk.GetImageFromArray(np.pad(mask, 1).astype(np.uint8)),
                               label=1, voxelBased=True)
    assert mask.all()  # a box of lung: every voxel is mapped by both
    for name in PYRADIOMICS_NAMES:
        image = result[f"original_{name}"]
        full = np.full(np.array(mask.shape) + 2, np.nan)
        origin = [int(round(v)) for v in image.GetOrigin()][::-1]  # (x, y, z) voxels, spacing 1
        values = sitk.GetArrayFromImage(image)
        full[tuple(slice(o, o + s) for o, s in zip(origin, values.shape))] = values
        theirs = full[1:-1, 1:-1, 1:-1][mask]
        mine = ours.values[ours.names.index(name)][mask]
        np.testing.assert_allclose(mine, theirs, rtol=RTOL, atol=1e-6 * np.nanmax(np.abs(theirs)),
                                   err_msg=name)
