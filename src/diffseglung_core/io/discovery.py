"""Finding and naming the scans of a folder, by the endings of the reader registry.

A scan is a file a reader takes (``.nii.gz``, ``.nrrd``, ``.zip``, ...) or a
folder of DICOM slices. A folder of scans (a cohort) holds scans; a DICOM
folder is one scan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Union

from ..errors import DiffSegLungError
from .registry import DICOM_SLICE_SUFFIXES, scan_suffixes

__all__ = ["is_dicom_folder", "scans_in", "is_scan_collection", "find_scans", "strip_scan_suffix",
           "scan_name"]

#: Folder names too generic to name a scan; the parent folder's name is used.
GENERIC_FOLDERS = frozenset({"dicom", "dcm", "ct", "images", "image", "series", "scan", "data"})

PathLike = Union[str, Path]


def is_dicom_folder(path: PathLike) -> bool:
    """True for a folder of DICOM slices (a DICOM ending, or the ``DICM`` preamble)."""
    path = Path(path)
    if not path.is_dir():
        return False
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    if any(p.name.lower().endswith(DICOM_SLICE_SUFFIXES) for p in files):
        return True
    for p in files[:3]:
        with open(p, "rb") as fh:
            if fh.read(132)[128:132] == b"DICM":
                return True
    return False


def _is_scan_file(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(scan_suffixes()) and not name.endswith(DICOM_SLICE_SUFFIXES)


def scans_in(folder: PathLike) -> list[Path]:
    """The scans a folder holds, sorted: scan files and DICOM sub-folders (hidden ones left out)."""
    return [p for p in sorted(Path(folder).iterdir()) if not p.name.startswith(".")
            and ((p.is_file() and _is_scan_file(p)) or is_dicom_folder(p))]


def is_scan_collection(path: PathLike) -> bool:
    """True for a folder of scans (not itself a DICOM series)."""
    path = Path(path)
    return path.is_dir() and not is_dicom_folder(path) and bool(scans_in(path))


def find_scans(paths: Iterable[PathLike]) -> list[Path]:
    """Scans of files and folders: files and DICOM folders as given, other folders expanded.

    Raises
    ------
    FileNotFoundError
        A path does not exist.
    DiffSegLungError
        A folder holds no scan.
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(2, "no such file or folder", str(path))
        if path.is_file() or is_dicom_folder(path):
            found.append(path)
            continue
        inside = scans_in(path)
        if not inside:
            raise DiffSegLungError(f"{path}: no scans found (looked for "
                                   f"{', '.join(scan_suffixes())} files and DICOM folders)")
        found.extend(inside)
    return found


def strip_scan_suffix(name: str) -> str:
    """A file name without its scan ending (``"chest.nii.gz"`` -> ``"chest"``)."""
    lower = name.lower()
    for suffix in sorted(scan_suffixes(), key=len, reverse=True):
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def scan_name(path: PathLike) -> str:
    """A short name for one scan: its file name without ending, or its folder's name.

    A folder with a generic name (``dicom``, ``ct``, ...) is named after its
    parent: ``patient-17/dicom`` -> ``patient-17``.
    """
    path = Path(path)
    name = path.name
    if name.lower() in GENERIC_FOLDERS and path.parent.name:
        name = path.parent.name
    return strip_scan_suffix(name)
