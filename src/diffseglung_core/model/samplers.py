"""Reverse-process samplers: ancestral DDPM, DDIM and multistep DPM-Solver++.

Each sampler takes a noise predictor ``eps_fn(x_t, t) -> eps`` (``t`` a
``(B,)`` int64 tensor of discrete timesteps) and the schedule's cumulative
products ``alphas_cumprod`` ``(T,)``, starts from standard normal noise drawn
with ``generator`` and returns the sample at ``t = 0`` (the data prediction).
Arithmetic on the schedule is done in float64.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from ..progress import ProgressCallback, report

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _start(shape, generator, device, dtype):
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(device=device, dtype=dtype)


def _tvec(t: int, n: int, device) -> torch.Tensor:
    return torch.full((n,), int(t), dtype=torch.long, device=device)


def timestep_grid(alphas_cumprod: torch.Tensor, steps: int, spacing: str = "uniform") -> list[int]:
    """Decreasing timesteps from ``T - 1`` to 0 for a ``steps``-step sampler.

    ``spacing``: ``"uniform"`` in ``t``, ``"quadratic"`` in ``t`` (denser near
    the data), or ``"logsnr"`` (even in ``lambda = log(alpha / sigma)``).
    Rounding to integers may merge a few points at large ``steps``.
    """
    abar = alphas_cumprod.double().cpu()
    T = abar.numel()
    steps = max(1, min(int(steps), T - 1))
    u = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    if spacing == "uniform":
        grid = u * (T - 1)
    elif spacing == "quadratic":
        grid = u ** 2 * (T - 1)
    elif spacing == "logsnr":
        lam = 0.5 * torch.log(abar / (1 - abar))  # decreasing in t
        targets = lam[-1] + (1 - u) * (lam[0] - lam[-1])
        grid = torch.searchsorted(-lam, -targets).clamp(max=T - 1).double()
    else:
        raise ValueError(f"unknown spacing {spacing!r} (uniform, quadratic, logsnr)")
    return sorted({int(round(float(v))) for v in grid}, reverse=True)


@torch.no_grad()
def ddpm_sample(eps_fn: EpsFn, shape, alphas_cumprod: torch.Tensor, *,
                generator: Optional[torch.Generator] = None, device="cpu",
                dtype=torch.float32, progress: Optional[ProgressCallback] = None) -> torch.Tensor:
    """Ancestral sampling through all ``T`` steps with the posterior variance ``beta~_t``."""
    abar = alphas_cumprod.double().cpu()
    T = abar.numel()
    abar_prev = torch.cat([torch.ones(1, dtype=abar.dtype), abar[:-1]])
    alphas = abar / abar_prev
    x = _start(shape, generator, device, dtype)
    for i, t in enumerate(range(T - 1, -1, -1)):
        eps = eps_fn(x, _tvec(t, shape[0], x.device)).to(dtype)
        a, ab, abp = float(alphas[t]), float(abar[t]), float(abar_prev[t])
        x0 = (x - (1 - ab) ** 0.5 * eps) / ab ** 0.5
        mean = (abp ** 0.5 * (1 - a) / (1 - ab)) * x0 + (a ** 0.5 * (1 - abp) / (1 - ab)) * x
        if t > 0:
            var = (1 - abp) / (1 - ab) * (1 - a)
            x = mean + var ** 0.5 * _start(shape, generator, device, dtype)
        else:
            x = mean
        report(progress, i + 1, T, "sampling (DDPM)")
    return x


@torch.no_grad()
def ddim_sample(eps_fn: EpsFn, shape, alphas_cumprod: torch.Tensor, *, steps: int = 50,
                eta: float = 0.0, spacing: str = "quadratic",
                generator: Optional[torch.Generator] = None, device="cpu",
                dtype=torch.float32, progress: Optional[ProgressCallback] = None) -> torch.Tensor:
    """DDIM (Song et al.) over ``steps`` timesteps (:func:`timestep_grid`); ``eta=0`` is deterministic."""
    abar = alphas_cumprod.double().cpu()
    grid = timestep_grid(abar, steps, spacing)
    x = _start(shape, generator, device, dtype)
    for i, t in enumerate(grid):
        ab = float(abar[t])
        abp = float(abar[grid[i + 1]]) if i + 1 < len(grid) else 1.0
        eps = eps_fn(x, _tvec(t, shape[0], x.device)).to(dtype)
        x0 = (x - (1 - ab) ** 0.5 * eps) / ab ** 0.5
        sigma = eta * ((1 - abp) / (1 - ab) * (1 - ab / abp)) ** 0.5
        x = abp ** 0.5 * x0 + max(1 - abp - sigma ** 2, 0.0) ** 0.5 * eps
        if sigma > 0:
            x = x + sigma * _start(shape, generator, device, dtype)
        report(progress, i + 1, len(grid), "sampling (DDIM)")
    return x


@torch.no_grad()
def dpm_solver_pp_sample(eps_fn: EpsFn, shape, alphas_cumprod: torch.Tensor, *,
                         steps: int = 25, order: int = 2, spacing: str = "logsnr",
                         generator: Optional[torch.Generator] = None, device="cpu",
                         dtype=torch.float32, x_start: Optional[torch.Tensor] = None,
                         t_start: Optional[int] = None,
                         progress: Optional[ProgressCallback] = None) -> torch.Tensor:
    """Multistep DPM-Solver++ (Lu et al. 2022) with data prediction, order 1 or 2.

    Integrates the probability-flow ODE in ``lambda = log(alpha / sigma)`` over
    ``steps`` timesteps from ``T - 1`` to 0 (:func:`timestep_grid`), then returns the
    data prediction at ``t = 0``. The last step is first order (more stable at
    few steps). Uses ``steps + 1`` network evaluations.

    ``x_start`` and ``t_start`` start the ODE from a given state at timestep
    ``t_start`` instead of pure noise at ``T - 1`` (reconstruction of noised
    real patches); ``steps`` then spans ``[t_start, 0]``.
    """
    if order not in (1, 2):
        raise ValueError("order must be 1 or 2")
    abar = alphas_cumprod.double().cpu()
    top = abar.numel() - 1 if t_start is None else int(t_start)
    grid = [t for t in timestep_grid(abar[: top + 1], steps, spacing)]
    alpha = abar.sqrt()
    sigma = (1 - abar).sqrt()
    lam = torch.log(alpha / sigma)
    n = shape[0]

    def data_pred(x, t):
        eps = eps_fn(x, _tvec(t, n, x.device)).to(dtype)
        return (x - float(sigma[t]) * eps) / float(alpha[t])

    x = _start(shape, generator, device, dtype) if x_start is None else x_start.to(device, dtype)
    x0_prev, h_prev = None, None
    x0 = data_pred(x, grid[0])
    for i in range(len(grid) - 1):
        s, t = grid[i], grid[i + 1]
        h = float(lam[t] - lam[s])
        if order == 2 and x0_prev is not None and i < len(grid) - 2:
            r = h_prev / h
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
        else:
            d = x0
        x = (float(sigma[t]) / float(sigma[s])) * x - float(alpha[t]) * torch.expm1(
            torch.tensor(-h, dtype=torch.float64)).item() * d
        x0_prev, h_prev = x0, h
        x0 = data_pred(x, t)
        report(progress, i + 1, len(grid) - 1, "sampling (DPM-Solver++)")
    return x0
