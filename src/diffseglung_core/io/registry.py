"""The one registry of scan formats: readers and writers, chosen by file type.

Every list of file endings in the package (the command line, training, the
napari reader and writer, ``napari.yaml``) comes from :data:`READERS` and
:data:`WRITERS`; a test checks ``napari.yaml`` against them.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ScanReadError
from .base import Reader, Writer
from .dicom import read_dicom
from .nifti import read_nifti
from .npz import read_npz
from .nrrd import read_nrrd
from .tiff import read_tiff
from .writers import save_nifti, save_npz, save_nrrd

__all__ = ["READERS", "WRITERS", "DICOM_SLICE_SUFFIXES", "register_reader", "reader_for",
           "writer_for", "scan_suffixes", "label_suffixes"]

#: Endings of single DICOM files: slices of a series folder, not scans of their own.
DICOM_SLICE_SUFFIXES: tuple[str, ...] = (".dcm", ".dicom", ".ima")

READERS: list[Reader] = [
    Reader("nifti", (".nii", ".nii.gz"), read_nifti),
    Reader("nrrd", (".nrrd", ".nhdr"), read_nrrd),
    Reader("dicom", ("/", ".zip", *DICOM_SLICE_SUFFIXES), read_dicom),
    Reader("npz", (".npz",), read_npz),
    Reader("tiff", (".tif", ".tiff"), read_tiff),
]

WRITERS: list[Writer] = [
    Writer("nifti", (".nii.gz", ".nii"), save_nifti),
    Writer("nrrd", (".nrrd",), save_nrrd),
    Writer("npz", (".npz",), save_npz),
]

#: Leading bytes of formats that may come without their usual ending.
_MAGIC = ((0, b"NRRD", "nrrd"), (128, b"DICM", "dicom"), (344, b"n+1\x00", "nifti"),
          (0, b"PK\x03\x04", "dicom"), (0, b"II*\x00", "tiff"), (0, b"MM\x00*", "tiff"))


def register_reader(reader: Reader) -> None:
    """Add a reader; it takes precedence over built-in readers of the same endings."""
    READERS.insert(0, reader)


def scan_suffixes() -> tuple[str, ...]:
    """Every file ending a reader takes (``".nii.gz"``, ``".dcm"``, ...), lower case."""
    return tuple(dict.fromkeys(s for r in READERS for s in r.suffixes if s != "/"))


def label_suffixes() -> tuple[str, ...]:
    """Every file ending label maps and scans are written to, lower case."""
    return tuple(dict.fromkeys(s for w in WRITERS for s in w.suffixes))


def reader_for(path: Path) -> Reader:
    """The reader for ``path``, by ending first, then by the file's leading bytes.

    Raises
    ------
    ScanReadError
        ``path`` does not exist or no reader takes it.
    """
    path = Path(path)
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
    raise ScanReadError(path, "not a supported image (expected a DICOM folder or "
                              f"{', '.join(scan_suffixes())})")


def writer_for(path: Path) -> Writer:
    """The writer for ``path``, by its ending.

    Raises
    ------
    OutputTypeError
        No writer takes the ending (a ``ValueError`` too).
    """
    from ..errors import OutputTypeError

    path = Path(path)
    for writer in WRITERS:
        if writer.accepts(path):
            return writer
    raise OutputTypeError(f"{path}: unsupported output type (use {', '.join(label_suffixes())})")
