"""NIfTI-1/2 reader (``.nii``, ``.nii.gz``) through nibabel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ScanReadError
from .base import NativeScan, checked_spacing
from .checks import require_3d
from .limits import check_declared_size


def read_nifti(path: Path, *, spacing=None, series=None, role="image", progress=None) -> NativeScan:
    """Read a NIfTI file: data with ``scl_slope``/``scl_inter`` applied and its affine.

    ``spacing`` ``(z, y, x)`` mm is used only when the header holds no voxel
    size (``pixdim`` zero and no qform/sform). The shape the header declares
    is checked (:func:`~.limits.check_declared_size`) before any data are read.
    """
    import nibabel as nib

    img = nib.load(str(path))
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise ScanReadError(path, f"not a NIfTI image ({type(img).__name__})")
    header = img.header
    check_declared_size(path, header.get_data_shape(), header.get_data_dtype().itemsize)
    data = require_3d(path, np.asanyarray(img.dataobj))
    if role == "image":
        data = data.astype(np.float32, copy=False)
    affine = np.asarray(img.affine, dtype=np.float64)
    no_geometry = int(header["qform_code"]) == 0 and int(header["sform_code"]) == 0
    pixdim = _stored_pixdim(path, type(header))
    if no_geometry and not np.all(pixdim > 0):
        if spacing is None:
            raise ScanReadError(path, "missing voxel spacing (pixdim is zero and there is no qform or "
                                      "sform); give it with --spacing Z Y X (mm)")
        sz, sy, sx = checked_spacing(path, spacing)
        # nibabel's fallback affine for a header without geometry is LAS: x flipped.
        affine = np.diag([-sx, sy, sz, 1.0])
    description = str(np.asarray(header["descrip"]).item().decode("latin-1", "replace")).strip()
    return NativeScan(data=data, affine=affine, description=description,
                      metadata={"nifti_version": 2 if isinstance(img, nib.Nifti2Image) else 1})


def _stored_pixdim(path: Path, header_class) -> np.ndarray:
    """``pixdim[1:4]`` as stored (nibabel's loader silently turns zeros into ones)."""
    from nibabel.openers import ImageOpener

    with ImageOpener(str(path)) as fp:
        raw = header_class.from_fileobj(fp, check=False)
    return np.asarray(raw["pixdim"][1:4], dtype=float)
