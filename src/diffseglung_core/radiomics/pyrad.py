"""The same first-order and GLCM features computed by pyradiomics, for cross-checks.

pyradiomics is optional (it needs an old numpy, so it lives in its own
environment: ``tox -e crosscheck``). Its settings here are its defaults, which
ours follow: bin width 25 HU, distance 1, 13 directions, symmetric GLCM, no
resampling or normalisation.
"""

from __future__ import annotations

import logging
from typing import Optional

import numpy as np

from .names import PYRADIOMICS_NAMES


def available() -> bool:
    """True when pyradiomics and SimpleITK can be imported."""
    try:
        import SimpleITK  # noqa: F401

        import radiomics  # noqa: F401
    except ImportError:
        return False
    return True


def make_extractor():
    """A pyradiomics extractor computing the first-order and GLCM features we share."""
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    import radiomics

    radiomics.setVerbosity(logging.ERROR)
    # its INFO records pass a dict as the only argument, which some log handlers
    # (pytest's capture) fail to format: keep them from being emitted at all
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    ours = {}
    for name in PYRADIOMICS_NAMES:
        group, feature = name.split("_", 1)
        ours.setdefault(group, []).append(feature)
    extractor = RadiomicsFeatureExtractor(binWidth=25, minimumROIDimensions=1)
    extractor.disableAllFeatures()
    extractor.enableFeaturesByName(**ours)
    return extractor


def pyradiomics_features(patch: np.ndarray, mask: Optional[np.ndarray] = None,
                         extractor=None) -> dict[str, float]:
    """pyradiomics' values of :data:`~.names.PYRADIOMICS_NAMES` for one patch.

    Parameters
    ----------
    patch : (D, H, W) or (H, W) array
        HU (spacing 1 mm; the features compared do not depend on it).
    mask : same shape, optional
        Region (nonzero); the whole patch when None.
    """
    import SimpleITK as sitk

    patch = np.asarray(patch, np.float64)
    if patch.ndim == 2:
        patch = patch[None]
    mask = np.ones(patch.shape, np.uint8) if mask is None else (np.asarray(mask).reshape(patch.shape) > 0)
    extractor = extractor or make_extractor()
    # pyradiomics rejects a mask without background ("No labels found"): add a
    # 1-voxel unmasked border in-plane; it changes no feature (only masked
    # voxels and pairs of masked voxels count)
    patch = np.pad(patch, ((0, 0), (1, 1), (1, 1)), mode="edge")
    mask = np.pad(mask, ((0, 0), (1, 1), (1, 1)))
    image = sitk.GetImageFromArray(patch)
    label = sitk.GetImageFromArray(mask.astype(np.uint8))
    result = extractor.execute(image, label, label=1)
    return {name: float(result[f"original_{name}"]) for name in PYRADIOMICS_NAMES}
