"""The one registry of readers, chosen by file type."""

from __future__ import annotations

from pathlib import Path

from ..errors import ScanReadError
from .base import Reader
from .dicom import read_dicom
from .nifti import read_nifti
from .npz import read_npz
from .nrrd import read_nrrd
from .tiff import read_tiff

READERS: list[Reader] = [
    Reader("nifti", (".nii", ".nii.gz"), read_nifti),
    Reader("nrrd", (".nrrd", ".nhdr"), read_nrrd),
    Reader("dicom", ("/", ".zip", ".dcm", ".dicom", ".ima"), read_dicom),
    Reader("npz", (".npz",), read_npz),
    Reader("tiff", (".tif", ".tiff"), read_tiff),
]

#: Leading bytes of formats that may come without their usual ending.
_MAGIC = ((0, b"NRRD", "nrrd"), (128, b"DICM", "dicom"), (344, b"n+1\x00", "nifti"),
          (0, b"PK\x03\x04", "dicom"), (0, b"II*\x00", "tiff"), (0, b"MM\x00*", "tiff"))


def register_reader(reader: Reader) -> None:
    """Add a reader; it takes precedence over built-in readers of the same endings."""
    READERS.insert(0, reader)


def reader_for(path: Path) -> Reader:
    """The reader for ``path``, by ending first, then by the file's leading bytes."""
    if not path.exists():
        raise ScanReadError(path, "no such file or folder")
    for reader in READERS:
        if reader.accepts(path):
            return reader
    if path.is_file():
        with open(path, "rb") as fp:
            head = fp.read(348)
        for offset, magic, name in _MAGIC:
            if head[offset:offset + len(magic)] == magic:
                return next(r for r in READERS if r.name == name)
    endings = ", ".join(s for r in READERS for s in r.suffixes if s != "/")
    raise ScanReadError(path, f"not a supported image (expected a DICOM folder or {endings})")
