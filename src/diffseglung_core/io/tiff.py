"""TIFF slices (``.tif``, ``.tiff``): a 2D slice or a page stack, HU values.

TIFF stores no voxel size, so the spacing ``(z, y, x)`` mm comes from the
user. A 2D slice becomes a one-slice volume; a multi-page file is read as
``(z, y, x)`` with pages inferior to superior.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ScanReadError
from .base import NativeScan, checked_spacing, spacing_affine
from .checks import squeeze_to_3d
from .limits import check_declared_size


def read_tiff(path: Path, *, spacing=None, series=None, role="image", progress=None) -> NativeScan:
    """Read a TIFF image as a canonical ``(z, y, x)`` array (one slice for a 2D file)."""
    import tifffile

    with tifffile.TiffFile(str(path)) as tif:
        page = tif.pages[0]
        if getattr(page, "samplesperpixel", 1) > 1:
            raise ScanReadError(path, f"colour image ({page.samplesperpixel} samples per pixel), not CT")
        series = tif.series[0]
        check_declared_size(path, series.shape, np.dtype(series.dtype).itemsize)
        data = tif.asarray()
    data = squeeze_to_3d(path, np.asarray(data))
    if data.ndim == 2:
        data = data[np.newaxis]
    if spacing is None:
        raise ScanReadError(path, "TIFF stores no voxel size; give it with --spacing Z Y X (mm)")
    if role == "image":
        data = data.astype(np.float32, copy=False)
    return NativeScan(data=data, affine=spacing_affine(checked_spacing(path, spacing)),
                      has_geometry=False)
