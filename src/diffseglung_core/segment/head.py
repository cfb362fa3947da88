"""Learn from corrections: a small fully convolutional head on frozen diffusion features.

Following PathSegDiff (a diffusion model as a frozen feature extractor and a
lightweight FCN on its features), a scan's CT is noised to a few timesteps,
the U-Net's bottleneck and decoder features are read tile by tile and brought
to voxel resolution (:func:`extract_head_features`); a head of one 3x3x3 and
two 1x1x1 convolutions is then trained with cross-entropy on the voxels a
user confirmed or painted (:func:`train_head`) and labels the rest of the
scan (:func:`predict_head`). Voxels labelled :data:`IGNORE` (255) or ``-1``,
or outside the ``confirmed`` mask, do not count in the loss.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, GridMismatchError, OutputExistsError, require_same_grid
from ..labels import Tissue
from ..progress import ProgressCallback, report
from ..volume import CTVolume, normalize_hu
from .tiling import CropStitch, sliding_window, window_corners

__all__ = ["IGNORE", "DEFAULT_HEAD_TIMESTEPS", "HeadConfig", "CorrectionHead", "extract_head_features",
           "feature_spec",
           "train_head", "predict_head", "save_head", "load_head"]

#: Label value of voxels that do not count in training.
IGNORE = 255
#: Timesteps whose features are stacked (low noise: detail, higher noise: context).
DEFAULT_HEAD_TIMESTEPS = (25, 100, 250)
N_CLASSES = len(Tissue)
_FORMAT = "diffseglung-correction-head"


@dataclass(frozen=True)
class HeadConfig:
    """Shape of a head and how its input features were made (saved with its weights).

    Attributes
    ----------
    in_channels : feature channels.
    hidden : channels of the hidden layers.
    n_classes : output classes (6: the label convention, 0 outside lung).
    features : how to recompute the features: ``checkpoint``, ``timesteps``,
        ``decoder``, ``include_hu``, ``seed`` (see :func:`extract_head_features`).
    """

    in_channels: int
    hidden: int = 32
    n_classes: int = N_CLASSES
    features: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


class CorrectionHead(nn.Module):
    """Per-channel standardisation, a 3x3x3 conv, two 1x1x1 convs: ``(B, C, D, H, W) -> logits``."""

    def __init__(self, config: HeadConfig):
        super().__init__()
        self.config = config
        c, h = config.in_channels, config.hidden
        self.register_buffer("mean", torch.zeros(c))
        self.register_buffer("std", torch.ones(c))
        self.net = nn.Sequential(
            nn.Conv3d(c, h, 3, padding=1), nn.GELU(),
            nn.Conv3d(h, h, 1), nn.GELU(),
            nn.Conv3d(h, config.n_classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.float() - self.mean[:, None, None, None]) / self.std[:, None, None, None]
        return self.net(x)


# -- features ---------------------------------------------------------------------------------


def _loaded(model, device: torch.device):
    from ..model.checkpoint import LoadedModel, load_model

    if isinstance(model, LoadedModel):
        return model._replace(model=model.model.to(device))
    return load_model(None if model in (None, "default") else model, device=device)


def extract_head_features(
    volume: Union[CTVolume, np.ndarray],
    model=None,
    *,
    timesteps: Sequence[int] = DEFAULT_HEAD_TIMESTEPS,
    lung_mask: Optional[np.ndarray] = None,
    decoder: bool = True,
    include_hu: bool = True,
    overlap: Optional[int] = None,
    batch_size: int = 4,
    seed: int = 0,
    device: str = "auto",
    progress: Optional[ProgressCallback] = None,
) -> np.ndarray:
    """Multi-timestep diffusion features of a scan at voxel resolution.

    The lung's bounding box is cut into tiles of the model's patch size that
    overlap by ``overlap`` voxels; each tile is noised to every timestep (seed
    ``seed + tile index``), the bottleneck and decoder outputs are upsampled
    trilinearly to the tile and the central part of each tile is kept.

    Parameters
    ----------
    volume : CTVolume or (Z, Y, X) ndarray
        The scan, or its HU.
    model : LoadedModel, str or None
        A :class:`~diffseglung_core.model.checkpoint.LoadedModel`, a
        checkpoint path, or None / ``"default"`` for the shipped model.
    timesteps : sequence of int
        Diffusion timesteps whose features are stacked.
    lung_mask : (Z, Y, X) ndarray, optional
        Lung mask (nonzero inside); computed when None.
    decoder : bool
        Also stack every decoder level (else the bottleneck only).
    include_hu : bool
        Put the normalised CT (:func:`normalize_hu`) first, as channel 0.
    overlap : int, optional
        Voxels trimmed from each tile face shared with a neighbour
        (default a quarter of the patch side, so the kept centres tile the box).
    batch_size : int
        Tiles per forward pass.
    seed : int
        Noise seed.
    device : str
        ``"auto" | "cpu" | "cuda" | "mps"``.
    progress : callable, optional
        ``progress(done, total, stage)``.

    Returns
    -------
    (C, Z, Y, X) float16 ndarray
        Zero outside the lung's bounding box (plus a margin of ``overlap``).
    """
    from ..device import get_device
    from ..model.diffusion import Diffusion
    from ..model.features import extract_features

    hu = volume.hu if isinstance(volume, CTVolume) else np.asarray(volume, np.float32)
    if lung_mask is None:
        from ..lung import compute_lung_mask

        spacing = volume.spacing if isinstance(volume, CTVolume) else (1.0, 1.0, 1.0)
        lung_mask = compute_lung_mask(hu, spacing)
    lung = np.asarray(lung_mask) > 0
    require_same_grid(lung.shape, hu.shape, "lung mask", "scan")
    dev = get_device(device)
    loaded = _loaded(model, dev)
    net, cfg = loaded.model, loaded.config
    diffusion = Diffusion(cfg.diffusion)
    patch = tuple(int(p) for p in cfg.patch_size)
    overlap = max(min(patch) // 4, 1) if overlap is None else int(overlap)

    # the lung's box with a margin, padded with air up to one patch where smaller
    if not lung.any():
        from ..errors import NoLungFoundError

        raise NoLungFoundError("empty lung mask: no features to extract")
    idx = np.nonzero(lung)
    lo = [max(int(i.min()) - overlap, 0) for i in idx]
    hi = [min(int(i.max()) + 1 + overlap, n) for i, n in zip(idx, hu.shape)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    size = [max(b - a, p) for a, b, p in zip(lo, hi, patch)]
    ct = np.full(size, -1000.0, np.float32)
    mk = np.zeros(size, np.float32)
    inner = tuple(slice(0, b - a) for a, b in zip(lo, hi))
    ct[inner] = hu[box]
    mk[inner] = lung[box]
    ct = normalize_hu(ct)

    step = [max(p - 2 * overlap, 1) for p in patch]

    def predict(x, indices):
        maps = [torch.from_numpy(x[:, :1])] if include_hu else []
        for t in timesteps:
            f = extract_features(net, x, int(t), diffusion=diffusion, decoder=decoder,
                                 seed=[seed + i for i in indices])
            levels = [f.bottleneck] + (list(f.decoder) if decoder and f.decoder else [])
            for level in levels:
                maps.append(F.interpolate(level, size=patch, mode="trilinear", align_corners=False).cpu())
        return torch.cat(maps, dim=1).numpy().astype(np.float16)

    # trim the faces shared with a neighbouring tile, and the air padding
    stitch = CropStitch(hu.shape, size, patch, overlap, origin=lo,
                        extent=[b - a for a, b in zip(lo, hi)])
    return sliding_window((ct, mk), window_corners(size, patch, step), patch, predict, stitch,
                          batch_size=batch_size, progress=progress, stage="diffusion features")


def feature_spec(model, timesteps, decoder: bool, include_hu: bool, seed: int) -> dict:
    """The ``HeadConfig.features`` entry describing how features were made."""
    from ..model.checkpoint import LoadedModel

    name = "(in memory)" if isinstance(model, LoadedModel) else str(model or "default")
    return {"checkpoint": name, "timesteps": [int(t) for t in timesteps], "decoder": bool(decoder),
            "include_hu": bool(include_hu), "seed": int(seed)}


# -- training and prediction ------------------------------------------------------------------


def _training_mask(labels: np.ndarray, confirmed: Optional[np.ndarray]) -> np.ndarray:
    labels = np.asarray(labels)
    ok = (labels >= 0) & (labels < N_CLASSES)
    if confirmed is not None:
        confirmed = np.asarray(confirmed)
        require_same_grid(confirmed.shape, labels.shape, "confirmed mask", "labels")
        ok &= confirmed > 0
    return ok


def train_head(
    features: np.ndarray,
    labels: np.ndarray,
    confirmed: Optional[np.ndarray] = None,
    *,
    prior: Optional[np.ndarray] = None,
    prior_weight: float = 0.2,
    hidden: int = 32,
    steps: int = 300,
    crop: Sequence[int] = (3, 48, 48),
    batch_size: int = 4,
    lr: float = 3e-3,
    balance: bool = True,
    feature_info: Optional[dict] = None,
    seed: int = 0,
    device: str = "auto",
    progress: Optional[ProgressCallback] = None,
) -> CorrectionHead:
    """Train a :class:`CorrectionHead` on the confirmed voxels of a label map.

    Parameters
    ----------
    features : (C, Z, Y, X) ndarray
        Features from :func:`extract_head_features`.
    labels : (Z, Y, X) integer ndarray
        Labels 0..5; ``-1`` and :data:`IGNORE` are left out.
    confirmed : (Z, Y, X) ndarray, optional
        Voxels the user confirmed or painted (nonzero); all labelled voxels
        count when None.
    prior : (Z, Y, X) integer ndarray, optional
        Labels 1..5 believed elsewhere (the unsupervised result), learned
        with weight ``prior_weight`` on the voxels not confirmed, so that
        classes absent from the corrections are not forgotten. None: only
        confirmed voxels count.
    prior_weight : float
        Weight of a prior voxel relative to a confirmed one.
    hidden : int
        Hidden channels.
    steps : int
        Optimiser steps (AdamW); each sees ``batch_size`` crops.
    crop : (3,) sequence of int
        ``(D, H, W)`` voxels of a training crop, centred on a random
        confirmed voxel; the loss counts its confirmed voxels whose 3x3x3
        neighbourhood lies inside the crop (or at the scan's edge).
    batch_size : int
        Crops per step.
    lr : float
        Learning rate.
    balance : bool
        Weight the classes by the inverse square root of their share of the
        confirmed voxels.
    feature_info : dict, optional
        Stored in the head's config (see :func:`feature_spec`).
    seed : int
        Seed of the crops and of the weights.
    device : str
        ``"auto" | "cpu" | "cuda" | "mps"``.
    progress : callable, optional
        ``progress(done, total, stage)``.

    Returns
    -------
    CorrectionHead in eval mode, on the CPU.
    """
    from ..device import get_device

    features = np.asarray(features)
    labels = np.asarray(labels)
    if features.ndim != 4 or features.shape[1:] != labels.shape:
        raise GridMismatchError(f"features {features.shape} do not match labels {labels.shape}")
    ok = _training_mask(labels, confirmed)
    where = np.argwhere(ok)
    if len(where) == 0:
        raise ValueError("no confirmed voxel with a label 0..5 to learn from")
    dev = get_device(device)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    cfg = HeadConfig(in_channels=int(features.shape[0]), hidden=int(hidden),
                     features=dict(feature_info or {}))
    head = CorrectionHead(cfg)
    # standardisation from the confirmed voxels (subsampled)
    pick = where[rng.choice(len(where), size=min(len(where), 20000), replace=False)]
    sample = features[:, pick[:, 0], pick[:, 1], pick[:, 2]].astype(np.float32)
    head.mean.copy_(torch.from_numpy(sample.mean(axis=1)))
    head.std.copy_(torch.from_numpy(np.maximum(sample.std(axis=1), 1e-3)))
    head = head.to(dev).train()
    target_all = np.where(ok, labels.astype(np.int64), -100)
    voxel_w = ok.astype(np.float32)
    centres = [where]
    counts = np.bincount(labels[ok].astype(np.int64), minlength=N_CLASSES).astype(np.float64)
    if prior is not None:
        prior = np.asarray(prior)
        require_same_grid(prior.shape, labels.shape, "prior", "labels")
        weak = ~ok & (prior >= 1) & (prior < N_CLASSES)
        target_all[weak] = prior[weak]
        voxel_w[weak] = float(prior_weight)
        if weak.any():
            centres.append(np.argwhere(weak))
        counts += prior_weight * np.bincount(prior[weak].astype(np.int64), minlength=N_CLASSES)
    weight = None
    if balance:
        w = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1) / counts.sum()), 0.0)
        weight = torch.tensor(w / w[counts > 0].mean(), dtype=torch.float32, device=dev)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    shape = labels.shape
    crop = [min(int(c), n) for c, n in zip(crop, shape)]
    for step in range(steps):
        xs, ys, ws = [], [], []
        for i in range(batch_size):
            pool = centres[i % len(centres)]  # confirmed and prior centres in turn
            centre = pool[rng.integers(0, len(pool))]
            sl, valid = [], []
            for c, k, n in zip(centre, crop, shape):
                a = int(min(max(c - k // 2, 0), n - k))
                sl.append(slice(a, a + k))
                valid.append(slice(0 if a == 0 else 1, k if a + k == n else k - 1))
            x = torch.from_numpy(features[(slice(None), *sl)].astype(np.float32))
            y = np.full(crop, -100, np.int64)
            y[tuple(valid)] = target_all[tuple(sl)][tuple(valid)]
            xs.append(x)
            ys.append(torch.from_numpy(y))
            ws.append(torch.from_numpy(np.where(y >= 0, voxel_w[tuple(sl)], 0.0).astype(np.float32)))
        x = torch.stack(xs).to(dev)
        y = torch.stack(ys).to(dev)
        vw = torch.stack(ws).to(dev)
        if weight is not None:
            vw = vw * weight[y.clamp(min=0)]
        if float(vw.sum()) == 0:
            continue
        ce = F.cross_entropy(head(x), y, ignore_index=-100, reduction="none")
        loss = (ce * vw).sum() / vw.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        report(progress, step + 1, steps, "training head")
    return head.cpu().eval()


@torch.no_grad()
def predict_head(
    head: CorrectionHead,
    features: np.ndarray,
    lung_mask: np.ndarray,
    *,
    chunk: int = 8,
    device: str = "auto",
    progress: Optional[ProgressCallback] = None,
) -> np.ndarray:
    """Label a scan with a trained head.

    Parameters
    ----------
    head : CorrectionHead
    features : (C, Z, Y, X) ndarray
        Features made as the head's training features.
    lung_mask : (Z, Y, X) ndarray
        Lung mask (nonzero inside).
    chunk : int
        Axial slices per forward pass (run with a one-slice halo).
    device : str
        ``"auto" | "cpu" | "cuda" | "mps"``.
    progress : callable, optional
        ``progress(done, total, stage)``.

    Returns
    -------
    (Z, Y, X) uint8 ndarray
        0 outside the lung, the best of 1..5 inside.
    """
    from ..device import get_device

    features = np.asarray(features)
    lung = np.asarray(lung_mask) > 0
    if features.shape[1:] != lung.shape:
        raise GridMismatchError(f"features {features.shape} do not match the lung mask {lung.shape}")
    if features.shape[0] != head.config.in_channels:
        raise GridMismatchError(f"features have {features.shape[0]} channels, the head expects "
                                f"{head.config.in_channels}")
    dev = get_device(device)
    head = head.to(dev).eval()
    z_n = lung.shape[0]
    out = np.zeros(lung.shape, np.uint8)
    zs = np.flatnonzero(lung.any(axis=(1, 2)))
    if len(zs) == 0:
        return out
    z0, z1 = int(zs[0]), int(zs[-1]) + 1
    for a in range(z0, z1, chunk):
        b = min(a + chunk, z1)
        lo, hi = max(a - 1, 0), min(b + 1, z_n)
        x = torch.from_numpy(features[:, lo:hi].astype(np.float32))[None].to(dev)
        logits = head(x)[0, 1:, a - lo:a - lo + (b - a)]
        out[a:b] = (logits.argmax(0) + 1).to(torch.uint8).cpu().numpy()
        report(progress, b - z0, z1 - z0, "applying head")
    out[~lung] = 0
    head.cpu()
    return out


# -- files ------------------------------------------------------------------------------------


def save_head(path, head: CorrectionHead, *, overwrite: bool = False) -> Path:
    """Write a head and its config (loadable with ``torch.load(weights_only=True)``)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in head.state_dict().items()}
    torch.save({"format": _FORMAT, "version": 1, "config": head.config.to_dict(), "state": state}, path)
    return path


def load_head(path) -> CorrectionHead:
    """Read a head written by :func:`save_head` (CPU, eval mode)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such head file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and torch errors of corrupt files
        raise CheckpointError(f"{path}: not a readable head file ({type(err).__name__})") from None
    found = payload.get("format", "?") if isinstance(payload, dict) else type(payload).__name__
    if found != _FORMAT:
        raise CheckpointError(f"{path}: not a correction head (format {found!r})")
    try:
        head = CorrectionHead(HeadConfig(**payload["config"]))
        head.load_state_dict(payload["state"])
    except (KeyError, TypeError, RuntimeError) as err:
        detail = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: head weights do not match its configuration ({detail})") from None
    return head.eval()
