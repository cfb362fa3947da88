"""Samplers against Gaussian data, where the optimal noise predictor is known."""

import pytest
import torch

from diffseglung_core.model.diffusion import make_betas
from diffseglung_core.model.samplers import ddim_sample, ddpm_sample, dpm_solver_pp_sample, timestep_grid

MU, S = 0.5, 0.3
N = 40000


def _oracle(abar):
    def eps_fn(x, t):
        ab = abar[t.cpu()].to(x.dtype).view(-1, 1)
        return (x - ab.sqrt() * MU) * (1 - ab).sqrt() / (ab * S * S + 1 - ab)
    return eps_fn


def _check(x, var_rtol):
    # Mean: 5 standard errors of N samples; variance: sampler discretisation + sampling error.
    assert float(x.mean()) == pytest.approx(MU, abs=5 * S / N ** 0.5)
    assert float(x.var()) == pytest.approx(S * S, rel=var_rtol)


def test_ddpm_matches_gaussian_target():
    abar = torch.cumprod(1 - make_betas("linear", 1000), 0)
    x = ddpm_sample(_oracle(abar), (N, 1), abar, generator=torch.Generator().manual_seed(0))
    # The posterior variance beta~_t is the lower of the two classic choices and ignores
    # Var(x0 | x_t): ancestral samples come out about 2-3 % under-dispersed.
    _check(x, 0.05)
    assert float(x.var()) < S * S


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_ddim_matches_gaussian_target(schedule):
    abar = torch.cumprod(1 - make_betas(schedule, 1000), 0)
    x = ddim_sample(_oracle(abar), (N, 1), abar, steps=250, generator=torch.Generator().manual_seed(0))
    _check(x, 0.05)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_dpm_solver_pp_matches_gaussian_target_in_few_steps(schedule):
    abar = torch.cumprod(1 - make_betas(schedule, 1000), 0)
    x = dpm_solver_pp_sample(_oracle(abar), (N, 1), abar, steps=20,
                             generator=torch.Generator().manual_seed(0))
    _check(x, 0.05)


def test_second_order_beats_first_order_at_few_steps():
    abar = torch.cumprod(1 - make_betas("linear", 1000), 0)
    err = {}
    for order in (1, 2):
        x = dpm_solver_pp_sample(_oracle(abar), (N, 1), abar, steps=10, order=order,
                                 generator=torch.Generator().manual_seed(0))
        err[order] = abs(float(x.var()) - S * S)
    assert err[2] < err[1]


def test_first_order_dpm_solver_pp_equals_ddim():
    # DPM-Solver++(1) is DDIM (eta = 0) on the same grid.
    abar = torch.cumprod(1 - make_betas("cosine", 1000), 0)
    kw = dict(steps=12, spacing="uniform")
    a = ddim_sample(_oracle(abar), (1000, 1), abar, generator=torch.Generator().manual_seed(3), **kw)
    # DDIM ends with x0 predicted at t=0 from its last state; DPM-Solver++ predicts x0 once more.
    b = dpm_solver_pp_sample(_oracle(abar), (1000, 1), abar, order=1,
                             generator=torch.Generator().manual_seed(3), **kw)
    assert float((a - b).abs().max()) < 1e-3


@pytest.mark.parametrize("spacing", ["uniform", "quadratic", "logsnr"])
def test_timestep_grid(spacing):
    abar = torch.cumprod(1 - make_betas("linear", 1000), 0)
    grid = timestep_grid(abar, 25, spacing)
    assert grid[0] == 999 and grid[-1] == 0
    assert all(a > b for a, b in zip(grid, grid[1:]))
    assert 15 <= len(grid) <= 26
