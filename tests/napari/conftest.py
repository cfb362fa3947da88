"""Fixtures for the napari plugin tests: a tiny synthetic chest CT on disk."""

from __future__ import annotations

import numpy as np
import pytest

from diffseglung_core.volume import CTVolume


def tiny_chest(shape=(12, 48, 48), spacing=(4.0, 2.0, 2.0), seed=0) -> CTVolume:
    """Air around a soft-tissue body holding two low-density lungs (HU)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[: shape[0], : shape[1], : shape[2]].astype(np.float32)
    cy, cx = shape[1] / 2, shape[2] / 2
    hu = np.full(shape, -1000.0, np.float32)
    body = ((y - cy) / (0.42 * shape[1])) ** 2 + ((x - cx) / (0.46 * shape[2])) ** 2 < 1
    hu[body] = 40.0
    for side in (-1, 1):
        lung = ((y - cy) / (0.3 * shape[1])) ** 2 + ((x - cx - side * 0.2 * shape[2]) /
                                                     (0.14 * shape[2])) ** 2 < 1
        lung &= (z > 0) & (z < shape[0] - 1)
        hu[lung] = -850.0
    hu += rng.normal(0, 15, shape).astype(np.float32)
    return CTVolume.from_array(hu, spacing, origin=(40.0, -30.0, 12.0))


@pytest.fixture
def chest() -> CTVolume:
    return tiny_chest()
