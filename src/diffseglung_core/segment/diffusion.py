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
from ..progress import ProgressCallback, report
from ..volume import normalize_hu
from .features import lung_bbox

__all__ = ["diffusion_features", "window_starts"]


def window_starts(n: int, size: int, step: int) -> list[int]:
    """Starts of windows of ``size`` covering ``[0, n)`` with step ``step`` (last one flush)."""
    if n <= size:
        return [0]
    starts = list(range(0, n - size + 1, step))
    if starts[-1] != n - size:
        starts.append(n - size)
    return starts


def _hann(n: int) -> np.ndarray:
    w = np.hanning(n + 2)[1:-1]
    return (w / w.max()).astype(np.float32)


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
    hu : (Z, Y, X) HU.
    lung : (Z, Y, X) lung mask (nonzero inside).
    checkpoint : model file, or None / ``"default"`` for the shipped model.
    timesteps : diffusion timesteps, each in ``[0, T)``.
    device : where the U-Net runs; autocast on accelerators (``precision``).
    seed : base noise seed; window ``i`` uses ``seed + i`` at every timestep.
    batch_size : windows per forward pass.
    overlap : fraction of a window shared with its neighbour (0.5: stride half a patch).

    Returns
    -------
    list of (N, C) float32 arrays, one per timestep, rows in ``np.nonzero(lung)`` order.
    """
    from ..model.diffusion import Diffusion
    from ..model.checkpoint import load_model

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
    starts = [window_starts(n, p, s) for n, p, s in zip(shape, patch, steps)]
    windows = [(a, b, c) for a in starts[0] for b in starts[1] for c in starts[2]
               if mask[a:a + patch[0], b:b + patch[1], c:c + patch[2]].any()]
    gshape = [n // f for n in shape]
    pshape = [p // f for p in patch]
    wgt = np.einsum("i,j,k->ijk", *[_hann(p) for p in pshape])
    outs = []
    total = len(windows) * len(timesteps)
    done = 0
    for t in timesteps:
        acc = None
        norm = np.zeros(gshape, np.float32)
        for i in range(0, len(windows), batch_size):
            chunk = windows[i:i + batch_size]
            x = np.stack([np.stack([ct[a:a + patch[0], b:b + patch[1], c:c + patch[2]],
                                    mask[a:a + patch[0], b:b + patch[1], c:c + patch[2]]])
                          for a, b, c in chunk])
            from ..model.features import extract_features

            feats = extract_features(model, x, int(t), diffusion=diffusion, projection=projection,
                                     seed=[seed + i + j for j in range(len(chunk))],
                                     precision=precision)
            emb = feats.embedding_map if feats.embedding_map is not None else feats.bottleneck
            emb = emb.float().cpu().numpy()
            if acc is None:
                acc = np.zeros((emb.shape[1],) + tuple(gshape), np.float32)
            for (a, b, c), e in zip(chunk, emb):
                sl = (slice(a // f, a // f + pshape[0]), slice(b // f, b // f + pshape[1]),
                      slice(c // f, c // f + pshape[2]))
                acc[(slice(None),) + sl] += e * wgt
                norm[sl] += wgt
            done += len(chunk)
            report(progress, done, total, f"diffusion features t={t}")
        acc /= np.maximum(norm, 1e-6)
        outs.append(_sample(acc, sub_lung, f))
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
