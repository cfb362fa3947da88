"""Class volumes per lung."""

import numpy as np
import pytest

from diffseglung_core.segment.sides import class_volumes_by_side


def test_volumes_by_side():
    labels = np.zeros((2, 4, 4), np.uint8)
    sides = np.zeros_like(labels)
    sides[:, :, :2], sides[:, :, 2:] = 1, 2
    labels[sides > 0] = 1
    labels[0, 0, 0] = 5  # right lung
    labels[1, 3, 3] = 2  # left lung
    rows = {r["label"]: r for r in class_volumes_by_side(labels, (2.0, 1.0, 1.0), sides)}
    assert rows[5]["right_ml"] == pytest.approx(0.002) and rows[5]["left_ml"] == 0.0
    assert rows[2]["left_ml"] == pytest.approx(0.002) and rows[2]["left_percent"] == pytest.approx(100 / 16)
    assert rows[1]["voxels"] == 30 and rows[1]["percent_of_lung"] == pytest.approx(100 * 30 / 32)
    plain = class_volumes_by_side(labels, (2.0, 1.0, 1.0))
    assert plain[0]["right_ml"] is None and plain[0]["volume_ml"] == pytest.approx(0.06)
