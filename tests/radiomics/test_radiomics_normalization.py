"""Median / IQR statistics: values, round trips through JSON and torch.load(weights_only=True)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffseglung_core.radiomics import (
    FEATURE_NAMES,
    batched_features,
    denormalize,
    load_stats,
    normalize,
    robust_stats,
    save_stats,
)


def _features(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.normal(-800, 100, (n, 3, 8, 8)))
    x[: n // 2] -= 150  # two populations
    return batched_features(x)


def test_stats_are_median_and_iqr():
    f = _features()
    s = robust_stats(f)
    a = f.numpy()
    np.testing.assert_allclose(s["median"], np.median(a, 0))
    q = np.percentile(a, [25, 75], 0)
    iqr = q[1] - q[0]
    np.testing.assert_allclose(s["iqr"], np.where(iqr == 0, 1.0, iqr))
    assert s["names"] == list(FEATURE_NAMES) and s["count"] == 40
    z = normalize(a, s)
    np.testing.assert_allclose(np.median(z, 0), 0, atol=1e-12)
    nz = q[1] - q[0] > 0
    np.testing.assert_allclose(np.subtract(*np.percentile(z, [75, 25], 0))[nz], 1, rtol=1e-9)
    zt = normalize(f, s)
    assert isinstance(zt, torch.Tensor)
    np.testing.assert_allclose(zt.numpy(), z)
    np.testing.assert_allclose(denormalize(zt, s).numpy(), a)


def test_save_load_json_and_checkpoint(tmp_path):
    s = robust_stats(_features())
    save_stats(s, tmp_path / "stats.json")
    assert load_stats(tmp_path / "stats.json") == s
    torch.save({"radiomics_stats": s}, tmp_path / "ckpt.pt")
    back = torch.load(tmp_path / "ckpt.pt", weights_only=True)["radiomics_stats"]
    assert back == s


def test_bad_input():
    with pytest.raises(ValueError):
        robust_stats(np.zeros((3, 5)))
    with pytest.raises(ValueError):
        robust_stats(np.zeros((0, 34)))
