"""Generate CT patches with a trained model: DPM-Solver++ in batches, lung masks as condition."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from ..device import autocast
from ..errors import DiffSegLungError
from ..progress import ProgressCallback, report
from .samplers import dpm_solver_pp_sample

__all__ = ["sample_patches"]


@torch.no_grad()
def sample_patches(model: torch.nn.Module, alphas_cumprod: torch.Tensor,
                   masks: Optional[torch.Tensor] = None, *, shape: Optional[Sequence[int]] = None,
                   steps: int = 25, seed: int = 0, precision: str = "auto", batch_size: int = 8,
                   progress: Optional[ProgressCallback] = None) -> np.ndarray:
    """Draw one CT patch per lung mask with the multistep DPM-Solver++.

    Parameters
    ----------
    model : torch.nn.Module
        The U-Net (its input is the noisy CT and the mask, 2 channels); it
        runs on the device of its parameters, under autocast there.
    alphas_cumprod : (T,) torch.Tensor
        Cumulative products of the noise schedule
        (:attr:`~diffseglung_core.model.diffusion.Diffusion.alphas_cumprod`).
    masks : (N, 1, D, H, W) torch.Tensor, optional
        Lung masks conditioning the patches.
    shape : (4,) sequence of int, optional
        ``(N, D, H, W)`` of patches that are lung everywhere, when ``masks`` is None.
    steps : int
        Solver steps.
    seed : int
        Seed of the starting noise, drawn batch after batch.
    precision : str
        ``"auto" | "bf16" | "fp16" | "fp32"`` (see :func:`~diffseglung_core.device.autocast`).
    batch_size : int
        Patches per solver run.
    progress : callable, optional
        ``progress(done, total, stage)`` after each batch.

    Returns
    -------
    (N, D, H, W) float32 ndarray
        Patches on the model's normalised scale (:func:`~diffseglung_core.volume.normalize_hu`).

    Raises
    ------
    DiffSegLungError
        The patch size is not divisible by the model's downsampling.
    """
    device = next(model.parameters()).device
    if masks is None:
        masks = torch.ones((int(shape[0]), 1) + tuple(int(s) for s in shape[1:]))
    generator = torch.Generator().manual_seed(int(seed))
    size = tuple(int(s) for s in masks.shape[2:])
    f = getattr(getattr(model, "config", None), "downsampling", 1)
    if any(s % f for s in size):
        raise DiffSegLungError(f"patch size {size} is not divisible by {f}, the model's downsampling")
    n = int(masks.shape[0])
    out = []
    for start in range(0, n, batch_size):
        mask = masks[start:start + batch_size].to(device)

        def eps_fn(x, t, mask=mask):
            with autocast(device, precision):
                return model(torch.cat([x, mask], 1), t).float()

        x = dpm_solver_pp_sample(eps_fn, (len(mask), 1) + size, alphas_cumprod, steps=steps,
                                 generator=generator, device=device)
        out.append(x[:, 0].cpu().numpy())
        report(progress, start + len(mask), n, "sampling")
    return np.concatenate(out) if out else np.zeros((0,) + size, np.float32)
