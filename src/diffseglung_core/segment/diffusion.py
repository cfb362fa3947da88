"""Diffusion features of every lung voxel: the U-Net bottleneck at several timesteps.

The lung's bounding box is tiled with overlapping windows of the model's
patch size (stride ``overlap`` of a patch). Each window (normalised CT and
lung mask) is noised to timestep ``t`` with a fixed per-window seed and run
through the U-Net encoder; its bottleneck (or, for a stage-2 model, the
per-voxel student projection) is accumulated on a grid at bottleneck
resolution with a separable Hann weight, so overlapping windows blend
smoothly. The blended grid is sampled trilinearly at every lung voxel.
Memory is the bottleneck grid (``C x volume / f^3``), never ``C x volume``.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..device import get_device
from ..model.checkpoint import load_model
from ..model.diffusion import Diffusion
from ..model.features import extract_features
from ..progress import ProgressCallback, report
from ..volume import normalize_hu
from .features import lung_bbox
from .tiling import HannBlend, sliding_window, window_corners

__all__ = ["diffusion_features"]


@torch.no_grad()
def diffusion_features(
    hu: np.ndarray,
    lung: np.ndarray,
    *,
    checkpoint=None,
    timesteps: Sequence[int] = (50, 150, 300),
    device: Union[str, torch.device] = "auto",
    seed: int = 0,
    batch_size: int = 8,
    overlap: float = 0.5,
    precision: str = "auto",
    progress: Optional[ProgressCallback] = None,
) -> list[np.ndarray]:
    """Per-timestep diffusion features of the lung voxels.

    Parameters
    ----------
    hu : (Z, Y, X) ndarray
        HU.
    lung : (Z, Y, X) ndarray
        Lung mask (nonzero inside).
    checkpoint : str or Path, optional
        Model file, or None / ``"default"`` for the shipped model.
    timesteps : sequence of int
        Diffusion timesteps, each in ``[0, T)``.
    device : str or torch.device
        Where the U-Net runs; autocast on accelerators (``precision``).
    seed : int
        Base noise seed; window ``i`` uses ``seed + i`` at every timestep.
    batch_size : int
        Windows per forward pass.
    overlap : float
        Fraction of a window shared with its neighbour (0.5: stride half a patch).
    precision : str
        ``"auto" | "bf16" | "fp16" | "fp32"``.
    progress : callable, optional
        ``progress(done, total, stage)``.

    Returns
    -------
    list of (N, C) float32 ndarray
        One per timestep, rows in ``np.nonzero(lung)`` order.

    References
    ----------
    .. [1] Khiati, Brillet, Fetita. DiffSegLung. arXiv:2605.11758.
    """
    dev = get_device(device) if isinstance(device, str) else device
    path = None if checkpoint in (None, "default") else checkpoint
    loaded = load_model(path, device=dev)
    model, projection, config = loaded.model, loaded.projection, loaded.config
    diffusion = Diffusion(config.diffusion)
    f = model.config.downsampling
    patch = tuple(int(p) for p in config.patch_size)

    lung = np.asarray(lung) > 0
    box = lung_bbox(lung)
    sub_hu = np.asarray(hu[box], np.float32)
    sub_lung = lung[box]
    # pad the box to at least one patch and to a multiple of f
    shape = [max(p, int(np.ceil(s / f)) * f) for s, p in zip(sub_hu.shape, patch)]
    pads = [(0, n - s) for n, s in zip(shape, sub_hu.shape)]
    ct = np.pad(normalize_hu(sub_hu), pads, constant_values=-1.0).astype(np.float32)
    mask = np.pad(sub_lung, pads).astype(np.float32)

    steps = [max(f, int(round(p * (1 - overlap)) // f * f)) for p in patch]
    windows = [c for c in window_corners(shape, patch, steps)
               if mask[tuple(slice(a, a + p) for a, p in zip(c, patch))].any()]
    gshape = [n // f for n in shape]
    pshape = [p // f for p in patch]
    outs = []
    for i, t in enumerate(timesteps):

        def predict(x, indices, t=t):
            feats = extract_features(model, x, int(t), diffusion=diffusion, projection=projection,
                                     seed=[seed + j for j in indices], precision=precision)
            emb = feats.embedding_map if feats.embedding_map is not None else feats.bottleneck
            return emb.float().cpu().numpy()

        def step_progress(done, total, stage, i=i, t=t):
            report(progress, i * total + done, total * len(timesteps), f"diffusion features t={t}")

        grid = sliding_window((ct, mask), windows, patch, predict, HannBlend(gshape, pshape, f),
                              batch_size=batch_size, progress=step_progress)
        outs.append(_sample(grid, sub_lung, f))
    return outs


def _sample(grid: np.ndarray, lung: np.ndarray, f: int, chunk: int = 500_000) -> np.ndarray:
    """Trilinear sampling of a (C, gz, gy, gx) grid (cell centres at ``f*k + (f-1)/2``) at lung voxels."""
    from scipy.ndimage import map_coordinates

    pts = np.argwhere(lung).astype(np.float32)
    g = (pts - (f - 1) / 2.0) / f
    out = np.empty((len(pts), grid.shape[0]), np.float32)
    for s in range(0, len(pts), chunk):
        coords = g[s:s + chunk].T
        for ch in range(grid.shape[0]):
            out[s:s + chunk, ch] = map_coordinates(grid[ch], coords, order=1, mode="nearest")
    return out
