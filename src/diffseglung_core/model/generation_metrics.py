"""Generation quality of the diffusion model on CT patches.

* Reconstruction fidelity: real patches are noised to a timestep and denoised
  back with DPM-Solver++; PSNR and SSIM (3D) compare them with the originals,
  on the HU scale clipped to a window.
* Distribution match: the Frechet distance between radiomic feature vectors of
  real and generated patches (the FID formula on radiomics instead of
  Inception features, which suit CT better and need no download).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..radiomics.teacher import teacher_vectors
from ..volume import denormalize_hu
from .diffusion import Diffusion
from .features import patch_noise
from .samplers import dpm_solver_pp_sample

#: HU window of the PSNR / SSIM comparisons; its width is the data range.
HU_WINDOW = (-1024.0, 400.0)


def psnr(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """Peak signal-to-noise ratio (dB) of two arrays of the same shape."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(data_range ** 2 / mse)


def ssim3d(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """Mean structural similarity of two 3D arrays (Gaussian window, sigma 1.5, side <= 11)."""
    from skimage.metrics import structural_similarity

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    win = min(11, min(a.shape))
    win -= 1 - win % 2  # odd, at most the smallest side
    return float(structural_similarity(a, b, data_range=data_range, gaussian_weights=True,
                                       sigma=1.5, win_size=win, use_sample_covariance=False))


def frechet_distance(x: np.ndarray, y: np.ndarray, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to feature sets ``(N, F)`` and ``(M, F)``."""
    from scipy import linalg

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    mu1, mu2 = x.mean(0), y.mean(0)
    c1, c2 = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    covmean = linalg.sqrtm(c1 @ c2)
    if not np.isfinite(covmean).all():
        off = np.eye(len(c1)) * eps
        covmean = linalg.sqrtm((c1 + off) @ (c2 + off))
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(c1) + np.trace(c2) - 2 * np.trace(covmean))


def _hu(x) -> np.ndarray:
    return np.clip(denormalize_hu(np.asarray(x, np.float32)), *HU_WINDOW)


@torch.no_grad()
def reconstruct(model, diffusion: Diffusion, patches: torch.Tensor, t_start: int = 250,
                steps: int = 20, seed: int = 0) -> torch.Tensor:
    """Noise patches to ``t_start`` and denoise them back with DPM-Solver++.

    Parameters
    ----------
    model : UNet3D
    diffusion : Diffusion
        The model's noise schedule.
    patches : (B, 2, D, H, W) torch.Tensor
        Normalised CT and lung mask.
    t_start : int
        Timestep the CT is noised to.
    steps : int
        Solver steps back to ``t = 0``.
    seed : int
        Seed of the noise (:func:`~.features.patch_noise`).

    Returns
    -------
    (B, 1, D, H, W) torch.Tensor
        The reconstructed normalised CT, on the model's device.
    """
    device = next(model.parameters()).device
    x = patches.to(device, torch.float32)
    ct, mask = x[:, :1], x[:, 1:]
    t = torch.full((x.shape[0],), int(t_start), dtype=torch.long, device=device)
    x_t = diffusion.q_sample(diffusion.prepare(ct), t, patch_noise(ct.shape, seed).to(device))

    def eps_fn(z, tt):
        return model(torch.cat([z, mask], 1), tt).float()

    return dpm_solver_pp_sample(eps_fn, ct.shape, diffusion.alphas_cumprod, steps=steps,
                                x_start=x_t, t_start=t_start, device=device)


def generation_report(real: np.ndarray, real_mask: np.ndarray, generated: np.ndarray,
                      generated_mask: np.ndarray,
                      reconstructed: Optional[np.ndarray] = None) -> dict[str, float]:
    """Metrics of generated (and reconstructed) patches against real ones.

    Parameters
    ----------
    real : (N, D, H, W) ndarray
        Real patches, normalised CT.
    real_mask : (N, D, H, W) ndarray
        Their lung masks.
    generated : (M, D, H, W) ndarray
        Generated patches, normalised CT.
    generated_mask : (M, D, H, W) ndarray
        The masks they were conditioned on.
    reconstructed : (N, D, H, W) ndarray, optional
        Reconstructions of ``real`` (:func:`reconstruct`).

    Returns
    -------
    dict
        ``frechet_radiomic`` (generated vs real) and, with reconstructions,
        ``psnr_db`` and ``ssim`` (means over patches, HU window -1024..400).
    """
    ref = teacher_vectors(real, real_mask)
    gen = teacher_vectors(generated, generated_mask)
    out = {"frechet_radiomic": frechet_distance(_standardise(ref, ref), _standardise(gen, ref))}
    if reconstructed is not None:
        rng = HU_WINDOW[1] - HU_WINDOW[0]
        out["psnr_db"] = float(np.mean([psnr(_hu(a), _hu(b), rng) for a, b in zip(real, reconstructed)]))
        out["ssim"] = float(np.mean([ssim3d(_hu(a), _hu(b), rng) for a, b in zip(real, reconstructed)]))
    return out


def compare_with_real(model, diffusion: Diffusion, real_ct: torch.Tensor, real_mask: torch.Tensor,
                      generated: np.ndarray, generated_mask: np.ndarray, *, t_start: int = 250,
                      steps: int = 20, seed: int = 0) -> dict[str, float]:
    """Reconstruct real patches and measure them and generated ones (:func:`generation_report`).

    Parameters
    ----------
    model : UNet3D
    diffusion : Diffusion
    real_ct, real_mask : (N, 1, D, H, W) float32 torch.Tensor
        Real patches (normalised CT) and their lung masks.
    generated, generated_mask : (M, D, H, W) ndarray
        Generated patches and the masks they were conditioned on.
    t_start, steps, seed
        See :func:`reconstruct`.

    Returns
    -------
    dict
        ``frechet_radiomic``, ``psnr_db`` and ``ssim``.
    """
    recon = reconstruct(model, diffusion, torch.cat([real_ct, real_mask], 1), t_start=t_start,
                        steps=steps, seed=seed)[:, 0].cpu().numpy()
    return generation_report(real_ct[:, 0].numpy(), real_mask[:, 0].numpy(), generated,
                             generated_mask, recon)


def _standardise(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Scale features by the real set's median and IQR so each counts alike."""
    med = np.median(ref, 0)
    iqr = np.subtract(*np.percentile(ref, [75, 25], 0))
    return (x - med) / np.where(iqr > 1e-9, iqr, 1.0)
