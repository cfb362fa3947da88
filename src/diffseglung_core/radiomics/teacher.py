"""The radiomic teacher of stage 2: CT patches in, one 34-d radiomic vector per patch out."""

from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch

from ..volume import denormalize_hu
from .batched import batched_features
from .names import N_FEATURES

__all__ = ["teacher_vectors"]


def teacher_vectors(ct: np.ndarray, mask: np.ndarray, *, batch_size: int = 64,
                    device: Optional[Union[str, torch.device]] = None) -> np.ndarray:
    """Raw radiomic teacher vectors of CT patches on the model's scale.

    Parameters
    ----------
    ct : (N, D, H, W) array
        Normalised CT (:func:`~diffseglung_core.volume.normalize_hu`); a
        memory map is read ``batch_size`` patches at a time.
    mask : (N, D, H, W) array
        Lung masks of the patches (nonzero inside).
    batch_size : int
        Patches per call of :func:`~.batched.batched_features`.
    device : str or torch.device, optional
        Where the features are computed (default the CPU); the result is
        returned on the CPU either way.

    Returns
    -------
    (N, 34) float64 ndarray
        The HU, GLCM, LBP and Gabor features of each patch (docs/radiomics.md).
    """
    device = torch.device(device or "cpu")
    rows = []
    for start in range(0, len(ct), batch_size):
        hu = denormalize_hu(np.asarray(ct[start:start + batch_size], np.float32))
        m = np.asarray(mask[start:start + batch_size], np.float32)
        rows.append(batched_features(torch.from_numpy(hu).to(device),
                                     torch.from_numpy(m).to(device)).cpu())
    if not rows:
        return np.zeros((0, N_FEATURES))
    return torch.cat(rows).numpy()
