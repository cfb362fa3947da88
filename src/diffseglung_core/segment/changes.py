"""What a cluster remap changes, in well under a second, and why some voxels did not follow.

A remap (cluster ``k`` now means another tissue) can only change the voxels
that have some posterior mass in a changed cluster. :func:`remap_change`
recomputes the label posteriors of those voxels only, under the old and the
new mapping, and returns the voxels whose most probable label (argmax, no
refinement) changes. It also counts, for each changed cluster, the voxels of
the cluster that did *not* take the new label and says why: the density gates
or the structure evidence of :func:`~.assign.label_probabilities` kept them
(vessels in healthy lung, dense voxels that are not emphysema), or other
clusters outweigh it there.

:func:`label_posteriors` is the one function giving label posteriors of lung
voxels under a mapping, optionally with clusters whose gates are overridden
("forced": their mass goes to their label whatever the gates say).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Iterable, Optional

import numpy as np

from ..labels import TISSUE_NAMES, Tissue
from .assign import LabelMapping, label_probabilities
from .engine import SegmentationResult
from .remap import label_gates

__all__ = ["RemapChange", "label_posteriors", "argmax_rows", "margin_rows", "remap_change",
           "changed_clusters"]


@dataclass
class RemapChange:
    """The argmax labels a remap changes.

    Attributes
    ----------
    rows : (M,) int64 ndarray
        Lung-voxel rows (``np.nonzero(lung)`` order) whose label changes.
    before, after : (M,) uint8 ndarray
        Their argmax label under the old and the new mapping.
    clusters : list of int
        The clusters whose label (or gate override) changed.
    kept : dict
        Cluster -> {reason: voxels}: voxels of the cluster (its most probable
        cluster) that do not have the cluster's new label, and why.
    touched, touched_argmax, touched_margin : ndarray, optional
        The rows recomputed, their new argmax label and the gap between their
        two most probable labels (to keep a cache of them up to date).
    loose, loose_drop : ndarray, optional
        Rows with some moved mass that were not recomputed (their label cannot
        change) and how much their gap may have shrunk (twice the moved mass).
    seconds : float
        Time taken.
    message : str
        One line for the user.
    """

    rows: np.ndarray
    before: np.ndarray
    after: np.ndarray
    clusters: list
    kept: dict = field(default_factory=dict)
    seconds: float = 0.0
    message: str = ""
    touched: Optional[np.ndarray] = None
    touched_argmax: Optional[np.ndarray] = None
    touched_margin: Optional[np.ndarray] = None
    loose: Optional[np.ndarray] = None
    loose_drop: Optional[np.ndarray] = None

    @property
    def n_changed(self) -> int:
        return int(self.rows.size)


def _take(value, rows, n: int):
    """Rows ``rows`` of a per-voxel array, or of every per-voxel array field of a dataclass."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        return value[rows] if value.ndim >= 1 and value.shape[0] == n else value
    if is_dataclass(value):
        return replace(value, **{f.name: _take(getattr(value, f.name), rows, n)
                                 for f in fields(value)
                                 if isinstance(getattr(value, f.name), np.ndarray)})
    return value


def label_posteriors(result: SegmentationResult, mapping: Optional[LabelMapping] = None, *,
                     rows: Optional[np.ndarray] = None, forced: Iterable[int] = (),
                     gates: bool = True) -> np.ndarray:
    """(n, 6) float32 label posteriors of lung voxels under ``mapping``.

    Parameters
    ----------
    result : SegmentationResult
    mapping : LabelMapping, optional
        Default the result's.
    rows : (n,) integer ndarray, optional
        Lung-voxel rows (``np.nonzero(lung)`` order); default all.
    forced : iterable of int
        Clusters whose mass goes to their label whatever the gates say.
    gates : bool
        Apply the result's density gates / structure evidence at all.

    Returns
    -------
    (n, 6) float32 ndarray
    """
    mapping = result.mapping if mapping is None else mapping
    post = result.posteriors if rows is None else result.posteriors[rows]
    if not gates:
        return label_probabilities(post, mapping)
    n = result.posteriors.shape[0]
    g = {k: _take(v, rows, n) for k, v in label_gates(result).items()} if rows is not None \
        else label_gates(result)
    p = label_probabilities(post, mapping, **g)
    forced = sorted({int(c) for c in forced if 0 <= int(c) < mapping.n_clusters})
    if forced:
        only = np.zeros(post.shape, np.float32)
        only[:, forced] = post[:, forced]
        p -= label_probabilities(only, mapping, **g)  # what the gates made of their mass
        for c in forced:
            p[:, mapping.labels[c]] += only[:, c]
        np.clip(p, 0.0, None, out=p)
    return p


def changed_clusters(old: LabelMapping, new: LabelMapping, forced_old: Iterable[int] = (),
                     forced_new: Iterable[int] = ()) -> list[int]:
    """Clusters whose label, per-voxel labelling, edited mark or gate override differs.

    The structure evidence leaves the clusters a user relabelled alone, so
    marking a cluster as edited may change its voxels even with the same label.
    """
    fo, fn = set(forced_old), set(forced_new)
    eo, en = set(old.edited), set(new.edited)
    out = []
    for k in range(new.n_clusters):
        vo = old.voxelwise[k] if k < len(old.voxelwise) else False
        vn = new.voxelwise[k] if k < len(new.voxelwise) else False
        if old.labels[k] != new.labels[k] or vo != vn or (k in fo) != (k in fn) \
                or (k in eo) != (k in en):
            out.append(k)
    return out


def argmax_rows(p: np.ndarray) -> np.ndarray:
    """(n,) uint8 most probable lung label (1..5) of (n, 6) label posteriors."""
    return (p[:, 1:].argmax(1) + 1).astype(np.uint8)


def margin_rows(p: np.ndarray) -> np.ndarray:
    """(n,) float32 gap between the two most probable lung labels (1..5) of (n, 6) posteriors."""
    top = np.partition(np.asarray(p, np.float32)[:, 1:], 3, axis=1)[:, 3:]
    return (top[:, 1] - top[:, 0]).astype(np.float32)


_argmax = argmax_rows


def remap_change(result: SegmentationResult, new_mapping: LabelMapping, *,
                 old_mapping: Optional[LabelMapping] = None, forced_old: Iterable[int] = (),
                 forced_new: Iterable[int] = (),
                 old_argmax: Optional[np.ndarray] = None,
                 old_margin: Optional[np.ndarray] = None) -> RemapChange:
    """The voxels whose argmax label a remap changes, and why others did not change.

    Parameters
    ----------
    result : SegmentationResult
    new_mapping : LabelMapping
    old_mapping : LabelMapping, optional
        The mapping shown now (default the result's).
    forced_old, forced_new : iterable of int
        Clusters whose gates are overridden before and after.
    old_argmax : (N,) uint8 ndarray, optional
        Argmax labels of every lung voxel under the old mapping, when known
        (saves computing them again).
    old_margin : (N,) float ndarray, optional
        With ``old_argmax``: the gap between the two most probable labels under
        the old mapping. A remap moves at most the changed clusters' posterior
        mass between labels, so a voxel whose gap is more than twice that mass
        keeps its label: only the others are recomputed (the same answer, faster).

    Returns
    -------
    RemapChange
    """
    t0 = time.perf_counter()
    old_mapping = result.mapping if old_mapping is None else old_mapping
    forced_old, forced_new = set(forced_old), set(forced_new)
    clusters = changed_clusters(old_mapping, new_mapping, forced_old, forced_new)
    empty = np.zeros(0, np.int64)
    if not clusters:
        change = RemapChange(empty, empty.astype(np.uint8), empty.astype(np.uint8), [])
        change.message = "nothing to change"
        return change
    post = result.posteriors
    moved = np.zeros(post.shape[0], np.float32)
    for c in clusters:
        moved += post[:, c]
    touched = moved > 0
    loose = np.zeros(0, np.int64)
    if old_argmax is not None and old_margin is not None:
        some = touched
        touched = some & (np.asarray(old_margin) <= 2.0 * moved * (1 + 1e-3) + 1e-3)
        loose = np.flatnonzero(some & ~touched)
    rows = np.flatnonzero(touched)
    if old_argmax is not None:
        before = np.asarray(old_argmax)[rows]
    else:
        before = _argmax(label_posteriors(result, old_mapping, rows=rows, forced=forced_old))
    p_new = label_posteriors(result, new_mapping, rows=rows, forced=forced_new)
    after = _argmax(p_new)
    diff = before != after
    kept = _why_kept(result, new_mapping, rows, after, clusters, forced_new)
    change = RemapChange(rows[diff], before[diff], after[diff], clusters, kept,
                         seconds=time.perf_counter() - t0, touched=rows, touched_argmax=after,
                         touched_margin=margin_rows(p_new), loose=loose,
                         loose_drop=2.0 * moved[loose] * (1 + 1e-3) + 1e-3)
    change.message = describe_change(change, new_mapping, result)
    return change


def _why_kept(result, mapping: LabelMapping, rows: np.ndarray, after: np.ndarray,
              clusters: list, forced: set) -> dict:
    """Per changed cluster: its voxels that did not take its label, by reason."""
    hard = result.clusters.get("final") if isinstance(result.clusters, dict) else None
    if hard is None:
        return {}
    hard = np.asarray(hard)[rows]
    out = {}
    gates = label_gates(result)
    n = result.posteriors.shape[0]
    for c in clusters:
        mine = hard == c
        target = int(mapping.labels[c])
        miss = mine & (after != target)
        if not miss.any():
            out[c] = {}
            continue
        sub = rows[miss]
        ungated = _argmax(label_posteriors(result, mapping, rows=sub, gates=False))
        gated = ungated == target  # without gates it would have the label
        reasons: dict[str, int] = {}
        if gated.any() and c not in forced:
            if "evidence" in gates:
                reasons["structure evidence"] = int(gated.sum())
            else:
                context = _take(gates.get("context_hu"), sub, n)
                smooth = _take(gates.get("smooth_hu"), sub, n)
                light = np.zeros(sub.size, bool)
                if context is not None and mapping.rules.context_gate and target in (
                        Tissue.GGO, Tissue.FIBROSIS, Tissue.CONSOLIDATION):
                    light = context < mapping.rules.healthy_below + mapping.hu_offset
                dense = np.zeros(sub.size, bool)
                if smooth is not None and target == Tissue.EMPHYSEMA:
                    dense = smooth > mapping.rules.emphysema_gate_hu + mapping.hu_offset
                if (gated & light).any():
                    reasons["vessel gate"] = int((gated & light).sum())
                if (gated & dense & ~light).any():
                    reasons["emphysema gate"] = int((gated & dense & ~light).sum())
                rest = int((gated & ~light & ~dense).sum())
                if rest:
                    reasons["density gates"] = rest
        elif gated.any():
            reasons["other clusters"] = int(gated.sum())
        if (~gated).any():
            reasons["other clusters"] = reasons.get("other clusters", 0) + int((~gated).sum())
        out[c] = reasons
    return out


_WHY = {
    "vessel gate": "the vessel gate keeps voxels whose surroundings are as light as healthy lung "
                   "(below {healthy:.0f} HU) healthy",
    "emphysema gate": "the emphysema gate keeps voxels denser than {gate:.0f} HU out of emphysema",
    "density gates": "the density gates keep them",
    "structure evidence": "the structure evidence (vessels, solid components, low-attenuation "
                          "regions, walls) decides there",
    "other clusters": "other clusters outweigh this one there",
}


def describe_change(change: RemapChange, mapping: LabelMapping,
                    result: Optional[SegmentationResult] = None) -> str:
    """The user's line for a remap: voxels changed and, per cluster, why voxels kept their label."""
    text = f"{change.n_changed} voxels changed ({change.seconds:.2f} s)"
    hard = None
    if result is not None and isinstance(result.clusters, dict) and "final" in result.clusters:
        hard = np.bincount(np.asarray(result.clusters["final"]), minlength=mapping.n_clusters)
    parts = []
    for c in change.clusters:
        reasons = change.kept.get(c) or {}
        target = TISSUE_NAMES[int(mapping.labels[c])]
        size = f" of its {int(hard[c])}" if hard is not None and c < len(hard) else ""
        if not reasons:
            continue
        bits = []
        for why, count in sorted(reasons.items(), key=lambda kv: -kv[1]):
            bits.append(f"{count}: " + _WHY[why].format(
                healthy=mapping.rules.healthy_below + mapping.hu_offset,
                gate=mapping.rules.emphysema_gate_hu + mapping.hu_offset))
        parts.append(f"cluster {c} -> {target}: {sum(reasons.values())} voxels{size} "
                     f"are not {target} (" + "; ".join(bits) + ")")
    if parts:
        text += ". " + ". ".join(parts)
        if any(w in r for r in change.kept.values() for w in ("vessel gate", "emphysema gate",
                                                              "density gates")):
            text += ". Tick 'override gates' to force the label"
    return text
