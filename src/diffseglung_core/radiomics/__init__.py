"""The radiomic teacher: 34 named HU, GLCM, LBP and Gabor features of lung patches.

- :func:`batched_features` - ``(B, D, H, W)`` HU patches and masks -> ``(B, 34)``, torch, any device.
- :func:`patch_features` - the plain numpy reference for one patch.
- :func:`feature_maps` - voxel-wise maps of a whole volume on a strided grid in the lung.
- :func:`robust_stats` / :func:`normalize` - median / IQR normalisation saved with the teacher.
- :func:`region_features` - the 34 features of one masked region of a volume.
- :func:`teacher_vectors` - the stage-2 teacher: normalised CT patches -> ``(N, 34)``.

Definitions: docs/radiomics.md.
"""

from .batched import batched_features
from .maps import FeatureMap, feature_maps, window_for_spacing
from .names import FEATURE_NAMES, GROUPS, N_FEATURES, PYRADIOMICS_NAMES
from .normalization import denormalize, load_stats, normalize, robust_stats, save_stats
from .reference import patch_features
from .region import region_features
from .teacher import teacher_vectors

__all__ = [
    "FEATURE_NAMES",
    "GROUPS",
    "N_FEATURES",
    "PYRADIOMICS_NAMES",
    "FeatureMap",
    "batched_features",
    "denormalize",
    "feature_maps",
    "load_stats",
    "normalize",
    "patch_features",
    "region_features",
    "robust_stats",
    "save_stats",
    "teacher_vectors",
    "window_for_spacing",
]
