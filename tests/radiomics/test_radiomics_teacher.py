"""The stage-2 teacher is the batched radiomics of this package."""

from __future__ import annotations

import numpy as np
import torch

from diffseglung_core.radiomics import batched_features, teacher_vectors
from diffseglung_core.volume import normalize_hu


def test_teacher_vectors_are_batched_features_of_the_hu_patches():
    hu = torch.full((5, 4, 6, 6), -850.0) + torch.arange(6.0) * 10
    mask = torch.ones(5, 4, 6, 6)  # float masks, as the training patches carry them
    ct = normalize_hu(hu.numpy())
    out = teacher_vectors(ct, mask.numpy(), batch_size=2)
    assert out.shape == (5, 34) and np.isfinite(out).all()
    assert np.allclose(out, batched_features(hu, mask).numpy())
    assert teacher_vectors(ct[:0], mask.numpy()[:0]).shape == (0, 34)
