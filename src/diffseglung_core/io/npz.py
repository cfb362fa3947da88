"""The seed NPZ format: ``ct`` on the model scale, optional ``mask`` and ``spacing``.

Arrays are ``(z, y, x)`` in the canonical layout. ``ct`` holds
``(HU + 1000) / 700 - 1`` (see :func:`~diffseglung_core.volume.normalize_hu`);
``hu`` may hold HU instead. ``spacing`` is ``(z, y, x)`` mm and ``affine`` the
voxel-to-RAS matrix, both optional. Label maps written by this package use the
key ``labels``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ScanReadError
from ..volume import denormalize_hu
from .base import NativeScan, checked_spacing, spacing_affine
from .checks import require_3d
from .limits import check_declared_size

IMAGE_KEYS = ("hu", "ct")
LABEL_KEYS = ("labels", "mask")


def read_npz(path: Path, *, spacing=None, series=None, role="image", progress=None) -> NativeScan:
    """Read the image (``role="image"``) or the label map (``role="labels"``) of an NPZ."""
    with np.load(path, allow_pickle=False) as npz:
        keys = IMAGE_KEYS if role == "image" else LABEL_KEYS
        key = next((k for k in keys if k in npz.files), None)
        if key is None:
            raise ScanReadError(path, f"no {' or '.join(repr(k) for k in keys)} array in this NPZ "
                                      f"(found {', '.join(npz.files) or 'nothing'})")
        shape, dtype = _declared(npz, key)
        check_declared_size(path, shape, dtype.itemsize, what=f"its {key!r} array declares")
        for small in ("affine", "spacing"):
            if small in npz.files and int(np.prod(_declared(npz, small)[0])) > 16:
                raise ScanReadError(path, f"'{small}' holds {_declared(npz, small)[0]} values, not "
                                          "a 4x4 affine or 3 spacings")
        data = npz[key]
        data = require_3d(path, np.squeeze(data) if data.ndim > 3 else data)  # (1, z, y, x) too
        stored_affine = npz["affine"] if "affine" in npz.files else None
        stored_spacing = npz["spacing"] if "spacing" in npz.files else None
    if key == "ct":
        data = _denormalise(path, data)
    elif role == "image":
        data = data.astype(np.float32, copy=False)
    if stored_affine is not None:
        affine, has_geometry = np.asarray(stored_affine, dtype=np.float64), True
    elif stored_spacing is not None:
        affine, has_geometry = spacing_affine(checked_spacing(path, stored_spacing)), False
    elif spacing is not None:
        affine, has_geometry = spacing_affine(checked_spacing(path, spacing)), False
    else:
        raise ScanReadError(path, "missing voxel spacing (no 'spacing' array in the NPZ); give it "
                                  "with --spacing Z Y X (mm)")
    if affine.shape != (4, 4):
        raise ScanReadError(path, f"'affine' must be 4x4, got shape {affine.shape}")
    return NativeScan(data=data, affine=affine, description=f"NPZ key '{key}'",
                      has_geometry=has_geometry)


def _declared(npz, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype an NPZ member's ``.npy`` header declares, read without its data."""
    from numpy.lib import format as npy

    with npz.zip.open(f"{key}.npy") as fp:
        version = npy.read_magic(fp)
        if version == (1, 0):
            shape, _, dtype = npy.read_array_header_1_0(fp)
        else:
            shape, _, dtype = npy.read_array_header_2_0(fp)
    return tuple(int(v) for v in shape), np.dtype(dtype)


def _denormalise(path: Path, ct: np.ndarray) -> np.ndarray:
    ct = ct.astype(np.float32, copy=False)
    finite = ct[np.isfinite(ct)]
    if finite.size and (finite.min() < -1.5 or finite.max() > 10):
        raise ScanReadError(path, f"'ct' values {finite.min():g}..{finite.max():g} are not on the model "
                                  "scale (HU + 1000) / 700 - 1; HU belong under the key 'hu'")
    return denormalize_hu(ct).astype(np.float32)
