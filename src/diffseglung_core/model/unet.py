"""A 3D U-Net that predicts the noise of a diffusion step.

Residual blocks with GroupNorm and a timestep embedding, optional
self-attention at chosen levels, strided-convolution downsampling and
nearest-neighbour upsampling. Features for segmentation come from the
network's own API (:meth:`UNet3D.forward` with ``return_features=True`` or
:meth:`UNet3D.encode`), never from hooks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import UNetConfig


def _groups(channels: int, most: int = 32) -> int:
    g = min(most, channels)
    while channels % g:
        g -= 1
    return g


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps.

    Parameters
    ----------
    t : (B,) tensor of timesteps (any numeric dtype).
    dim : embedding length.

    Returns
    -------
    (B, dim) float32 tensor.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device,
                                                           dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv twice; the timestep scales and shifts the second norm.

    Scale-shift conditioning after the norm (rather than adding the embedding
    before it) keeps the timestep visible even when GroupNorm has one channel
    per group, which would remove a per-channel offset.
    """

    def __init__(self, cin: int, cout: int, temb: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.conv1 = nn.Conv3d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb, 2 * cout)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv3d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv3d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.temb(F.silu(emb))[:, :, None, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over all voxels of a (low-resolution) map."""

    def __init__(self, channels: int, head_channels: int = 32):
        super().__init__()
        self.heads = max(1, channels // head_channels)
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.qkv = nn.Conv3d(channels, 3 * channels, 1)
        self.out = nn.Conv3d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, *spatial = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, -1).unbind(1)
        h = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2),
                                           v.transpose(-1, -2))
        return x + self.out(h.transpose(-1, -2).reshape(b, c, *spatial))


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int, dropout: float, attention: bool):
        super().__init__()
        self.res = ResBlock(cin, cout, temb, dropout)
        self.attn = Attention(cout) if attention else None

    def forward(self, x, emb):
        x = self.res(x, emb)
        return self.attn(x) if self.attn is not None else x


class UNet3D(nn.Module):
    """Noise-prediction U-Net for ``(B, in_channels, D, H, W)`` patches.

    Parameters
    ----------
    config : UNetConfig
    """

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = config
        c = config
        temb = 4 * c.base_channels
        self.time_mlp = nn.Sequential(nn.Linear(c.base_channels, temb), nn.SiLU(),
                                      nn.Linear(temb, temb))
        self.stem = nn.Conv3d(c.in_channels, c.base_channels, 3, padding=1)

        chans = [c.base_channels]
        ch = c.base_channels
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for level, mult in enumerate(c.channel_mults):
            blocks = nn.ModuleList()
            for _ in range(c.num_res_blocks):
                blocks.append(_Block(ch, c.base_channels * mult, temb, c.dropout,
                                     level in c.attention_levels))
                ch = c.base_channels * mult
                chans.append(ch)
            self.down.append(blocks)
            if level < len(c.channel_mults) - 1:
                self.downsample.append(nn.Conv3d(ch, ch, 3, stride=2, padding=1))
                chans.append(ch)

        self.mid1 = ResBlock(ch, ch, temb, c.dropout)
        self.mid_attn = Attention(ch) if c.bottleneck_attention else None
        self.mid2 = ResBlock(ch, ch, temb, c.dropout)

        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level, mult in reversed(list(enumerate(c.channel_mults))):
            blocks = nn.ModuleList()
            for _ in range(c.num_res_blocks + 1):
                blocks.append(_Block(ch + chans.pop(), c.base_channels * mult, temb, c.dropout,
                                     level in c.attention_levels))
                ch = c.base_channels * mult
            self.up.append(blocks)
            if level > 0:
                self.upsample.append(nn.Conv3d(ch, ch, 3, padding=1))
        self.head = nn.Sequential(nn.GroupNorm(_groups(ch), ch), nn.SiLU(),
                                  nn.Conv3d(ch, c.out_channels, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def _check(self, x: torch.Tensor) -> None:
        f = self.config.downsampling
        if x.ndim != 5 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"expected (B, {self.config.in_channels}, D, H, W), got {tuple(x.shape)}")
        if any(s % f for s in x.shape[2:]):
            raise ValueError(f"patch sides {tuple(x.shape[2:])} must be divisible by {f}")

    def _encode(self, x: torch.Tensor, t: torch.Tensor):
        self._check(x)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        emb = self.time_mlp(timestep_embedding(t.to(x.device), self.config.base_channels))
        h = self.stem(x)
        skips = [h]
        for level, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, emb)
                skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
                skips.append(h)
        h = self.mid1(h, emb)
        if self.mid_attn is not None:
            h = self.mid_attn(h)
        h = self.mid2(h, emb)
        return h, skips, emb

    def encode(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Bottleneck features only (the decoder is not run).

        Parameters
        ----------
        x : (B, in_channels, D, H, W) float tensor: noisy CT and lung mask.
        t : (B,) or scalar integer timesteps.

        Returns
        -------
        (B, bottleneck_channels, D/f, H/f, W/f) tensor, ``f = config.downsampling``.
        """
        return self._encode(x, t)[0]

    def forward(self, x: torch.Tensor, t: torch.Tensor, return_features: bool = False):
        """Predict the noise in ``x[:, :1]``.

        Returns
        -------
        eps : (B, out_channels, D, H, W) tensor, or
        (eps, features) with ``return_features=True``: ``features["bottleneck"]``
        is the middle block's output and ``features["decoder"]`` a list of the
        decoder level outputs, coarsest first.
        """
        h, skips, emb = self._encode(x, t)
        bottleneck = h
        decoder = []
        for i, blocks in enumerate(self.up):
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
            decoder.append(h)
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        eps = self.head(h)
        if return_features:
            return eps, {"bottleneck": bottleneck, "decoder": decoder}
        return eps
