"""Remaps that touch only what changes, say why, and a session that follows undo and redo."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from diffseglung_core.labels import Tissue
from diffseglung_core.segment import segment_volume
from diffseglung_core.segment.changes import argmax_rows, label_posteriors, remap_change
from diffseglung_core.segment.refine import argmax_labels
from diffseglung_core.segment.session import CorrectionSession


@pytest.fixture(scope="module")
def result(chest):
    vol, lung, _ = chest
    return segment_volume(vol, lung_mask=lung, features="density", device="cpu", k=5, n_init=1,
                          refine=False)


def _without_evidence(result):
    """The result with the plain density gates (no structure evidence)."""
    return replace(result, evidence=None) if hasattr(result, "evidence") else result


def _apply(labels, session, change):
    out = labels.copy()
    out.reshape(-1)[session.lung_flat()[change.rows]] = change.after
    return out


@pytest.mark.parametrize("label", [Tissue.GGO, Tissue.CONSOLIDATION, Tissue.EMPHYSEMA])
def test_remap_change_is_the_full_argmax(result, label):
    session = CorrectionSession(result)
    full_before = argmax_labels(label_posteriors(result), result.lung)
    for cluster in range(result.mapping.n_clusters):
        mapping = result.mapping.with_label(cluster, label)
        change = remap_change(result, mapping)
        expected = argmax_labels(label_posteriors(result, mapping), result.lung)
        assert np.array_equal(_apply(full_before, session, change), expected)
        assert (change.before != change.after).all()
        assert change.message.startswith(f"{change.n_changed} voxels changed")


def test_gates_are_explained_and_can_be_overridden(result):
    res = _without_evidence(result)
    session = CorrectionSession(res)
    healthy = [k for k, lab in enumerate(res.mapping.labels) if lab == Tissue.HEALTHY]
    biggest = max(healthy, key=lambda k: res.mapping.stats[k]["n_voxels"])
    mapping = res.mapping.with_label(biggest, Tissue.GGO)
    change = session.remap(mapping)
    reasons = change.kept[biggest]
    assert reasons.get("vessel gate", 0) > 0.5 * res.mapping.stats[biggest]["n_voxels"]
    assert "vessel gate" in change.message and "override gates" in change.message
    forced = session.remap(mapping, forced={biggest})
    assert forced.n_changed > change.n_changed
    assert "vessel gate" not in forced.kept[biggest]
    expected = argmax_rows(label_posteriors(res, mapping, gates=False))
    hard = np.asarray(res.clusters["final"])
    now = session.argmax().copy()
    now[forced.rows] = forced.after
    # every voxel of the forced cluster that it wins without gates is GGO now
    assert (now[(hard == biggest) & (expected == Tissue.GGO)] == Tissue.GGO).all()


def test_session_follows_undo_and_redo(result):
    session = CorrectionSession(result)
    shown = np.array(result.labels, copy=True)
    original = shown.copy()
    # a hand edit first: it must survive the remap
    z, y, x = np.argwhere(shown == Tissue.HEALTHY)[0]
    paint = session.relabel_step(shown, (np.array([z]), np.array([y]), np.array([x])),
                                 np.array([Tissue.FIBROSIS], np.uint8))
    shown[paint.where] = paint.values
    session.commit(paint)
    cluster = int(np.asarray(result.clusters["final"])[0])
    target = Tissue.CONSOLIDATION if result.mapping.labels[cluster] != Tissue.CONSOLIDATION else Tissue.GGO
    mapping = result.mapping.with_label(cluster, target)
    change = session.remap(mapping)
    step = session.remap_step(shown, change, mapping, session.forced)
    assert step.n_changed > 0 and "voxels changed" in step.message
    before_remap = shown.copy()
    shown[step.where] = step.values
    session.commit(step)
    assert session.mapping.labels[cluster] == target
    assert shown[z, y, x] == Tissue.FIBROSIS  # the painted voxel kept its label
    after_remap = shown.copy()
    auto_after = session.edits.auto.copy()

    # the viewer undoes the remap: shown labels go back; the session follows
    shown[step.where] = step.before
    assert np.array_equal(shown, before_remap)
    assert session.sync(shown) == ["undone: remap"]
    assert session.mapping.labels[cluster] == result.mapping.labels[cluster]
    session.edits.update(shown)
    assert session.edits.n_edited == 1  # the undone remap is not taken for hand edits
    assert np.array_equal(session.edits.auto, original)
    # and redoes it
    shown[step.where] = step.values
    assert session.sync(shown) == ["redone: remap"]
    assert session.mapping.labels[cluster] == target
    assert np.array_equal(session.edits.auto, auto_after) and np.array_equal(shown, after_remap)
    # undo both: the paint mark goes too
    shown[step.where] = step.before
    shown[paint.where] = paint.before
    assert session.sync(shown) == ["undone: remap", "undone: relabel"]
    session.edits.update(shown)
    assert session.edits.n_edited == 0 and np.array_equal(shown, original)


def test_replace_step_keeps_confirmed_and_painted_voxels(result):
    session = CorrectionSession(result)
    shown = np.array(result.labels, copy=True)
    lung = np.asarray(result.lung) > 0
    painted = tuple(np.array([v]) for v in np.argwhere(lung)[5])
    step = session.relabel_step(shown, painted, np.array([Tissue.EMPHYSEMA], np.uint8))
    shown[step.where] = step.values
    session.commit(step)
    z = int(np.flatnonzero(lung.any(axis=(1, 2)))[3])
    keep = np.zeros(shown.shape, bool)
    keep[z] = True
    new = np.where(lung, Tissue.GGO, 0).astype(np.uint8)
    step = session.replace_step("learn", shown, new, keep=keep)
    shown[step.where] = step.values
    session.commit(step)
    assert np.array_equal(shown[z], result.labels[z])
    assert shown[painted] == Tissue.EMPHYSEMA
    others = lung & ~keep
    others[painted] = False
    assert (shown[others] == Tissue.GGO).all()
    assert step.n_changed == int((result.labels[others] != Tissue.GGO).sum())


def test_sequential_remaps_keep_the_argmax_exact(result):
    """Remaps skip voxels whose label cannot change; after many, the labels are still exact."""
    session = CorrectionSession(result)
    shown = argmax_labels(label_posteriors(result), result.lung)
    rng = np.random.default_rng(1)
    for _ in range(12):
        cluster = int(rng.integers(result.mapping.n_clusters))
        label = int(rng.integers(1, 6))
        mapping = session.mapping.with_label(cluster, label)
        forced = session.forced | {cluster} if rng.random() < 0.3 else session.forced - {cluster}
        change = session.remap(mapping, forced)
        step = session.remap_step(shown, change, mapping, forced)
        shown[step.where] = step.values
        session.commit(step)
        exact = argmax_rows(label_posteriors(session.result, forced=session.forced))
        assert np.array_equal(session.argmax(), exact)
        assert np.array_equal(shown[result.lung > 0], exact)
