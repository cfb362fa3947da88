"""The 34 radiomic features of one masked region of a volume (``diffseglung radiomics``)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .batched import batched_features
from .names import FEATURE_NAMES

__all__ = ["region_features"]


def region_features(hu: np.ndarray, mask: Optional[np.ndarray] = None) -> dict[str, float]:
    """Radiomic features of the voxels of ``mask`` (the whole volume when None).

    Only the bounding box of the mask is described (the same values, less work).

    Parameters
    ----------
    hu : (Z, Y, X) ndarray
        HU.
    mask : (Z, Y, X) ndarray, optional
        Region (nonzero inside); must not be empty.

    Returns
    -------
    dict
        Feature name (:data:`~.names.FEATURE_NAMES`) -> value.
    """
    if mask is None:
        mask = np.ones(np.shape(hu), bool)
    else:
        mask = np.asarray(mask) > 0
        if not mask.any():
            raise ValueError("the mask is empty")
        box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(mask))
        hu, mask = np.asarray(hu)[box], mask[box]
    values = batched_features(np.asarray(hu)[None], mask[None])[0].tolist()
    return dict(zip(FEATURE_NAMES, values))
