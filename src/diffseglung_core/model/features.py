"""Diffusion features of CT patches for segmentation.

A batch of patches is noised to timestep ``t`` with a fixed seed, the U-Net is
run once, and its bottleneck (optionally the decoder levels, and the projected
student embedding of a stage-2 model) is returned. Running the same patch with
the same seed and ``t`` always gives the same features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..device import autocast
from .diffusion import Diffusion
from .distill import StudentProjection
from .unet import UNet3D


@dataclass
class PatchFeatures:
    """Features of a batch of ``B`` patches at one timestep (float32, model's device).

    Attributes
    ----------
    bottleneck : (B, C, d, h, w) middle-block output, ``d = D / model.config.downsampling``.
    embedding : (B, E) l2-normalised student embedding (stage-2 models), else None.
    embedding_map : (B, E, d, h, w) the student projection of every bottleneck
        voxel (stage-2 models with ``pool_size == 1``), else None.
    decoder : decoder level outputs, coarsest first (when asked for), else None.
    """

    bottleneck: torch.Tensor
    embedding: Optional[torch.Tensor] = None
    embedding_map: Optional[torch.Tensor] = None
    decoder: Optional[list[torch.Tensor]] = None


def patch_noise(shape: Sequence[int], seed: Union[int, Sequence[int]]) -> torch.Tensor:
    """Standard normal noise ``(B, 1, D, H, W)`` on the CPU, reproducible across devices.

    ``seed`` is one integer for the whole batch, or one integer per patch (then
    a patch's noise does not depend on which batch it is in).
    """
    b = int(shape[0])
    one = (1,) + tuple(int(s) for s in shape[2:])
    if isinstance(seed, (int, np.integer)):
        g = torch.Generator().manual_seed(int(seed))
        return torch.randn((b,) + one, generator=g)
    seeds = list(seed)
    if len(seeds) != b:
        raise ValueError(f"{len(seeds)} seeds for {b} patches")
    return torch.cat([torch.randn(one, generator=torch.Generator().manual_seed(int(s)))[None]
                      for s in seeds])


@torch.no_grad()
def extract_features(model: UNet3D, patches, t: int, *, diffusion: Diffusion,
                     projection: Optional[StudentProjection] = None,
                     seed: Union[int, Sequence[int]] = 0, decoder: bool = False,
                     precision: str = "fp32") -> PatchFeatures:
    """Noise patches to timestep ``t`` and read the U-Net's features.

    Parameters
    ----------
    model : UNet3D (eval mode); its device is used.
    patches : (B, 2, D, H, W) float32 array or tensor: channel 0 normalised CT
        (:func:`~diffseglung_core.volume.normalize_hu`), channel 1 lung mask.
    t : timestep in ``[0, T)``.
    diffusion : the model's forward process (``Diffusion(config.diffusion)``).
    projection : the stage-2 student head, to also return embeddings.
    seed : noise seed, one for the batch or one per patch.
    decoder : also run the decoder and return its level outputs.
    precision : ``"fp32" | "bf16" | "fp16" | "auto"`` autocast on accelerators.

    Returns
    -------
    PatchFeatures
    """
    if not 0 <= int(t) < diffusion.timesteps:
        raise ValueError(f"timestep {t} outside [0, {diffusion.timesteps})")
    device = next(model.parameters()).device
    x = torch.as_tensor(np.asarray(patches) if not torch.is_tensor(patches) else patches,
                        dtype=torch.float32).to(device)
    if x.ndim != 5 or x.shape[1] != 2:
        raise ValueError(f"patches must be (B, 2, D, H, W), got {tuple(x.shape)}")
    ct, mask = x[:, :1], x[:, 1:]
    noise = patch_noise(ct.shape, seed).to(device)
    tt = torch.full((x.shape[0],), int(t), dtype=torch.long, device=device)
    x_t = diffusion.q_sample(diffusion.prepare(ct), tt, noise)
    inp = torch.cat([x_t, mask], dim=1)
    with autocast(device, precision):
        if decoder:
            _, feats = model(inp, tt, return_features=True)
            bottleneck, dec = feats["bottleneck"], feats["decoder"]
        else:
            bottleneck, dec = model.encode(inp, tt), None
        emb = emb_map = None
        if projection is not None:
            emb = projection(bottleneck)
            if projection.pool.output_size in (1, (1, 1, 1)):
                emb_map = projection.forward_map(bottleneck)
    return PatchFeatures(
        bottleneck=bottleneck.float(),
        embedding=None if emb is None else emb.float(),
        embedding_map=None if emb_map is None else emb_map.float(),
        decoder=None if dec is None else [d.float() for d in dec],
    )
