"""Learn from corrections, fast and safe: a head on reduced-grid features, checked on held-out voxels.

The job behind napari's "Learn" and ``diffseglung train-head``:

1. **Features** on blocks of about 2 mm (:mod:`.reduced`): the weight-free
   set by default (density, texture, structure, depth, and the unsupervised
   label posteriors when known); with ``features="diffusion"`` the frozen
   diffusion features of a checkpoint (:func:`~.head.extract_head_features`,
   computed on the block-averaged CT) are added.
2. **Hold-out**: the confirmed blocks are cut into tiles of about 16 mm in
   each confirmed slice; a share ``holdout`` of the tiles (at least one) is
   kept for validation, the head (:func:`~.head.train_head`) learns on the rest,
   with the unsupervised labels as weak labels elsewhere (``prior``).
3. **Prediction**: per-block class probabilities, interpolated trilinearly to
   every lung voxel, argmax.
4. **Guard**: on the held-out confirmed voxels (full resolution), each label
   change the head proposes (current ``a`` -> head's ``b``) is allowed only when
   the user's labels there say ``b`` more often than ``a`` (and ``b`` for at
   least half of them, :func:`allowed_changes`); changes the corrections say
   nothing about are never made. If the allowed changes do not raise the mean
   Dice of the held-out voxels above the current labels', nothing changes
   (``accepted`` False, and the message says why).

Confirmed slices and painted voxels are never changed: that is the caller's
merge (:meth:`~.session.CorrectionSession.replace_step` with ``keep``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..device import to_float16
from ..labels import TISSUE_NAMES
from ..progress import ProgressCallback, report, scaled
from .head import DEFAULT_HEAD_TIMESTEPS, CorrectionHead, feature_spec, train_head
from .reduced import ReducedGrid, reduced_grid, weightfree_features

__all__ = ["LearnOutcome", "learn_from_corrections", "FEATURE_CHOICES", "holdout_blocks",
           "class_dice", "head_probabilities", "one_hot", "allowed_changes", "apply_changes"]

#: Feature sets of the head: weight-free (default) or weight-free plus diffusion features.
FEATURE_CHOICES = ("weightfree", "diffusion")
_CLASSES = (1, 2, 3, 4, 5)


@dataclass
class LearnOutcome:
    """What :func:`learn_from_corrections` learned and whether to use it.

    Attributes
    ----------
    labels : (Z, Y, X) uint8 ndarray
        New automatic labels: the head's where allowed, the unsupervised ones
        elsewhere (equal to them when not accepted); 0 outside the lung.
    accepted : bool
        The head beat the unsupervised result on the held-out voxels.
    allowed : list of (int, int)
        Label changes ``(from, to)`` the head may make.
    validation : dict
        ``voxels``, ``head`` and ``unsupervised`` (mean Dice and per-class Dice).
    head : CorrectionHead or None
    probabilities : (N, 6) float16 ndarray or None
        The head's label probabilities of the lung voxels (for guidance).
    timings : dict
    message : str
    """

    labels: np.ndarray
    accepted: bool
    allowed: list
    validation: dict
    head: Optional[CorrectionHead] = None
    probabilities: Optional[np.ndarray] = None
    timings: dict = field(default_factory=dict)
    message: str = ""


def one_hot(labels: np.ndarray) -> np.ndarray:
    """(n, 6) float32 one-hot label posteriors of (n,) labels 0..5 (other values: all zero)."""
    labels = np.asarray(labels).astype(np.int64)
    out = np.zeros((labels.size, 6), np.float32)
    ok = (labels >= 0) & (labels < 6)
    out[np.flatnonzero(ok), labels[ok]] = 1.0
    return out


def allowed_changes(current: np.ndarray, proposed: np.ndarray, truth: np.ndarray, *,
                    min_voxels: int = 5) -> list[tuple[int, int]]:
    """The label changes ``(a, b)`` the held-out voxels support.

    Among the held-out voxels labelled ``a`` now and ``b`` by the head, the
    change is allowed when the truth is ``b`` more often than ``a``, ``b`` for
    at least half of them, and there are at least ``min_voxels`` of them.
    """
    out = []
    for a in _CLASSES:
        for b in _CLASSES:
            if a == b:
                continue
            sel = (current == a) & (proposed == b)
            n = int(sel.sum())
            if n < min_voxels:
                continue
            to_b, to_a = int((truth[sel] == b).sum()), int((truth[sel] == a).sum())
            if to_b > to_a and 2 * to_b >= n:
                out.append((int(a), int(b)))
    return out


def apply_changes(current: np.ndarray, proposed: np.ndarray, allowed) -> np.ndarray:
    """``current`` with the ``proposed`` label where the change ``(current, proposed)`` is allowed."""
    out = np.array(current, copy=True)
    for a, b in allowed:
        sel = (current == a) & (proposed == b)
        out[sel] = b
    return out


def class_dice(pred: np.ndarray, truth: np.ndarray, classes=_CLASSES) -> dict:
    """Dice per class of two label vectors.

    Returns
    -------
    dict
        class -> Dice, for the classes present in ``pred`` or ``truth`` (a class
        in neither is left out: read it as 1.0, nothing to get wrong).
    """
    out = {}
    for c in classes:
        a, b = pred == c, truth == c
        na, nb = int(a.sum()), int(b.sum())
        if na + nb:
            out[int(c)] = 2.0 * int((a & b).sum()) / (na + nb)
    return out


def holdout_blocks(block_labels: np.ndarray, share: float = 0.25, tile_blocks: int = 8,
                   seed: int = 0) -> np.ndarray:
    """Blocks (bool, grid shape) held out for validation: whole in-plane tiles of confirmed blocks.

    Each axial plane of confirmed blocks is cut into ``tile_blocks`` x
    ``tile_blocks`` tiles; a share ``share`` of the tiles that hold confirmed
    blocks (at least one, never all) is held out.
    """
    confirmed = np.asarray(block_labels) != 255
    gz, gy, gx = confirmed.shape
    tz, ty, tx = np.meshgrid(np.arange(gz), np.arange(gy) // tile_blocks,
                             np.arange(gx) // tile_blocks, indexing="ij")
    tile = (tz * (gy // tile_blocks + 1) + ty) * (gx // tile_blocks + 1) + tx
    tiles = np.unique(tile[confirmed])
    out = np.zeros(confirmed.shape, bool)
    if len(tiles) < 2 or share <= 0:
        return out
    rng = np.random.default_rng(seed)
    k = int(np.clip(round(share * len(tiles)), 1, len(tiles) - 1))
    held = rng.choice(tiles, k, replace=False)
    return np.isin(tile, held) & confirmed


def head_probabilities(head: CorrectionHead, features: np.ndarray, *, chunk: int = 16,
                       device: str = "cpu") -> np.ndarray:
    """(6, *grid) float32 softmax over labels 1..5 of a head on reduced-grid features (0: outside)."""
    import torch

    from ..device import get_device

    dev = get_device(device)
    head = head.to(dev).eval()
    n = features.shape[1]
    out = np.zeros((6,) + features.shape[1:], np.float32)
    with torch.no_grad():
        for a in range(0, n, chunk):
            b = min(a + chunk, n)
            lo, hi = max(a - 1, 0), min(b + 1, n)
            x = torch.from_numpy(np.asarray(features[:, lo:hi], np.float32))[None].to(dev)
            logits = head(x)[0, 1:, a - lo:a - lo + (b - a)]
            out[1:, a:b] = torch.softmax(logits, dim=0).cpu().numpy()
    head.cpu()
    return out


def _diffusion_blocks(hu, lung, grid: ReducedGrid, model, timesteps, seed, device, progress):
    from .head import extract_head_features

    coarse = grid.pool(hu)
    mask = grid.pool(np.asarray(lung) > 0) >= 0.5
    return extract_head_features(coarse, model, timesteps=timesteps, lung_mask=mask, seed=seed,
                                 device=device, progress=progress)


def learn_from_corrections(hu: np.ndarray, labels: np.ndarray, confirmed: np.ndarray,
                           lung: np.ndarray, *, spacing=(1.0, 1.0, 1.0),
                           auto: Optional[np.ndarray] = None,
                           posteriors: Optional[np.ndarray] = None, features: str = "weightfree",
                           model=None, timesteps=DEFAULT_HEAD_TIMESTEPS, steps: int = 300,
                           prior: bool = True,
                           holdout: float = 0.25, target_mm: float = 2.0, seed: int = 0,
                           device: str = "auto", progress: Optional[ProgressCallback] = None,
                           ) -> LearnOutcome:
    """Train a correction head on the confirmed voxels, check it on held-out ones, label the scan.

    Parameters
    ----------
    hu : (Z, Y, X) ndarray
        CT in HU.
    labels : (Z, Y, X) integer ndarray
        Labels shown to the user (0..5), corrections included; other values
        (255) mean "not confirmed".
    confirmed : (Z, Y, X) bool ndarray
        The voxels to learn from (see :func:`~.edits.confirmed_voxels`).
    lung : (Z, Y, X) ndarray
        Lung mask (nonzero inside).
    spacing : (3,) sequence of float
        mm ``(z, y, x)``.
    auto : (Z, Y, X) integer ndarray, optional
        The unsupervised (automatic) labels the head must beat on the held-out
        voxels. None: nothing to compare with; the head's labels are used
        (the validation Dice is still measured and reported).
    posteriors : (N, 6) ndarray, optional
        Unsupervised label posteriors of the lung voxels (features of the head).
    features : {"weightfree", "diffusion"}
        Feature set; ``"diffusion"`` adds a checkpoint's diffusion features.
    model : LoadedModel, str or None
        Checkpoint of the diffusion features (None: the shipped one).
    timesteps : sequence of int
        Diffusion timesteps of those features.
    steps : int
        Head training steps.
    prior : bool
        Learn the unsupervised labels weakly where nothing was confirmed.
    holdout : float
        Share of the confirmed tiles held out for validation.
    target_mm : float
        Block size (mm) of the reduced grid.
    seed : int
        Seed of the hold-out split and of the head.
    device : str
        ``"auto" | "cpu" | "cuda" | "mps"``.
    progress : callable, optional
        ``progress(done, total, stage)``.

    Returns
    -------
    LearnOutcome
    """
    if features not in FEATURE_CHOICES:
        raise ValueError(f"features must be one of {FEATURE_CHOICES}, got {features!r}")
    t0 = time.perf_counter()
    timings: dict = {}
    lung = np.asarray(lung) > 0
    labels = np.asarray(labels)
    guarded = auto is not None
    auto = np.where(lung & (labels < 6), labels, 0) if auto is None else np.asarray(auto)
    confirmed = np.asarray(confirmed, bool) & lung & (labels < 6)
    if not confirmed.any():
        raise ValueError("no confirmed lung voxel to learn from")
    grid = reduced_grid(lung, spacing, target_mm=target_mm)
    feats, grid = weightfree_features(hu, lung, spacing, grid=grid, posteriors=posteriors,
                                      progress=scaled(progress, 0.0, 0.3))
    info = {"features": features, "block_mm": list(grid.grid_spacing),
            "posteriors": posteriors is not None}
    if features == "diffusion":
        extra = _diffusion_blocks(hu, lung, grid, model, timesteps, seed, device,
                                  scaled(progress, 0.3, 0.5))
        feats = np.concatenate([feats, to_float16(extra)])
        info.update(feature_spec(model, timesteps, True, True, seed))
    timings["features"] = time.perf_counter() - t0

    flat_lung = np.flatnonzero(lung)
    lung_counts = np.bincount(grid.block_of(flat_lung), minlength=int(np.prod(grid.grid_shape)))
    flat_conf = np.flatnonzero(confirmed)
    target = grid.pool_labels(flat_conf, labels.reshape(-1)[flat_conf], lung_counts=lung_counts)
    weak = grid.pool_labels(flat_lung, auto.reshape(-1)[flat_lung], lung_counts=lung_counts) \
        if prior and guarded else None
    held = holdout_blocks(target, holdout, seed=seed)
    train_target = np.where(held, 255, target).astype(np.uint8)
    if weak is not None:
        weak = np.where(held | (target != 255), 255, weak).astype(np.uint8)
    if not (train_target != 255).any():
        raise ValueError("too few confirmed voxels to learn from: confirm a whole slice")
    t = time.perf_counter()
    head = train_head(feats, train_target, train_target != 255, prior=weak, steps=steps,
                      crop=(min(3, feats.shape[1]), 48, 48), seed=seed, device=device,
                      feature_info=info,
                      progress=scaled(progress, 0.5, 0.85))
    timings["training"] = time.perf_counter() - t
    t = time.perf_counter()
    probs = head_probabilities(head, feats, device=device)
    rows = grid.interpolate(probs, flat_lung)
    rows[:, 0] = 0.0
    head_rows = (rows[:, 1:].argmax(1) + 1).astype(np.uint8)
    timings["prediction"] = time.perf_counter() - t
    report(progress, 95, 100, "checking on held-out voxels")

    # -- guard: held-out confirmed voxels at full resolution
    held_vox = held.reshape(-1)[grid.block_of(flat_conf)]
    val_flat = flat_conf[held_vox]
    truth = labels.reshape(-1)[val_flat]
    pos = np.searchsorted(flat_lung, val_flat)
    head_val = head_rows[pos]
    auto_val = auto.reshape(-1)[val_flat]
    allowed = allowed_changes(auto_val, head_val, truth) if guarded else \
        [(a, b) for a in _CLASSES for b in _CLASSES if a != b]
    merged_val = apply_changes(auto_val, head_val, allowed)
    d_head, d_auto = class_dice(merged_val, truth), class_dice(auto_val, truth)
    present = sorted(set(d_head) | set(d_auto))
    mean_head = float(np.mean([d_head.get(c, 1.0) for c in present])) if present else 0.0
    mean_auto = float(np.mean([d_auto.get(c, 1.0) for c in present])) if present else 0.0
    validation = {"voxels": int(val_flat.size), "head": {"mean_dice": mean_head, "dice": d_head},
                  "unsupervised": {"mean_dice": mean_auto, "dice": d_auto} if guarded else None}
    accepted = (not guarded) or (val_flat.size > 0 and bool(allowed) and mean_head > mean_auto)
    out = np.array(auto, dtype=np.uint8, copy=True)
    out[~lung] = 0
    if accepted:
        cur = auto.reshape(-1)[flat_lung]
        out.reshape(-1)[flat_lung] = apply_changes(cur, head_rows, allowed)
    timings["total"] = time.perf_counter() - t0
    outcome = LearnOutcome(out, bool(accepted), allowed, validation, head,
                           to_float16(rows), timings)
    outcome.message = _describe(outcome)
    report(progress, 100, 100, "done")
    return outcome


def _describe(outcome: LearnOutcome) -> str:
    v = outcome.validation
    if v["unsupervised"] is None:
        return (f"head labels (mean Dice {v['head']['mean_dice']:.2f} on {v['voxels']} held-out "
                "confirmed voxels; no unsupervised labels given to compare with)")
    if v["voxels"] == 0:
        return ("not applied: no confirmed voxels left for validation "
                "(confirm more of the lung: a whole slice or two)")
    score = (f"mean Dice on {v['voxels']} held-out confirmed voxels: "
             f"{v['unsupervised']['mean_dice']:.2f} now, {v['head']['mean_dice']:.2f} with the head")
    if not outcome.accepted:
        return ("not applied: the head is not better than the current labels on voxels it did "
                f"not learn from ({score})")
    names = ", ".join(f"{TISSUE_NAMES[a]} -> {TISSUE_NAMES[b]}" for a, b in outcome.allowed)
    return f"applied ({score}); changes it may make: {names}"
