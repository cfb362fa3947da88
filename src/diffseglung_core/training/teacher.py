"""The radiomic teacher of stage 2: patches in, ``(B, 34)`` feature vectors out."""

from __future__ import annotations

from typing import Callable

import torch

TeacherFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def get_teacher() -> TeacherFn:
    """The project's batched radiomic teacher, :func:`~diffseglung_core.radiomics.batched_features`.

    It maps HU patches ``(B, D, H, W)`` and lung masks to ``(B, 34)`` HU, GLCM,
    LBP and Gabor features (docs/radiomics.md).
    """
    from ..radiomics import batched_features

    return batched_features
