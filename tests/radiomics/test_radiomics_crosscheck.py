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
