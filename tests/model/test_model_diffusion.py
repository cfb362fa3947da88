import pytest
import torch

from diffseglung_core.model.config import DiffusionConfig
from diffseglung_core.model.diffusion import Diffusion, make_betas, rescale_patches
from diffseglung_core.volume import normalize_hu


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_schedules_are_monotone_and_reach_noise(schedule):
    betas = make_betas(schedule, 1000)
    abar = torch.cumprod(1 - betas, 0)
    assert betas.shape == (1000,) and (betas > 0).all() and (betas < 1).all()
    assert (abar[1:] < abar[:-1]).all()
    assert abar[0] > 0.999 and abar[-1] < 1e-3


def test_linear_schedule_values():
    betas = make_betas("linear", 1000, 1e-4, 0.02)
    assert betas[0] == pytest.approx(1e-4) and betas[-1] == pytest.approx(0.02)


def test_q_sample_has_the_forward_marginal():
    diff = Diffusion(DiffusionConfig(timesteps=1000))
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 1), 0.7)
    t = torch.full((20000,), 300)
    xt = diff.q_sample(x0, t, torch.randn(x0.shape, generator=g))
    abar = float(diff.alphas_cumprod[300])
    assert float(xt.mean()) == pytest.approx(abar ** 0.5 * 0.7, abs=0.02)
    assert float(xt.var()) == pytest.approx(1 - abar, rel=0.03)
    torch.testing.assert_close(diff.predict_x0(xt, t, (xt - abar ** 0.5 * x0) / (1 - abar) ** 0.5), x0)


def test_hu_preserving_switch():
    hu = torch.tensor([-1000.0, -850.0, -700.0, 40.0]).view(1, 1, 1, 1, 4)
    ct = normalize_hu(hu)
    kept = Diffusion(DiffusionConfig(hu_preserving=True)).prepare(ct)
    torch.testing.assert_close(kept, ct)  # absolute density kept: -1000 HU -> -1
    scaled = Diffusion(DiffusionConfig(hu_preserving=False)).prepare(ct)
    assert float(scaled.min()) == pytest.approx(-1) and float(scaled.max()) == pytest.approx(1)
    # Two patches of different density become indistinguishable after rescaling (the ablation).
    a = normalize_hu(torch.tensor([-900.0, -800.0]).view(1, 1, 1, 1, 2))
    b = normalize_hu(torch.tensor([-300.0, -200.0]).view(1, 1, 1, 1, 2))
    torch.testing.assert_close(rescale_patches(a), rescale_patches(b))


def test_loss_is_zero_for_the_true_noise_and_one_for_a_zero_predictor():
    diff = Diffusion()
    g = torch.Generator().manual_seed(1)
    ct = torch.rand(4, 1, 8, 8, 8, generator=g)
    mask = torch.ones_like(ct)
    noise = torch.randn(ct.shape, generator=g)
    t = torch.tensor([5, 100, 400, 900])

    def oracle(inp, tt):
        a = diff.alphas_cumprod[tt].float().view(-1, 1, 1, 1, 1)
        return (inp[:, :1] - a.sqrt() * ct) / (1 - a).sqrt()

    assert float(diff.training_loss(oracle, ct, mask, t, noise)) < 1e-8
    zero = diff.training_loss(lambda inp, tt: torch.zeros_like(inp[:, :1]), ct, mask, t, noise)
    assert float(zero) == pytest.approx(float((noise ** 2).mean()))
