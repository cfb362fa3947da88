"""The training code's teacher is the batched radiomics of this package."""

from __future__ import annotations

import warnings

import torch

from diffseglung_core.radiomics import batched_features


def test_get_teacher_returns_batched_features():
    from diffseglung_core.training.teacher import get_teacher

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fallback teacher would warn
        fn = get_teacher()
    assert fn is batched_features
    hu = torch.full((2, 4, 6, 6), -850.0) + torch.arange(6.0) * 10
    mask = torch.ones(2, 4, 6, 6)  # float masks, as the training patches carry them
    out = fn(hu, mask)
    assert out.shape == (2, 34) and torch.isfinite(out).all()
