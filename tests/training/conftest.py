"""Small patch sets with known structure for training tests."""

from __future__ import annotations

import numpy as np
import pytest

from diffseglung_core.training.data import PatchArrays


def _synthetic_volume(seed: int, shape=(32, 48, 48)):
    """Lung (-850 HU) with dense (GGO -650, consolidation 30 HU) and emphysema (-970 HU) balls."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape)
    hu = np.full(shape, 40.0, np.float32)  # soft tissue around the lung
    lung = ((z - shape[0] / 2) ** 2 / 14 ** 2 + (y - shape[1] / 2) ** 2 / 20 ** 2
            + (x - shape[2] / 2) ** 2 / 20 ** 2) < 1
    hu[lung] = -850
    for value in (-650.0, 30.0, -970.0, -650.0):
        c = rng.integers([8, 14, 14], [24, 34, 34])
        r = rng.uniform(3, 6)
        ball = ((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) < r * r
        hu[ball & lung] = value
    hu += rng.normal(0, 25, shape).astype(np.float32)
    return hu, lung


def phantom_volumes(n: int = 2):
    """``(name, hu, lung)`` of the project phantom when installed, else synthetic volumes."""
    try:
        from diffseglung_core.phantom import make_phantom
    except ImportError:
        make_phantom = None
    out = []
    for s in range(n):
        if make_phantom is not None:
            ph = make_phantom((32, 64, 64), seed=s)
            hu = ph.volume.hu if hasattr(ph.volume, "hu") else ph.volume
            out.append((f"phantom-{s}", np.asarray(hu), np.asarray(ph.lung)))
        else:
            hu, lung = _synthetic_volume(s)
            out.append((f"synthetic-{s}", hu, lung))
    return out


@pytest.fixture(scope="session")
def phantom_patches() -> PatchArrays:
    """32 patches of 16^3 voxels from two phantom volumes."""
    return PatchArrays.from_volumes(phantom_volumes(2), (16, 16, 16), 16, seed=0)
