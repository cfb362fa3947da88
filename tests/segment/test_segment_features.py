import numpy as np

from diffseglung_core.segment.features import radiomic_features, robust_standardize


def test_radiomic_components_are_whitened_on_the_lung(chest):
    vol, lung, _ = chest
    f = radiomic_features(vol.hu, lung, vol.spacing, n_components=8)
    assert f.shape == (int(lung.sum()), 8) and f.dtype == np.float32
    assert np.isfinite(f).all()
    # standardised and projected on the window grid, then interpolated to every voxel:
    # the components stay about unit-variance and uncorrelated on the lung's voxels
    sd = f.std(axis=0)
    assert (sd > 0.6).all() and (sd < 1.4).all(), sd
    corr = np.corrcoef(f.T)
    assert np.abs(corr - np.eye(8)).max() < 0.3, corr.round(2)


def test_radiomic_columns_without_projection_are_robustly_scaled(chest):
    vol, lung, _ = chest
    f = radiomic_features(vol.hu, lung, vol.spacing, n_components=None)
    assert f.shape == (int(lung.sum()), 34)
    assert np.abs(f).max() <= 10.0
    med = np.median(f, axis=0)
    assert np.abs(med).max() < 0.25, med.round(2)
    np.testing.assert_allclose(robust_standardize(f).std(axis=0) > 0, True)
