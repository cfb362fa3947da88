"""A correction session: the state behind a result a user edits, one undoable step at a time.

A viewer shows labels; behind them are the cluster -> label mapping, the
clusters whose gates the user overrode, the automatic labels and the voxels
painted by hand (:class:`~.edits.HandEdits`), and the axial slices the user
confirmed. Every operation (a remap, a refinement, an object relabel, the
labels of a correction head) is a :class:`Step`: the voxels of the shown
labels it changes and their new values (one ``Labels.data_setitem`` call, so
one undo step in napari), plus what it changes behind them.

A viewer's undo and redo only restore the shown voxels. :meth:`CorrectionSession.sync`
brings the state behind them into line: each step remembers a few of the
voxels it changed ("probes"); when the shown labels hold their old values
again the step was undone and its mapping, automatic labels and hand-edit
marks are restored; when they hold the new values again it was redone. Every
operation syncs first, so an undone remap is never taken for hand edits.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Optional

import numpy as np

from .assign import LabelMapping
from .changes import RemapChange, argmax_rows, label_posteriors, margin_rows, remap_change
from .edits import HandEdits, correction_mask
from .engine import SegmentationResult

__all__ = ["Step", "CorrectionSession", "voxel_indices"]

_PROBES = 64


def voxel_indices(flat: np.ndarray, shape) -> tuple[np.ndarray, ...]:
    """``(z, y, x)`` index arrays of flat indices, in the smallest integer dtype that holds them.

    Small index arrays keep a viewer's undo history small (napari stores them).
    """
    dtype = np.uint16 if max(shape) <= np.iinfo(np.uint16).max else np.int64
    return tuple(i.astype(dtype) for i in np.unravel_index(np.asarray(flat, np.int64), shape))


@dataclass
class Step:
    """One undoable operation on the shown labels.

    Attributes
    ----------
    kind : str
        ``"remap"``, ``"refine"``, ``"relabel"``, ``"learn"``.
    where : tuple of ndarray
        ``(z, y, x)`` of the shown voxels that change.
    values : ndarray
        Their new values.
    message : str
        What the step did, for the user.
    """

    kind: str
    where: tuple
    values: np.ndarray
    message: str = ""
    before: Optional[np.ndarray] = None
    auto_flat: Optional[np.ndarray] = None
    auto_before: Optional[np.ndarray] = None
    auto_after: Optional[np.ndarray] = None
    mapping_before: Optional[LabelMapping] = None
    mapping_after: Optional[LabelMapping] = None
    forced_before: Optional[frozenset] = None
    forced_after: Optional[frozenset] = None
    marks_flat: Optional[np.ndarray] = None
    marks_before: Optional[np.ndarray] = None
    applied: bool = False
    probe: tuple = ()
    probe_before: Optional[np.ndarray] = None
    probe_after: Optional[np.ndarray] = None
    extra: dict = field(default_factory=dict)

    @property
    def n_changed(self) -> int:
        """Shown voxels the step changes."""
        return int(self.where[0].size) if self.where else 0


class CorrectionSession:
    """The state behind a result layer a user corrects.

    Parameters
    ----------
    result : SegmentationResult
    shown : (Z, Y, X) integer ndarray, optional
        The labels shown first (default ``result.labels``).
    edits : HandEdits, optional
        Hand edits to continue (default: none yet, ``shown`` is automatic).

    Attributes
    ----------
    result : SegmentationResult
        Its ``mapping`` is the mapping in force.
    edits : HandEdits
        Automatic labels and painted voxels.
    forced : set of int
        Clusters whose density gates are overridden.
    confirmed : set of int
        Axial slices the user confirmed.
    steps : list of Step
    """

    def __init__(self, result: SegmentationResult, shown: Optional[np.ndarray] = None, *,
                 edits: Optional[HandEdits] = None):
        self.result = result
        shown = result.labels if shown is None else shown
        self.edits = edits if edits is not None else HandEdits(shown)
        self.default_mapping = result.mapping
        self.forced: set[int] = set()
        self.confirmed: set[int] = set()
        self.steps: list[Step] = []
        self._flat: Optional[np.ndarray] = None
        self._argmax: Optional[np.ndarray] = None
        self._margin: Optional[np.ndarray] = None

    # -- helpers -------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return tuple(self.edits.auto.shape)

    @property
    def mapping(self) -> LabelMapping:
        return self.result.mapping

    def lung_flat(self) -> np.ndarray:
        """Flat indices of the lung voxels, in the rows' order (cached)."""
        if self._flat is None:
            self._flat = np.flatnonzero(np.asarray(self.result.lung) > 0)
        return self._flat

    def posteriors(self, mapping: Optional[LabelMapping] = None) -> np.ndarray:
        """(N, 6) label posteriors of the lung voxels under the mapping and overrides in force."""
        return label_posteriors(self.result, mapping, forced=self.forced)

    def label_probabilities(self) -> np.ndarray:
        """(N, 6) label posteriors behind the labels shown: those of the last correction head
        when learning was the last applied step that relabelled the scan, else the mapping's."""
        for step in reversed(self.steps):
            if not step.applied or step.kind not in ("learn", "remap", "reset", "refine"):
                continue
            if step.kind == "learn" and step.extra.get("probabilities") is not None:
                return np.asarray(step.extra["probabilities"], np.float32)
            break
        return self.posteriors()

    def argmax(self) -> np.ndarray:
        """(N,) uint8 argmax labels of the lung voxels under the mapping in force (cached)."""
        if self._argmax is None:
            p = self.posteriors()
            self._argmax, self._margin = argmax_rows(p), margin_rows(p)
        return self._argmax

    def remap(self, mapping: LabelMapping, forced: Optional[Iterable[int]] = None) -> RemapChange:
        """What remapping to ``mapping`` (and gate overrides ``forced``) changes; nothing is applied.

        Safe to run in a worker thread; apply it with :meth:`remap_step` and :meth:`commit`.
        """
        forced = self.forced if forced is None else set(forced)
        return remap_change(self.result, mapping, old_mapping=self.mapping, forced_old=self.forced,
                            forced_new=forced, old_argmax=self.argmax(), old_margin=self._margin)

    # -- building steps ----------------------------------------------------------------
    def _shown_step(self, kind: str, shown: np.ndarray, flat: np.ndarray, new_auto: np.ndarray,
                    message: str, *, keep: Optional[np.ndarray] = None) -> Step:
        """A step setting the automatic labels at ``flat`` to ``new_auto``; the shown voxels
        follow except painted ones (and ``keep``)."""
        auto = self.edits.auto.reshape(-1)
        differ = auto[flat] != new_auto
        flat, new_auto = flat[differ], new_auto[differ]
        follow = ~self.edits.mask.reshape(-1)[flat]
        if keep is not None:
            follow &= ~keep.reshape(-1)[flat]
        shown_flat = np.asarray(shown).reshape(-1)
        s_flat = flat[follow]
        s_new = new_auto[follow].astype(shown.dtype)
        move = shown_flat[s_flat] != s_new
        s_flat, s_new = s_flat[move], s_new[move]
        step = Step(kind, voxel_indices(s_flat, self.shape), s_new, message,
                    before=shown_flat[s_flat].copy(), auto_flat=flat,
                    auto_before=auto[flat].copy(), auto_after=new_auto.astype(auto.dtype))
        return step

    def remap_step(self, shown: np.ndarray, change: RemapChange, mapping: LabelMapping,
                   forced: Iterable[int]) -> Step:
        """The step of a remap computed by :func:`~.changes.remap_change`.

        The automatic labels follow the new argmax labels of the changed voxels;
        painted voxels keep their label.
        """
        self.sync(shown)
        self.edits.update(shown)
        flat = self.lung_flat()[change.rows]
        step = self._shown_step("remap", shown, flat, change.after, "")
        painted = int(self.edits.mask.reshape(-1)[flat].sum())
        step.message = change.message.replace(
            f"{change.n_changed} voxels changed",
            f"{step.n_changed} voxels changed" + (f" ({painted} painted voxels kept)" if painted else ""),
            1)
        step.mapping_before, step.mapping_after = self.result.mapping, mapping
        step.forced_before = frozenset(self.forced)
        step.forced_after = frozenset(int(c) for c in forced)
        step.extra["rows"], step.extra["argmax"] = change.touched, change.touched_argmax
        step.extra["margin"] = change.touched_margin
        step.extra["loose"], step.extra["loose_drop"] = change.loose, change.loose_drop
        return step

    def replace_step(self, kind: str, shown: np.ndarray, new_auto: np.ndarray, message: str = "", *,
                     keep: Optional[np.ndarray] = None, mapping: Optional[LabelMapping] = None,
                     forced: Optional[Iterable[int]] = None) -> Step:
        """A step making ``new_auto`` (Z, Y, X) the automatic labels of the lung voxels.

        The shown voxels follow except painted ones and ``keep`` (e.g. confirmed
        slices). ``mapping`` and ``forced``, when given, come into force with it.
        """
        self.sync(shown)
        self.edits.update(shown)
        flat = self.lung_flat()
        values = np.asarray(new_auto).reshape(-1)[flat]
        step = self._shown_step(kind, shown, flat, values, message, keep=keep)
        if not step.message:
            step.message = f"{step.n_changed} voxels changed"
        if mapping is not None or forced is not None:
            step.mapping_before, step.mapping_after = self.result.mapping, mapping or self.result.mapping
            step.forced_before = frozenset(self.forced)
            step.forced_after = frozenset(self.forced if forced is None else (int(c) for c in forced))
        return step

    def reset_step(self, shown: np.ndarray) -> Step:
        """A step back to the engine's own labels and mapping (painted voxels are kept)."""
        step = self.replace_step("reset", shown, np.asarray(self.result.labels), "",
                                 mapping=self.default_mapping, forced=())
        step.message = f"back to the engine's labels: {step.n_changed} voxels changed"
        return step

    def learn_step(self, shown: np.ndarray, outcome) -> Step:
        """The step of a correction head's outcome (:func:`~.learn.learn_from_corrections`).

        Confirmed slices and painted voxels keep their labels; a head that was
        not accepted changes nothing.
        """
        self.sync(shown)
        keep = correction_mask(self.shape, sorted(self.confirmed))
        labels = outcome.labels if outcome.accepted else self.edits.auto
        step = self.replace_step("learn", shown, labels, "", keep=keep)
        step.message = (f"{step.n_changed} voxels changed; " if outcome.accepted else "") \
            + outcome.message
        if outcome.accepted:
            step.extra["probabilities"] = outcome.probabilities
        return step

    def relabel_step(self, shown: np.ndarray, where: tuple, values: np.ndarray,
                     message: str = "") -> Step:
        """A step painting ``values`` at ``where`` by hand (e.g. a selected object).

        The voxels become hand edits: later remaps, refinements and learning keep them.
        """
        self.sync(shown)
        self.edits.update(shown)
        flat = np.ravel_multi_index(tuple(np.asarray(w, np.int64) for w in where), self.shape) \
            if len(where) and where[0].size else np.zeros(0, np.int64)
        shown_flat = np.asarray(shown).reshape(-1)
        step = Step("relabel", tuple(where), np.asarray(values, shown.dtype), message,
                    before=shown_flat[flat].copy(), marks_flat=flat,
                    marks_before=self.edits.mask.reshape(-1)[flat].copy())
        if not step.message:
            step.message = f"{step.n_changed} voxels relabelled"
        return step

    # -- committing and syncing ------------------------------------------------------------
    def commit(self, step: Step) -> Step:
        """Record ``step`` as applied (call it once the shown labels hold ``step.values``)."""
        if step.n_changed:
            # the viewer's redo history is gone: so are the undone steps
            self.steps = [s for s in self.steps if s.applied]
            rng = np.random.default_rng(len(self.steps))
            pick = np.sort(rng.choice(step.n_changed, min(_PROBES, step.n_changed), replace=False))
            step.probe = tuple(w[pick] for w in step.where)
            step.probe_before = step.before[pick] if step.before is not None else None
            step.probe_after = step.values[pick]
            self.steps.append(step)
        self._do(step)
        step.applied = True
        return step

    def _do(self, step: Step) -> None:
        if step.mapping_after is not None:
            if self._argmax is not None and step.extra.get("rows") is not None \
                    and step.applied is False and step.mapping_before is self.result.mapping:
                self._argmax[step.extra["rows"]] = step.extra["argmax"]
                self._margin[step.extra["rows"]] = step.extra["margin"]
                if step.extra.get("loose") is not None:  # a lower bound of their gap now
                    self._margin[step.extra["loose"]] -= step.extra["loose_drop"]
            else:
                self._argmax = self._margin = None
        if step.auto_flat is not None:
            self.edits.auto.reshape(-1)[step.auto_flat] = step.auto_after
        if step.marks_flat is not None:
            self.edits.mask.reshape(-1)[step.marks_flat] = True
        if step.mapping_after is not None:
            self.result = replace(self.result, mapping=step.mapping_after)
        if step.forced_after is not None:
            self.forced = set(step.forced_after)

    def _undo(self, step: Step) -> None:
        if step.mapping_before is not None:
            self._argmax = self._margin = None
        if step.auto_flat is not None:
            self.edits.auto.reshape(-1)[step.auto_flat] = step.auto_before
        if step.marks_flat is not None:
            self.edits.mask.reshape(-1)[step.marks_flat] = step.marks_before
        if step.mapping_before is not None:
            self.result = replace(self.result, mapping=step.mapping_before)
        if step.forced_before is not None:
            self.forced = set(step.forced_before)

    @staticmethod
    def _state(step: Step, shown: np.ndarray) -> Optional[bool]:
        """True: the shown labels hold the step's values; False: its old ones; None: neither."""
        if not step.probe or step.probe_before is None:
            return None
        now = np.asarray(shown)[step.probe]
        n = len(now)
        if np.count_nonzero(now == step.probe_after) >= 0.8 * n:
            return True
        if np.count_nonzero(now == step.probe_before) >= 0.8 * n:
            return False
        return None

    def sync(self, shown: np.ndarray) -> list[str]:
        """Follow the viewer's undo and redo; returns what was undone or redone.

        Undo and redo are last in, first out: only the latest applied step can
        have been undone, and only the earliest undone one redone, so a later
        step that happens to restore an earlier step's old values is not taken
        for an undo.
        """
        done = []
        applied = [s for s in self.steps if s.applied]
        while applied and self._state(applied[-1], shown) is False:
            step = applied.pop()
            self._undo(step)
            step.applied = False
            done.append(f"undone: {step.kind}")
        if not done:
            for step in self.steps[len(applied):]:
                if self._state(step, shown) is not True:
                    break
                self._do(step)
                step.applied = True
                done.append(f"redone: {step.kind}")
        return done

    # -- slices -------------------------------------------------------------------------------
    def confirm(self, z: int) -> None:
        """Mark axial slice ``z`` as checked by the user."""
        if not 0 <= int(z) < self.shape[0]:
            raise IndexError(f"slice {z} outside 0..{self.shape[0] - 1}")
        self.confirmed.add(int(z))
