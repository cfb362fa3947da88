import numpy as np

from diffseglung_core.segment.features import radiomic_features


def test_radiomic_components_are_whitened_on_the_lung(chest):
    vol, lung, _ = chest
    assert lung.sum() <= 200_000  # the statistics' subsample is then every lung voxel
    f = radiomic_features(vol.hu, lung, vol.spacing, n_components=8)
    assert f.shape == (int(lung.sum()), 8) and f.dtype == np.float32
    assert np.isfinite(f).all()
    # principal components, whitened: unit variance and uncorrelated on the lung's voxels
    np.testing.assert_allclose(f.std(axis=0), 1.0, atol=1e-3)
    np.testing.assert_allclose(np.corrcoef(f.T), np.eye(8), atol=1e-3)
    # the first components carry the most of the standardised features' variance
    raw = radiomic_features(vol.hu, lung, vol.spacing, n_components=None)
    centred = raw - raw.mean(0)
    shares = np.linalg.svd(centred, compute_uv=False) ** 2
    assert shares[:8].sum() / shares.sum() > 0.5


def test_radiomic_columns_without_projection_are_robustly_scaled(chest):
    vol, lung, _ = chest
    f = radiomic_features(vol.hu, lung, vol.spacing, n_components=None)
    assert f.shape == (int(lung.sum()), 34)
    assert np.abs(f).max() <= 10.0  # outliers clipped at 10 IQR
    # centred on the median, scaled by the interquartile range / 1.349
    np.testing.assert_allclose(np.median(f, axis=0), 0.0, atol=1e-3)
    q25, q75 = np.percentile(f, [25, 75], axis=0)
    iqr = q75 - q25
    np.testing.assert_allclose(iqr[iqr > 1e-6], 1.349, rtol=0.02)
