"""Size limits checked before a reader allocates or decompresses anything.

A file's header declares how many voxels it holds; a compressed NIfTI or a
zip of a few megabytes can declare gigabytes. Every reader checks the declared
size here *before* it reads the data:

- against a voxel limit, :data:`DEFAULT_MAX_VOXELS` (512 x 512 x 2048), which
  the environment variable ``DIFFSEGLUNG_MAX_VOXELS``, the ``--max-voxels``
  option of the command line or ``read_scan(max_voxels=...)`` change;
- against the memory this machine has available now (``MemAvailable`` of
  ``/proc/meminfo``), for the copies reading makes (as stored, float32 HU, the
  canonical layout);

and single files inside a DICOM folder or zip are read with a bounded size,
:data:`MAX_FILE_BYTES`, whatever their headers say.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
from typing import Iterator, Optional, Sequence

from ..errors import ScanReadError

__all__ = ["DEFAULT_MAX_VOXELS", "MAX_FILE_BYTES", "max_voxels", "voxel_limit", "check_declared_size",
           "available_memory", "read_bounded"]

#: Voxels a scan may hold unless told otherwise: 512 x 512 x 2048 (a whole body at 0.5 mm).
DEFAULT_MAX_VOXELS = 512 * 512 * 2048

#: Largest single file of a DICOM series (an uncompressed 4096 x 4096 slice is 32 MiB).
MAX_FILE_BYTES = 256 * 2**20

#: Bytes per voxel that reading holds at its peak besides the stored array: float32 HU and the
#: canonical copy.
_WORK_BYTES_PER_VOXEL = 8

_LIMIT: contextvars.ContextVar[Optional[int]] = contextvars.ContextVar("max_voxels", default=None)


def max_voxels() -> int:
    """The voxel limit in force: ``voxel_limit(...)``, else ``DIFFSEGLUNG_MAX_VOXELS``, else the default.

    Returns
    -------
    int
        The largest number of voxels a scan may declare.
    """
    limit = _LIMIT.get()
    if limit is not None:
        return limit
    env = os.environ.get("DIFFSEGLUNG_MAX_VOXELS", "").strip()
    if env:
        try:
            value = int(float(env))
        except ValueError:
            raise ValueError(f"DIFFSEGLUNG_MAX_VOXELS must be a number of voxels, got {env!r}") from None
        if value > 0:
            return value
    return DEFAULT_MAX_VOXELS


@contextlib.contextmanager
def voxel_limit(limit: Optional[int]) -> Iterator[None]:
    """Use ``limit`` voxels as the limit inside the ``with`` block (None: leave it as it is).

    Parameters
    ----------
    limit : int, optional
        Positive number of voxels.
    """
    if limit is None:
        yield
        return
    if int(limit) <= 0:
        raise ValueError(f"max_voxels must be positive, got {limit}")
    token = _LIMIT.set(int(limit))
    try:
        yield
    finally:
        _LIMIT.reset(token)


def available_memory() -> Optional[int]:
    """Bytes of memory this machine can give now without swapping (None when unknown).

    Returns
    -------
    int or None
        ``MemAvailable`` of ``/proc/meminfo`` (Linux); psutil's figure elsewhere
        when it is installed.
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def check_declared_size(path, shape: Sequence[int], stored_bytes: int = 2, *,
                        what: str = "the header declares") -> int:
    """Refuse a declared array size over the voxel limit or over the memory available.

    Call it with the shape a header declares, before reading the data.

    Parameters
    ----------
    path : str or Path
        The file, named in the message.
    shape : sequence of int
        Declared array shape (any number of axes).
    stored_bytes : int
        Bytes per voxel as stored (2 for int16).
    what : str
        Where the shape comes from, for the message.

    Returns
    -------
    int
        The number of voxels.

    Raises
    ------
    ScanReadError
        Negative sizes, more voxels than :func:`max_voxels`, or more memory
        than :func:`available_memory` to read them.
    """
    dims = [int(s) for s in shape]
    if any(s < 0 for s in dims):
        raise ScanReadError(path, f"{what} a negative size {tuple(dims)}: corrupt header")
    voxels = math.prod(dims)
    limit = max_voxels()
    shown = " x ".join(str(s) for s in dims)
    if voxels > limit:
        raise ScanReadError(path, f"{what} {shown} = {voxels:,} voxels, over the limit of {limit:,} "
                                  "(raise it with --max-voxels or DIFFSEGLUNG_MAX_VOXELS if the "
                                  "scan is real)")
    need = voxels * (int(stored_bytes) + _WORK_BYTES_PER_VOXEL)
    free = available_memory()
    if free is not None and need > free:
        raise ScanReadError(path, f"{what} {shown} voxels: reading them needs about "
                                  f"{need / 1e9:.1f} GB and this machine has {free / 1e9:.1f} GB "
                                  "available")
    return voxels


def read_bounded(fp, limit: int, path, name: str) -> bytes:
    """Read a whole file object, refusing one longer than ``limit`` bytes.

    Parameters
    ----------
    fp : binary file object
        Opened for reading (a file or a zip member).
    limit : int
        Most bytes accepted.
    path : str or Path
        The scan (folder or zip), named in the message.
    name : str
        The file inside it.

    Returns
    -------
    bytes
        The content (at most ``limit`` bytes).

    Raises
    ------
    ScanReadError
        The file is longer than ``limit`` (at most ``limit + 1`` bytes are read).
    """
    data = bytearray()
    while len(data) <= limit:  # in pieces: a zip member stops (and checks its CRC) at its declared end
        piece = fp.read(min(2**20, limit + 1 - len(data)))
        if not piece:
            return bytes(data)
        data += piece
    raise ScanReadError(path, f"{name} is larger than {limit // 2**20} MiB: not a DICOM slice")
