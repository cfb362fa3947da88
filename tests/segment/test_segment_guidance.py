"""Confidence and the next slice to check."""

import numpy as np
import pytest

from diffseglung_core.segment.guidance import confidence_map, next_slice, slice_scores, voxel_uncertainty


def _probs(rows):
    p = np.zeros((len(rows), 6), np.float32)
    for i, row in enumerate(rows):
        for label, value in row.items():
            p[i, label] = value
    return p


def test_uncertainty_counts_only_where_disease_is_at_stake():
    p = _probs([{1: 0.55, 2: 0.45},   # healthy vs GGO, close: uncertain
                {1: 0.55, 4: 0.05, 3: 0.4},  # healthy vs fibrosis
                {1: 1.0},              # sure healthy
                {2: 0.9, 5: 0.1}])     # GGO, fairly sure
    u = voxel_uncertainty(p)
    assert u[0] == pytest.approx(0.9) and u[1] == pytest.approx(0.85)
    assert u[2] == 0.0 and u[3] == pytest.approx(0.2)


def test_next_slice_skips_confirmed_slices():
    lung = np.zeros((4, 3, 3), bool)
    lung[:, 1, :] = True  # three voxels per slice, rows in np.nonzero order
    rows = []
    for z in range(4):
        doubt = {0: 0.0, 1: 0.2, 2: 0.45, 3: 0.3}[z]
        rows += [{1: 1.0 - doubt, 2: doubt}] * 3
    p = _probs(rows)
    scores = slice_scores(p, lung)
    np.testing.assert_allclose(scores, [0.0, 3 * 0.4, 3 * 0.9, 3 * 0.6], atol=1e-5)
    assert next_slice(p, lung) == 2
    assert next_slice(p, lung, confirmed=[2]) == 3
    assert next_slice(p, lung, confirmed=[1, 2, 3]) is None  # slice 0 holds no doubt
    conf = confidence_map(p, lung)
    assert conf[2, 1, 0] == pytest.approx(0.55) and not conf[:, 0].any()
