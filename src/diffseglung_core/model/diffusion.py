"""The forward diffusion process and the noise-prediction loss.

Inputs are CT patches already on the model's HU scale (:func:`normalize_hu`).
With ``hu_preserving=True`` (the paper's choice) they are used as they are, so
a voxel value keeps its absolute density meaning; with ``False`` each patch is
rescaled to [-1, 1] by its own extremes (the ablation).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from .config import DiffusionConfig


def make_betas(schedule: str, timesteps: int, beta_start: float = 1e-4,
               beta_end: float = 0.02) -> torch.Tensor:
    """Noise variances ``beta_t`` of a schedule, ``(timesteps,)`` float64.

    ``"linear"``: evenly spaced from ``beta_start`` to ``beta_end`` (Ho et al.).
    ``"cosine"``: ``alpha_bar(t) = cos^2(((t/T + s) / (1 + s)) pi/2)`` with
    ``s = 0.008``, betas clipped at 0.999 (Nichol & Dhariwal).
    """
    if schedule == "linear":
        return torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)
    if schedule == "cosine":
        s = 0.008
        steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
        abar = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        betas = 1 - abar[1:] / abar[:-1]
        return betas.clamp(max=0.999)
    raise ValueError(f"unknown schedule {schedule!r} (linear, cosine)")


def rescale_patches(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Rescale every patch of ``(B, C, D, H, W)`` to [-1, 1] by its own min and max."""
    flat = x.flatten(1)
    lo = flat.min(dim=1).values.view(-1, *[1] * (x.ndim - 1))
    hi = flat.max(dim=1).values.view(-1, *[1] * (x.ndim - 1))
    return 2 * (x - lo) / (hi - lo).clamp_min(eps) - 1


class Diffusion:
    """Schedule, forward noising and loss of a DDPM.

    Parameters
    ----------
    config : DiffusionConfig

    Attributes
    ----------
    betas, alphas_cumprod : (T,) float64 tensors on the CPU.
    """

    def __init__(self, config: DiffusionConfig = DiffusionConfig()):
        self.config = config
        self.betas = make_betas(config.schedule, config.timesteps, config.beta_start,
                                config.beta_end)
        self.alphas_cumprod = torch.cumprod(1 - self.betas, dim=0)

    @property
    def timesteps(self) -> int:
        return self.config.timesteps

    def prepare(self, ct: torch.Tensor) -> torch.Tensor:
        """Model-scale clean input ``x0`` from normalised CT ``(B, 1, D, H, W)``."""
        return ct if self.config.hu_preserving else rescale_patches(ct)

    def _coef(self, t: torch.Tensor, like: torch.Tensor):
        abar = self.alphas_cumprod.to(like.device)[t.to(like.device)].to(like.dtype)
        shape = (-1,) + (1,) * (like.ndim - 1)
        return abar.sqrt().view(shape), (1 - abar).sqrt().view(shape)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise`` for ``(B,)`` integer ``t``."""
        a, s = self._coef(t, x0)
        return a * x0 + s * noise

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """The clean patch implied by a noise prediction."""
        a, s = self._coef(t, x_t)
        return (x_t - s * eps) / a

    def sample_timesteps(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``(n,)`` int64 timesteps uniform in ``[0, T)`` (drawn on the CPU)."""
        return torch.randint(0, self.timesteps, (n,), generator=generator)

    def training_loss(self, model, ct: torch.Tensor, mask: torch.Tensor, t: torch.Tensor,
                      noise: torch.Tensor, return_features: bool = False):
        """Mean squared error of the noise prediction.

        Parameters
        ----------
        model : callable ``model(x, t, return_features=...)`` (a :class:`UNet3D`).
        ct : (B, 1, D, H, W) normalised CT.
        mask : (B, 1, D, H, W) lung mask in {0, 1}.
        t : (B,) int64 timesteps; noise : like ``ct``.

        Returns
        -------
        loss : scalar tensor, or ``(loss, features)`` with ``return_features``.
        """
        x0 = self.prepare(ct)
        x_t = self.q_sample(x0, t, noise)
        inp = torch.cat([x_t, mask.to(x_t.dtype)], dim=1)
        if return_features:
            eps, feats = model(inp, t.to(inp.device), return_features=True)
            return F.mse_loss(eps.float(), noise.float()), feats
        eps = model(inp, t.to(inp.device))
        return F.mse_loss(eps.float(), noise.float())
