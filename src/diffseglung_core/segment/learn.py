"""Learn from corrections, fast and safe: a head on reduced-grid features, checked on held-out voxels.

The job behind napari's "Learn" and ``diffseglung train-head``:

1. **Features** on blocks of about 2 mm (:mod:`.reduced`): the weight-free
   set by default (density, texture, structure, depth, and the unsupervised
   label posteriors when known); with ``features="diffusion"`` the frozen
   diffusion features of a checkpoint (:func:`~.head.extract_head_features`,
   computed on the block-averaged CT) are added.
2. **Validation on voxels the head did not learn from**
   (:func:`validation_folds`): the confirmed slices, in groups at least
   ``near_mm`` apart, are held out in turn (at most three folds), and in every
   fold a share ``holdout`` of the in-plane tiles (about 16 mm) of the
   confirmed slices too; a head (:func:`~.head.train_head`) learns on the
   rest, with the unsupervised labels as weak labels elsewhere (``prior``),
   and labels what was held out. A single group (one slice, or neighbouring
   ones) has one fold, of tiles only.
3. **Prediction**: a head learns on every confirmed block; per-block class
   probabilities, interpolated trilinearly to every lung voxel, are weighed
   with the voxel's own HU (:func:`hu_evidence`: how much more often the
   confirmed voxels of each class read that HU than the confirmed voxels as
   a whole), which a block of about 2 mm averages away at a lesion's edge;
   argmax. The weight of each class's HU evidence is the one that best
   predicts the folds' held-out voxels (:func:`fit_evidence_weights`), and
   the folds' heads are weighed the same way before the guard judges them.
4. **Guard**: on the held-out confirmed voxels (full resolution), a label
   change the folds' heads propose (current ``a`` -> head's ``b``) is
   confirmed when the user's labels there say ``b`` more often than ``a``
   with confidence, counted in blocks (:func:`allowed_changes`). A change
   the held-out slices confirm is made across the scan; one that only the
   held-out tiles confirm, within ``near_mm`` of the corrected slices
   (:func:`near_slices`), and so is a change away from a class that no
   confirmed voxel holds (the head never saw where that class is right, so it
   cannot tell where it is wrong); changes nothing confirms are never made. If the
   changes do not raise the mean Dice of the held-out voxels above the
   current labels', nothing changes (``accepted`` False, and the message
   says why).

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
from .features import HU_CLIP
from .head import DEFAULT_HEAD_TIMESTEPS, CorrectionHead, feature_spec, train_head
from .reduced import ReducedGrid, reduced_grid, weightfree_features

__all__ = ["LearnOutcome", "learn_from_corrections", "FEATURE_CHOICES", "holdout_blocks",
           "class_dice", "validation_folds", "near_slices", "head_probabilities", "one_hot",
           "allowed_changes", "apply_changes", "HUEvidence", "hu_evidence", "fit_evidence_weights",
           "with_hu_evidence"]

#: Feature sets of the head: weight-free (default) or weight-free plus diffusion features.
FEATURE_CHOICES = ("weightfree", "diffusion")
_CLASSES = (1, 2, 3, 4, 5)
#: Edges (HU) of the histogram of voxel HU per class (:func:`hu_evidence`).
_HU_EDGES = np.arange(HU_CLIP[0], HU_CLIP[1] + 5.0, 5.0)
#: Weights of the voxel HU evidence :func:`fit_evidence_weights` chooses from.
_EVIDENCE_WEIGHTS = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))


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
        Label changes ``(from, to)`` the head may make anywhere (confirmed
        on slices it did not learn from).
    validation : dict
        ``voxels``, ``head`` and ``unsupervised`` (mean Dice and per-class Dice).
    head : CorrectionHead or None
    probabilities : (N, 6) float16 ndarray or None
        The head's label probabilities of the lung voxels (for guidance).
    timings : dict
    message : str
    local : list of (int, int)
        Label changes the head may make only within ``near_mm`` of the
        corrected slices (confirmed only on held-out parts of those slices).
    near_mm : float
    """

    labels: np.ndarray
    accepted: bool
    allowed: list
    validation: dict
    head: Optional[CorrectionHead] = None
    probabilities: Optional[np.ndarray] = None
    timings: dict = field(default_factory=dict)
    message: str = ""
    local: list = field(default_factory=list)
    near_mm: float = 10.0


def near_slices(confirmed: np.ndarray, slice_mm: float, near_mm: float) -> np.ndarray:
    """(Z, Y, X) bool (a broadcast view): slices within ``near_mm`` (mm) of one with a confirmed voxel."""
    zs = np.flatnonzero(np.asarray(confirmed).any(axis=(1, 2)))
    z = np.arange(confirmed.shape[0])
    near = (np.abs(z[:, None] - zs[None, :]) * float(slice_mm) <= near_mm).any(axis=1)
    return np.broadcast_to(near[:, None, None], confirmed.shape)


def one_hot(labels: np.ndarray) -> np.ndarray:
    """(n, 6) float32 one-hot label posteriors of (n,) labels 0..5 (other values: all zero)."""
    labels = np.asarray(labels).astype(np.int64)
    out = np.zeros((labels.size, 6), np.float32)
    ok = (labels >= 0) & (labels < 6)
    out[np.flatnonzero(ok), labels[ok]] = 1.0
    return out


def allowed_changes(current: np.ndarray, proposed: np.ndarray, truth: np.ndarray, *,
                    unit: float = 1.0, min_units: float = 20.0, z: float = 1.645
                    ) -> list[tuple[int, int]]:
    """The label changes ``(a, b)`` the held-out voxels support.

    Among the held-out voxels labelled ``a`` now and ``b`` by the head, the
    change is allowed when the truth is ``b`` more often than ``a`` with
    confidence: the one-sided Wilson bound (``z``) of b's share of the voxels
    that are ``a`` or ``b`` is above one half. Neighbouring voxels are not
    independent observations: counts are in ``unit`` voxels (the head's block),
    and a change needs at least ``min_units`` of them that are ``a`` or ``b``.
    """
    out = []
    for a in _CLASSES:
        for b in _CLASSES:
            if a == b:
                continue
            sel = (current == a) & (proposed == b)
            to_b, to_a = (truth[sel] == b).sum() / unit, (truth[sel] == a).sum() / unit
            if to_b + to_a >= min_units and _wilson_low(to_b, to_b + to_a, z) > 0.5:
                out.append((int(a), int(b)))
    return out


def _wilson_low(k: float, n: float, z: float) -> float:
    p, z2 = k / n, z * z
    return (p + z2 / (2 * n) - z * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n))) / (1 + z2 / n)


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


def validation_folds(block_labels: np.ndarray, slice_mm: float, *, share: float = 0.25,
                     join_mm: float = 10.0, max_folds: int = 3, seed: int = 0
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Held-out blocks of each validation fold, and those on slices it learned nothing from.

    A share ``share`` of the in-plane tiles of the confirmed slices
    (:func:`holdout_blocks`) is held out in every fold: evidence that a change
    holds within the corrected slices. Evidence that it holds on other slices
    needs slices the head did not learn from: confirmed planes closer than
    ``join_mm`` form one group (neighbouring slices show the same lesions),
    and each group of at least a quarter of the largest one's confirmed
    blocks is held out whole in turn (groups dealt into at most ``max_folds``
    folds; smaller ones, such as a stroke, always train). With a single
    group there is one fold, of tiles only.

    Returns
    -------
    list of (held, across)
        (grid shape) bool: the fold's held-out blocks, and the part of them on
        slices held out whole.
    """
    confirmed = np.asarray(block_labels) != 255
    tiles = holdout_blocks(block_labels, share, seed=seed)
    zs = np.flatnonzero(confirmed.any(axis=(1, 2)))
    groups: list[list[int]] = []
    for z in zs:
        if groups and (z - groups[-1][-1]) * float(slice_mm) < join_mm:
            groups[-1].append(int(z))
        else:
            groups.append([int(z)])
    sizes = np.array([confirmed[g].sum() for g in groups])
    big = [g for g, n in zip(groups, sizes) if n >= 0.25 * sizes.max()]
    if len(big) < 2:
        return [(tiles, np.zeros(confirmed.shape, bool))]
    across = [np.zeros(confirmed.shape, bool) for _ in range(min(len(big), max_folds))]
    for i, g in enumerate(big):
        across[i % len(across)][g] = confirmed[g]
    return [(a | tiles, a) for a in across]


@dataclass(frozen=True)
class HUEvidence:
    """How much more often each class shows a voxel's HU than the labelled voxels as a whole.

    Attributes
    ----------
    edges : (B + 1,) float ndarray
        Histogram bin edges (HU).
    log_ratio : (6, B) float32 ndarray
        ``log p(HU | class) - log p(HU)`` per bin; 0 (no evidence) for a
        class with too few labelled voxels, and for label 0.
    """

    edges: np.ndarray
    log_ratio: np.ndarray

    def at(self, hu: np.ndarray) -> np.ndarray:
        """(n, 6) float32 log ratios of voxels with HU ``hu`` (n,)."""
        i = np.clip(np.searchsorted(self.edges, np.asarray(hu, np.float32), side="right") - 1,
                    0, self.log_ratio.shape[1] - 1)
        return np.ascontiguousarray(self.log_ratio[:, i].T)


def hu_evidence(hu: np.ndarray, labels: np.ndarray, *, bandwidth_hu: float = 20.0,
                min_voxels: int = 50, floor: float = 0.01) -> HUEvidence:
    """Class-conditional densities of voxel HU from labelled voxels, as log ratios to the pooled one.

    Each density is a histogram in bins of 5 HU, smoothed by a Gaussian kernel of
    ``bandwidth_hu`` and mixed with a share ``floor`` of the uniform density
    (no HU is impossible for a class: noise, partial volume, a vessel).

    Parameters
    ----------
    hu : (n,) ndarray
        HU of the labelled voxels (clipped to the features' HU range).
    labels : (n,) integer ndarray
        Their labels 1..5.
    bandwidth_hu : float
        Kernel width (HU).
    min_voxels : int
        A class with fewer labelled voxels gives no evidence.
    floor : float
        Share of the uniform density in each.
    """
    from scipy.ndimage import gaussian_filter1d

    edges = _HU_EDGES
    hu = np.clip(np.asarray(hu, np.float32), edges[0], edges[-1] - 1e-3)
    labels = np.asarray(labels)

    def density(values: np.ndarray) -> np.ndarray:
        h = np.histogram(values, edges)[0].astype(np.float64)
        h = gaussian_filter1d(h, bandwidth_hu / (edges[1] - edges[0]), mode="constant")
        return (1.0 - floor) * h / max(h.sum(), 1e-12) + floor / h.size

    pooled = np.log(density(hu))
    out = np.zeros((6, edges.size - 1), np.float32)
    for c in _CLASSES:
        sel = labels == c
        if sel.sum() >= min_voxels:
            out[c] = np.log(density(hu[sel])) - pooled
    return HUEvidence(edges, out)


def with_hu_evidence(probs: np.ndarray, log_ratio: np.ndarray, weights) -> np.ndarray:
    """(n, 6) float32: ``probs`` times ``exp(weights * log_ratio)``, renormalised (label 0 stays 0).

    ``weights``: one for all classes, or (6,) one per label.
    """
    w = np.broadcast_to(np.asarray(weights, np.float32), (6,))
    logp = np.log(np.maximum(np.asarray(probs, np.float32), 1e-8)) + w * log_ratio
    logp[:, 0] = -np.inf
    logp -= logp.max(axis=1, keepdims=True)
    p = np.exp(logp)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def fit_evidence_weights(probs: np.ndarray, log_ratio: np.ndarray, truth: np.ndarray, *,
                         grid=_EVIDENCE_WEIGHTS, sweeps: int = 2, max_voxels: int = 200_000,
                         seed: int = 0) -> np.ndarray:
    """Per-class weights of the voxel HU evidence that best predict held-out labels.

    The held-out voxels' labels ``truth`` (1..5) are scored by their mean
    log-probability under :func:`with_hu_evidence`, averaged over the classes
    (each class counts equally, as in the mean Dice). Each class's weight is
    chosen from ``grid`` in turn (``sweeps`` rounds, from all zero): 0 where
    the voxel's HU tells nothing the head's blocks do not (a textured class,
    whose voxels range from air to soft tissue), up to 1 (the head's and the
    voxel's evidence as independent). At most ``max_voxels`` voxels (seeded
    sample) are scored.

    Returns
    -------
    (6,) float32 ndarray
        0 for label 0 and for classes absent from ``truth``.
    """
    truth = np.asarray(truth).astype(np.int64)
    weights = np.zeros(6, np.float32)
    if truth.size > max_voxels:
        pick = np.random.default_rng(seed).choice(truth.size, max_voxels, replace=False)
        probs, log_ratio, truth = probs[pick], log_ratio[pick], truth[pick]
    present = [c for c in _CLASSES if (truth == c).any()]
    if not present:
        return weights
    rows = np.arange(truth.size)
    groups = [truth == c for c in present]

    def score(w: np.ndarray) -> float:
        lp = np.log(np.maximum(with_hu_evidence(probs, log_ratio, w)[rows, truth], 1e-8))
        return float(np.mean([lp[g].mean() for g in groups]))

    best = score(weights)
    for _ in range(sweeps):
        for c in present:
            for v in grid:
                trial = weights.copy()
                trial[c] = v
                value = score(trial)
                if value > best + 1e-9:
                    best, weights = value, trial
    return weights


def head_probabilities(head: CorrectionHead, features: np.ndarray, *, chunk: int = 16,
                       planes: Optional[slice] = None, device: str = "cpu") -> np.ndarray:
    """(6, *grid) float32 softmax over labels 1..5 of a head on reduced-grid features (0: outside).

    ``planes``: only these grid planes are computed (the others stay 0).
    """
    import torch

    from ..device import get_device

    dev = get_device(device)
    head = head.to(dev).eval()
    n = features.shape[1]
    first, stop, _ = (planes or slice(None)).indices(n)
    out = np.zeros((6,) + features.shape[1:], np.float32)
    with torch.no_grad():
        for a in range(first, stop, chunk):
            b = min(a + chunk, stop)
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
                           prior: bool = True, voxel_hu: bool = True,
                           holdout: float = 0.25, near_mm: float = 10.0, target_mm: float = 2.0,
                           seed: int = 0,
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
    voxel_hu : bool
        Weigh the head's block probabilities with each voxel's own HU
        (:func:`hu_evidence` of the confirmed voxels; the weight that best
        predicts the held-out voxels, :func:`fit_evidence_weights`).
    holdout : float
        Share of the confirmed tiles held out for validation when the
        confirmed slices are a single group (:func:`validation_folds`).
    near_mm : float
        Slices closer than this (mm) show the same lesions: they form one
        validation group, and a change confirmed only within the corrected
        slices is made only this near them.
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
    flat_conf = np.flatnonzero(confirmed)
    # a block is confirmed when most of its lung in the confirmed slices is (a thin slice
    # is a fraction of a block that spans several)
    in_confirmed_slices = np.isin(np.unravel_index(flat_lung, lung.shape)[0],
                                  np.unique(np.unravel_index(flat_conf, lung.shape)[0]))
    conf_counts = np.bincount(grid.block_of(flat_lung[in_confirmed_slices]),
                              minlength=int(np.prod(grid.grid_shape)))
    target = grid.pool_labels(flat_conf, labels.reshape(-1)[flat_conf], lung_counts=conf_counts)
    weak = grid.pool_labels(flat_lung, auto.reshape(-1)[flat_lung]) if prior and guarded else None
    if not (target != 255).any():
        raise ValueError("too few confirmed voxels to learn from: confirm a whole slice")
    folds = validation_folds(target, grid.grid_spacing[0], share=holdout, join_mm=near_mm, seed=seed)

    def fit(held: np.ndarray, part: tuple[float, float]) -> CorrectionHead:
        train_target = np.where(held, 255, target).astype(np.uint8)
        fold_weak = None if weak is None else \
            np.where(held | (target != 255), 255, weak).astype(np.uint8)
        return train_head(feats, train_target, train_target != 255, prior=fold_weak, steps=steps,
                          crop=(min(3, feats.shape[1]), 48, 48), seed=seed, device=device,
                          feature_info=info, progress=scaled(progress, *part))

    # -- the guard's evidence: each fold's head on the confirmed voxels it did not learn from
    t = time.perf_counter()
    span = 0.35 / (len(folds) + 1)
    flat_hu = np.asarray(hu).reshape(-1)
    flat_labels = labels.reshape(-1)
    val_flat, val_rows, val_ratio, val_across, n_folds = _held_out(
        folds, target, fit, feats, grid, flat_conf, flat_hu, flat_labels, voxel_hu=voxel_hu,
        device=device, span=span)
    truth = flat_labels[val_flat]
    # the weight of the voxels' own HU: the one that best predicts the held-out labels
    hu_weight = fit_evidence_weights(val_rows, val_ratio, truth, seed=seed) if voxel_hu and n_folds \
        else np.zeros(6, np.float32)
    head_val = (with_hu_evidence(val_rows, val_ratio, hu_weight)[:, 1:].argmax(1) + 1).astype(np.uint8)
    head = fit(np.zeros(target.shape, bool), (0.85 - span, 0.85))
    timings["training"] = time.perf_counter() - t
    t = time.perf_counter()
    probs = head_probabilities(head, feats, device=device)
    rows = grid.interpolate(probs, flat_lung)
    rows[:, 0] = 0.0
    if hu_weight.any():
        evidence = hu_evidence(flat_hu[flat_conf], flat_labels[flat_conf])
        for start in range(0, flat_lung.size, 1_000_000):
            part = slice(start, start + 1_000_000)
            rows[part] = with_hu_evidence(rows[part], evidence.at(flat_hu[flat_lung[part]]), hu_weight)
    head_rows = (rows[:, 1:].argmax(1) + 1).astype(np.uint8)
    timings["prediction"] = time.perf_counter() - t
    report(progress, 95, 100, "checking on held-out voxels")

    # -- guard: held-out confirmed voxels at full resolution
    auto_val = auto.reshape(-1)[val_flat]
    if guarded:
        allowed, local = _confirmed_changes(auto_val, head_val, truth, val_across,
                                            unit=float(np.prod(grid.factors)), n_folds=n_folds)
        # a head that never saw a confirmed voxel of a class cannot tell where the class is
        # right: taking it away is made only near the corrected slices
        seen = set(np.unique(flat_labels[flat_conf]).tolist())
        local = local + [c for c in allowed if c[0] not in seen]
        allowed = [c for c in allowed if c[0] in seen]
    else:
        allowed, local = [(a, b) for a in _CLASSES for b in _CLASSES if a != b], []
    d_head, d_auto = _scores(auto_val, head_val, truth, val_across, allowed, local)
    present = sorted(set(d_head) | set(d_auto))
    mean_head = float(np.mean([d_head.get(c, 1.0) for c in present])) if present else 0.0
    mean_auto = float(np.mean([d_auto.get(c, 1.0) for c in present])) if present else 0.0
    validation = {"voxels": int(val_flat.size), "held_out_slices_voxels": int(val_across.sum()),
                  "folds": len(folds), "hu_weights": [float(w) for w in hu_weight[1:]],
                  "head": {"mean_dice": mean_head, "dice": d_head},
                  "unsupervised": {"mean_dice": mean_auto, "dice": d_auto} if guarded else None}
    accepted = (not guarded) or (val_flat.size > 0 and bool(allowed + local) and mean_head > mean_auto)
    out = np.array(auto, dtype=np.uint8, copy=True)
    out[~lung] = 0
    if accepted:
        cur = auto.reshape(-1)[flat_lung]
        new = apply_changes(cur, head_rows, allowed)
        if local:
            near = near_slices(confirmed, spacing[0], near_mm).reshape(-1)[flat_lung]
            new[near] = apply_changes(cur[near], head_rows[near], allowed + local)
        out.reshape(-1)[flat_lung] = new
    timings["total"] = time.perf_counter() - t0
    outcome = LearnOutcome(out, bool(accepted), allowed, validation, head,
                           to_float16(rows), timings, local=local, near_mm=near_mm)
    outcome.message = _describe(outcome)
    report(progress, 100, 100, "done")
    return outcome


def _held_out(folds, target, fit, feats, grid, flat_conf, flat_hu, flat_labels, *, voxel_hu: bool,
              device: str, span: float):
    """Each fold's head (``fit(held, progress_part)``) on the confirmed voxels it did not learn from.

    Returns
    -------
    flat : (n,) int
        Flat indices of those voxels (all folds, in order).
    rows : (n, 6) float32
        The fold heads' probabilities there (interpolated from their blocks).
    ratio : (n, 6) float32
        HU evidence (:func:`hu_evidence` of the confirmed voxels each fold learned from),
        0 without ``voxel_hu``.
    across : (n,) bool
        Whether the voxel lies on slices its fold held out whole.
    n_folds : int
        Folds that held out anything.
    """
    block_conf = grid.block_of(flat_conf)
    flat, rows, ratio, across = [], [], [], []
    for k, (held, held_across) in enumerate(folds):
        if not held.any() or held.sum() == (target != 255).sum():
            continue
        fold_head = fit(held, (0.5 + k * span, 0.5 + (k + 1) * span))
        held_conf = held.reshape(-1)[block_conf]
        at, learned = flat_conf[held_conf], flat_conf[~held_conf]
        z = np.flatnonzero(held.any(axis=(1, 2)))
        probs = head_probabilities(fold_head, feats, planes=slice(max(z[0] - 1, 0), z[-1] + 2),
                                   device=device)
        flat.append(at)
        rows.append(grid.interpolate(probs, at))
        evidence = hu_evidence(flat_hu[learned], flat_labels[learned]) if voxel_hu else None
        ratio.append(evidence.at(flat_hu[at]) if voxel_hu else np.zeros((at.size, 6), np.float32))
        across.append(held_across.reshape(-1)[grid.block_of(at)])
    n = len(flat)
    return (np.concatenate(flat) if n else np.zeros(0, np.int64),
            np.concatenate(rows) if n else np.zeros((0, 6), np.float32),
            np.concatenate(ratio) if n else np.zeros((0, 6), np.float32),
            np.concatenate(across) if n else np.zeros(0, bool), n)


def _scores(current, proposed, truth, across, allowed, local) -> tuple[dict, dict]:
    """Dice per class of the held-out voxels with the changes made, and as they are.

    ``allowed`` changes are made on every held-out voxel, ``local`` ones too on the
    voxels of the corrected slices (not ``across``).
    """
    merged = apply_changes(current, proposed, allowed)
    within = ~across
    merged[within] = apply_changes(current[within], proposed[within], allowed + local)
    return class_dice(merged, truth), class_dice(current, truth)


def _confirmed_changes(current, proposed, truth, across, *, unit: float, n_folds: int):
    """The changes held-out slices confirm (made anywhere) and those only held-out tiles do (near).

    Every fold holds out the same tiles: a tile voxel is counted once per fold.
    """
    allowed = allowed_changes(current[across], proposed[across], truth[across], unit=unit)
    within = ~across
    local = [c for c in allowed_changes(current[within], proposed[within], truth[within],
                                        unit=unit * max(n_folds, 1)) if c not in allowed]
    return allowed, local


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
    if not outcome.allowed and not outcome.local:
        return ("not applied: the confirmed voxels it did not learn from confirm none of the "
                f"changes the head would make ({score})")
    if not outcome.accepted:
        return ("not applied: the head is not better than the current labels on voxels it did "
                f"not learn from ({score})")

    def names(changes) -> str:
        return ", ".join(f"{TISSUE_NAMES[a]} -> {TISSUE_NAMES[b]}" for a, b in changes)

    reach = [f"changes it may make: {names(outcome.allowed)}"] if outcome.allowed else []
    if outcome.local:
        reach.append(f"within {outcome.near_mm:g} mm of the corrected slices only: "
                     f"{names(outcome.local)}")
    return f"applied ({score}); " + "; ".join(reach)
