"""npe2 reader: chest CT (NIfTI, NRRD, DICOM folder or zip, seed NPZ, TIFF) as an Image layer in HU.

The file types are those of the core's reader registry
(:func:`diffseglung_core.io.scan_suffixes`), listed in ``napari.yaml``.

The layer's ``scale`` is the spacing (mm), its ``translate`` the position of
the first voxel, and its metadata keeps the :class:`CTVolume` (with its
source) so that label maps drawn on it are written back on the file's grid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from diffseglung_core.errors import ScanReadError
from diffseglung_core.io import read_scan
from diffseglung_core.io.registry import reader_for

from ._layers import image_layer_data


def napari_get_reader(path) -> Optional[Callable]:
    """Return :func:`read_ct` when ``path`` is a scan this plugin reads, else None."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(path)
    try:
        reader_for(path)
    except ScanReadError:
        return None
    if path.is_dir() and not any(p.is_file() for p in path.rglob("*")):
        return None
    return read_ct


def read_ct(path) -> list[tuple]:
    """Read one scan into a napari Image layer ``[(hu, kwargs, "image")]``."""
    if isinstance(path, (list, tuple)):
        path = path[0]
    volume = read_scan(path)
    return [image_layer_data(volume)]
