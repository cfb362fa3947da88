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
from .limits import check_declared_size

#: Compressed encodings, decompressed here with a bound (pynrrd inflates the whole stream).
_COMPRESSED = {"gzip": "gzip", "gz": "gzip", "bzip2": "bzip2", "bz2": "bzip2"}

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

    with open(path, "rb") as fh:
        header = nrrd.read_header(fh)
        sizes = [int(v) for v in np.atleast_1d(header.get("sizes", []))]
        check_declared_size(path, sizes, _itemsize(header))
        data = _read_data(path, header, fh)
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


def _itemsize(header: dict) -> int:
    import nrrd.reader

    try:
        return int(nrrd.reader._determine_datatype(header).itemsize)
    except Exception:  # an unknown type is named by pynrrd when the data are read
        return 8


def _read_data(path: Path, header: dict, fh) -> np.ndarray:
    """The data of a NRRD with F index order; compressed data inflated no further than declared."""
    import nrrd

    encoding = str(header.get("encoding", "raw")).lower()
    byte_skip = int(header.get("byteskip", header.get("byte skip", 0)))
    line_skip = int(header.get("lineskip", header.get("line skip", 0)))
    data_file = header.get("datafile", header.get("data file"))
    if encoding not in _COMPRESSED or byte_skip < 0 or line_skip < 0 or "LIST" in str(data_file):
        return nrrd.read_data(header, fh, str(path), index_order="F")
    import bz2
    import zlib

    import nrrd.reader

    dtype = nrrd.reader._determine_datatype(header)
    sizes = tuple(int(v) for v in header["sizes"])
    wanted = byte_skip + int(np.prod(sizes, dtype=np.int64)) * dtype.itemsize
    source = open(Path(path).parent / str(data_file), "rb") if data_file else fh
    try:
        for _ in range(line_skip):
            source.readline()
        gzip = _COMPRESSED[encoding] == "gzip"
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16) if gzip else bz2.BZ2Decompressor()
        out = bytearray()
        while len(out) <= wanted and not inflater.eof:
            if gzip:
                chunk = inflater.unconsumed_tail or source.read(2**20)
            else:
                chunk = source.read(2**20) if inflater.needs_input else b""
            if not chunk and (gzip or inflater.needs_input):
                break
            out += inflater.decompress(chunk, wanted + 1 - len(out))
    finally:
        if source is not fh:
            source.close()
    if len(out) != wanted:
        more = "more" if len(out) > wanted else "fewer"
        raise ScanReadError(path, f"the {encoding} data hold {more} bytes than the header's "
                                  f"{' x '.join(map(str, sizes))} {dtype} voxels (corrupt or truncated?)")
    data = np.frombuffer(out, dtype, offset=byte_skip)
    return data.reshape(sizes[::-1]).T
