"""The engine's torch stages give the CPU's results on a GPU (skipped without one).

Each test runs one stage on both devices from the same input: the radiomic
maps, the Gaussian mixture and the whole weight-free engine on a phantom.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffseglung_core.evaluate.metrics import evaluate_labels
from diffseglung_core.phantom import make_phantom
from diffseglung_core.radiomics.maps import feature_maps
from diffseglung_core.segment.engine import segment_volume
from diffseglung_core.segment.gmm import fit_gmm

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

@pytest.fixture(scope="module")
def phantom():
    return make_phantom((32, 128, 128), seed=3)


def test_radiomic_maps_agree(phantom):
    hu, lung = np.asarray(phantom.volume.hu), np.asarray(phantom.lung) > 0
    cpu = feature_maps(hu, lung, window=7, stride=4, device="cpu")
    gpu = feature_maps(hu, lung, window=7, stride=4, device="cuda")
    assert np.array_equal(gpu.valid, cpu.valid) and cpu.valid.sum() > 500
    a, b = cpu.values[:, cpu.valid], gpu.values[:, gpu.valid]  # (F, points)
    assert np.isfinite(b).all()
    scale = np.abs(a).max(axis=1, keepdims=True) + 1e-6  # per feature
    assert np.max(np.abs(b - a) / scale) < 1e-3


def test_gmm_agrees():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, (4, 6))
    x = (centres[rng.integers(0, 4, 60_000)] + rng.normal(0, 1, (60_000, 6))).astype(np.float32)
    kw = dict(covariance_type="diag", n_init=1, max_iter=30, tol=0.0, subsample=None, seed=0)
    cpu = fit_gmm(x, 4, device="cpu", **kw)
    gpu = fit_gmm(x, 4, device="cuda", **kw)
    assert gpu.score(x) == pytest.approx(cpu.score(x), abs=1e-3)
    # the same partition, whatever order the components come in
    both = np.zeros((4, 4))
    np.add.at(both, (cpu.predict(x), gpu.predict(x, device="cuda")), 1)
    assert both.max(axis=1).sum() / len(x) > 0.999


def test_engine_on_cuda_matches_cpu(phantom):
    dice = {}
    for device in ("cpu", "cuda"):
        res = segment_volume(phantom.volume, lung_mask=phantom.lung, device=device)
        rows = evaluate_labels(np.asarray(res.labels), np.asarray(phantom.labels), phantom.volume.spacing,
                               distances=False)
        dice[device] = np.array([r["dice"] for r in rows], float)
    # the same starts (one CPU generator), but sums in another order on the GPU: float32
    # differences can move a few voxels between clusters; the same quality, not the same voxels
    assert np.nanmax(np.abs(dice["cuda"] - dice["cpu"])) < 0.05, dice
