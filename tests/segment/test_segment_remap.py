"""Relabelling a result from its cached posteriors: mappings, refinement, one slice, the cluster table."""

import numpy as np
import pytest

from diffseglung_core.labels import Tissue
from diffseglung_core.segment import RefineOptions, apply_mapping, segment_volume
from diffseglung_core.segment.remap import cluster_rows, label_gates, preview_slice, relabel


@pytest.fixture(scope="module")
def result(chest):
    vol, lung, _ = chest
    return segment_volume(vol, lung_mask=lung, features="density", device="cpu", k=5, n_init=1)


def test_relabel_applies_a_mapping_without_touching_the_result(result):
    mapping = result.mapping.with_label(0, Tissue.CONSOLIDATION)
    updated, labels = relabel(result, mapping, refine=False)
    assert updated is not result and updated.mapping is mapping and result.mapping is not mapping
    assert np.array_equal(labels, apply_mapping(result, mapping, refine=False))
    assert updated.params["refine"] is False and result.params["refine"] is True
    again, _ = relabel(result, result.mapping, refine_options=RefineOptions(iterations=2))
    assert again.params["refine_options"]["iterations"] == 2


def test_preview_slice_matches_the_volume(result):
    z = int(np.argmax((result.lung > 0).sum(axis=(1, 2))))
    raw = preview_slice(result, z, refine=False)
    assert np.array_equal(raw, apply_mapping(result, result.mapping, refine=False)[z])
    refined = preview_slice(result, z, refine=True)
    assert np.array_equal(refined > 0, result.lung[z] > 0)


def test_cluster_rows_and_gates(result):
    rows = cluster_rows(result.mapping)
    assert [r["cluster"] for r in rows] == list(range(5))
    assert sum(r["voxels"] for r in rows) == int((result.lung > 0).sum())
    assert {"mean_hu", "p10_hu", "median_hu", "p90_hu", "label", "flag"} <= set(rows[0])
    gates = label_gates(result)
    assert gates["smooth_hu"].shape == (int((result.lung > 0).sum()),)
