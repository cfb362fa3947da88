"""A small synthetic chest with known tissue labels for the segmentation tests."""

from __future__ import annotations

import numpy as np

from diffseglung_core.volume import CTVolume

#: (label, HU, centre (z, y, x), radius in voxels) of the lesions.
LESIONS = {
    4: (-975.0, (12, 30, 30), 9),   # emphysema
    2: (-500.0, (12, 66, 34), 8),   # GGO
    5: (20.0, (12, 48, 70), 7),     # consolidation
}


def make_chest(lesions=(4, 2, 5), *, shift_hu: float = 0.0, noise_hu: float = 25.0,
               seed: int = 0, shape=(24, 96, 96), spacing=(1.5, 1.0, 1.0)):
    """(CTVolume, lung bool mask, ground-truth labels) of an elliptic chest with ball lesions."""
    rng = np.random.default_rng(seed)
    z, y, x = shape
    zz, yy, xx = np.mgrid[:z, :y, :x]
    cy, cx = y / 2, x / 2
    hu = np.full(shape, -1000.0, np.float32)
    body = ((yy - cy) / (0.46 * y)) ** 2 + ((xx - cx) / (0.46 * x)) ** 2 < 1
    hu[body] = 40.0
    lung = body & (((yy - cy) / (0.35 * y)) ** 2 + ((xx - cx) / (0.40 * x)) ** 2 < 1)
    gt = np.zeros(shape, np.uint8)
    gt[lung] = 1
    hu[lung] = -850.0
    for lab in lesions:
        val, c, r = LESIONS[lab]
        ball = ((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < r * r) & lung
        hu[ball] = val
        gt[ball] = lab
    hu += rng.normal(0, noise_hu, shape).astype(np.float32) + np.float32(shift_hu)
    return CTVolume.from_array(hu, spacing), lung, gt
