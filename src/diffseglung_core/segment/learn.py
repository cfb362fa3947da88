"""Learn from corrections: features, a correction head trained on confirmed voxels, its labels.

The whole job behind napari's "Learn" and ``diffseglung train-head``: frozen
diffusion features of the scan (:func:`~.head.extract_head_features`), a small
head trained on the voxels a user confirmed or painted (:func:`~.head.train_head`)
and its labels for every lung voxel (:func:`~.head.predict_head`), after
PathSegDiff (a frozen diffusion model as feature extractor, a light head on top).
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..progress import ProgressCallback
from .head import (
    DEFAULT_HEAD_TIMESTEPS,
    CorrectionHead,
    extract_head_features,
    feature_spec,
    predict_head,
    train_head,
)

__all__ = ["learn_from_corrections"]


def learn_from_corrections(hu: np.ndarray, labels: np.ndarray, confirmed: np.ndarray,
                           lung: np.ndarray, *, model=None, steps: int = 300, prior: bool = False,
                           device: str = "auto", progress: Optional[ProgressCallback] = None,
                           ) -> tuple[np.ndarray, CorrectionHead]:
    """Train a correction head on the confirmed voxels and label the scan with it.

    Parameters
    ----------
    hu : (Z, Y, X) float32 ndarray
        CT in HU.
    labels : (Z, Y, X) integer ndarray
        Labels shown to the user (0..5).
    confirmed : (Z, Y, X) bool ndarray
        The voxels to learn from (see :func:`~.edits.confirmed_voxels`).
    lung : (Z, Y, X) ndarray
        Lung mask (nonzero inside).
    model : LoadedModel, str or None
        Diffusion model giving the features (None: the shipped default).
    steps : int
        Head training steps.
    prior : bool
        Also learn ``labels`` outside ``confirmed``, weakly.
    device : str
        ``"auto" | "cpu" | "cuda" | "mps"``.
    progress : callable, optional
        ``progress(done, total, stage)``.

    Returns
    -------
    prediction : (Z, Y, X) uint8 ndarray
        The head's labels, 0 outside the lung.
    head : CorrectionHead
    """
    features = extract_head_features(hu, model, lung_mask=lung, device=device, progress=progress)
    info = feature_spec(model, DEFAULT_HEAD_TIMESTEPS, True, True, 0)
    head = train_head(features, labels, confirmed, prior=labels if prior else None, steps=steps,
                      feature_info=info, device=device, progress=progress)
    return predict_head(head, features, lung, device=device, progress=progress), head
