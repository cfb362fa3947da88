"""NRRD reader (``.nrrd`` and detached ``.nhdr``) through pynrrd.

3D Slicer and the Chest Imaging Platform write ``space: left-posterior-superior``
with per-axis ``space directions`` and a ``space origin``; the affine is
converted from that world to RAS.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ScanReadError
from .base import NativeScan, checked_spacing
from .checks import require_3d

#: Sign of each world axis when converting a NRRD space to RAS.
_SPACE_TO_RAS = {
    "left-posterior-superior": (-1, -1, 1), "lps": (-1, -1, 1), "scanner-xyz": (-1, -1, 1),
    "right-anterior-superior": (1, 1, 1), "ras": (1, 1, 1),
    "left-anterior-superior": (-1, 1, 1), "las": (-1, 1, 1),
}


def read_nrrd(path: Path, *, spacing=None, series=None, role="image", progress=None) -> NativeScan:
    """Read a NRRD file as stored (axes in the file's ``sizes`` order) with its RAS affine.

    ``spacing`` ``(z, y, x)`` mm is used only when the header gives neither
    ``space directions`` nor ``spacings``; the axes are then taken as LPS.
    """
    import nrrd

    data, header = nrrd.read(str(path), index_order="F")
    data = require_3d(path, np.asarray(data))
    affine = _affine(path, header, spacing)
    if role == "image":
        data = data.astype(np.float32, copy=False)
    return NativeScan(data=data, affine=affine, description=str(header.get("content", "")),
                      metadata={"space": header.get("space", "")})


def _affine(path, header: dict, spacing) -> np.ndarray:
    space = str(header.get("space", "left-posterior-superior")).lower()
    if space not in _SPACE_TO_RAS:
        raise ScanReadError(path, f"unsupported NRRD space {space!r} (expected left-posterior-superior "
                                  "or right-anterior-superior)")
    directions = header.get("space directions")
    affine = np.eye(4)
    if directions is not None:
        rows = [np.asarray(d, dtype=float) for d in directions
                if d is not None and np.all(np.isfinite(np.asarray(d, dtype=float)))]
        if len(rows) != 3:
            raise ScanReadError(path, "missing voxel spacing: the NRRD 'space directions' do not "
                                      "describe 3 spatial axes; give --spacing Z Y X (mm)")
        affine[:3, :3] = np.array(rows).T
    elif header.get("spacings") is not None and np.all(np.asarray(header["spacings"], float) > 0):
        affine[:3, :3] = np.diag(np.asarray(header["spacings"], dtype=float)[:3])
    elif spacing is not None:
        sz, sy, sx = checked_spacing(path, spacing)
        affine[:3, :3] = np.diag([sx, sy, sz])
    else:
        raise ScanReadError(path, "missing voxel spacing (no 'space directions' or 'spacings' in "
                                  "the NRRD header); give it with --spacing Z Y X (mm)")
    origin = header.get("space origin")
    if origin is not None:
        affine[:3, 3] = np.asarray(origin, dtype=float)[:3]
    if abs(np.linalg.det(affine[:3, :3])) == 0:
        raise ScanReadError(path, "missing voxel spacing: the NRRD 'space directions' are degenerate")
    return np.diag([*_SPACE_TO_RAS[space], 1.0]) @ affine
