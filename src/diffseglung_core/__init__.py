"""diffseglung_core: unsupervised lung-pathology segmentation in chest CT.

The engine of napari-diffseglung, importable without Qt.
"""

import os
from importlib.metadata import PackageNotFoundError, version

# OpenMP threads that spin while they wait make torch's CPU kernels many times slower
# when other processes share the cores (a laptop, a busy server); passive waiting costs
# little otherwise. Set before torch starts its thread pool; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    __version__ = version("napari-diffseglung")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

from .labels import TISSUE_NAMES, Tissue
from .volume import CTVolume, denormalize_hu, normalize_hu

__all__ = ["CTVolume", "Tissue", "TISSUE_NAMES", "normalize_hu", "denormalize_hu", "__version__"]
