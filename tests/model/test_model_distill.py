import math

import numpy as np
import pytest
import torch

from diffseglung_core.model.config import DistillConfig
from diffseglung_core.model.distill import (
    StudentProjection,
    TeacherProjection,
    distill_weight,
    embedding_spread,
    info_nce,
    robust_normalize,
    robust_stats,
)


def test_projections_are_unit_norm_128d():
    cfg = DistillConfig()
    s = StudentProjection(256, cfg)
    t = TeacherProjection(cfg)
    zs = s(torch.randn(5, 256, 2, 2, 2))
    zt = t(torch.randn(5, 34))
    assert zs.shape == zt.shape == (5, 128)
    torch.testing.assert_close(zs.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(zt.norm(dim=1), torch.ones(5))


def test_forward_map_matches_forward_on_constant_maps():
    s = StudentProjection(16, DistillConfig())
    v = torch.randn(3, 16)
    maps = v[:, :, None, None, None].expand(3, 16, 2, 3, 4)
    zmap = s.forward_map(maps)
    assert zmap.shape == (3, 128, 2, 3, 4)
    torch.testing.assert_close(zmap[:, :, 1, 2, 3], s(maps))


def test_info_nce_limits():
    g = torch.Generator().manual_seed(0)
    b = 16
    z = torch.nn.functional.normalize(torch.randn(b, 128, generator=g), dim=1)
    perfect = info_nce(z, z, temperature=0.05)
    assert float(perfect) < 0.05
    # identical embeddings for everyone: chance level log(B)
    same = torch.nn.functional.normalize(torch.ones(b, 128), dim=1)
    assert float(info_nce(same, same)) == pytest.approx(math.log(b), rel=1e-5)
    # symmetric: swapping student and teacher gives the same value
    w = torch.nn.functional.normalize(torch.randn(b, 128, generator=g), dim=1)
    torch.testing.assert_close(info_nce(z, w), info_nce(w, z))


def test_info_nce_trains_projections_to_align_with_synthetic_teacher():
    torch.manual_seed(0)
    cfg = DistillConfig(teacher_dim=34, embed_dim=32, student_hidden=64, teacher_hidden=64)
    # Teacher vectors are a fixed linear function of the "bottleneck" plus noise.
    feats = torch.randn(64, 8, 2, 2, 2)
    teacher_vec = feats.mean(dim=(2, 3, 4)) @ torch.randn(8, 34) + 0.05 * torch.randn(64, 34)
    s, t = StudentProjection(8, cfg), TeacherProjection(cfg)
    opt = torch.optim.Adam([*s.parameters(), *t.parameters()], lr=3e-3)
    losses = []
    for _ in range(60):
        idx = torch.randperm(64)[:16]
        loss = info_nce(s(feats[idx]), t(teacher_vec[idx]), 0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:5]) / 5


def test_warmup_weight():
    w = [distill_weight(s, 100, 200, 0.5) for s in (0, 99, 100, 150, 200, 10_000)]
    assert w == [0.0, 0.0, 0.0, 0.25, 0.5, 0.5]


def test_collapse_monitor():
    g = torch.Generator().manual_seed(0)
    spread = torch.nn.functional.normalize(torch.randn(256, 128, generator=g), dim=1)
    noise = 1e-4 * torch.randn(256, 128, generator=g)
    collapsed = torch.nn.functional.normalize(torch.ones(256, 128) + noise, dim=1)
    a, b = embedding_spread(spread), embedding_spread(collapsed)
    assert a["std"] == pytest.approx(1.0, abs=0.05) and abs(a["mean_cos"]) < 0.02
    assert b["std"] < 0.01 and b["mean_cos"] > 0.99


def test_robust_normalisation():
    x = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0], [5.0, 1000.0]])
    st = robust_stats(x)
    assert st["median"] == [3.0, 30.0] and st["iqr"] == [2.0, 20.0]
    z = robust_normalize(x, torch.tensor(st["median"]), torch.tensor(st["iqr"]), clip=5.0)
    assert float(z[2, 0]) == 0.0 and float(z[4, 1]) == 5.0


def test_generation_metrics_on_known_inputs():
    from diffseglung_core.model.generation_metrics import frechet_distance, psnr, ssim3d

    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    # two Gaussians with identity covariance: distance = squared mean shift
    b = rng.normal(size=(4000, 3)) + np.array([2.0, 0, 0])
    assert frechet_distance(a, b) == pytest.approx(4.0, rel=0.1)
    x = rng.random((8, 16, 16))
    assert psnr(x, x + 0.01, data_range=1.0) == pytest.approx(40.0)
    assert ssim3d(x, x, 1.0) == pytest.approx(1.0)
    assert ssim3d(x, rng.random((8, 16, 16)), 1.0) < 0.2
