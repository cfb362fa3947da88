"""Writers for label maps and scans: NIfTI, NRRD and NPZ (chosen in :mod:`.registry`).

NIfTI and NRRD files are written on the grid of the file the reference
volume was read from (:meth:`CTVolume.to_native` and its native affine), so a
label map overlays the original scan in 3D Slicer, ITK-SNAP or napari. NPZ
files hold the canonical ``(z, y, x)`` arrays with ``spacing`` and ``affine``.
Files are written to a temporary name beside the target and then moved into
place, with the mode the umask gives new files (``0644`` under umask ``022``);
an interrupted write leaves neither the target nor the temporary file. An
existing file is never replaced unless ``overwrite=True``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import GridMismatchError, OutputExistsError
from ..volume import CTVolume, normalize_hu

__all__ = ["write_labels", "write_scan", "write_text", "save_nifti", "save_nrrd", "save_npz",
           "file_mode", "temporary_beside"]


def write_labels(path, labels: np.ndarray, reference: CTVolume, *, overwrite: bool = False) -> Path:
    """Write a label map on the grid of the scan it was computed from.

    Parameters
    ----------
    path : str or Path
        ``.nii``, ``.nii.gz``, ``.nrrd`` or ``.npz``.
    labels : (Z, Y, X) integer ndarray
        Labels on ``reference``'s canonical grid (0 outside lung, 1 healthy,
        2 GGO, 3 fibrosis, 4 emphysema, 5 consolidation, or any other labels).
    reference : CTVolume
        The scan; its source file's grid and affine are used.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path
        The file written. Stored as uint8 (int16 when labels exceed 255).
    """
    labels = np.asarray(labels)
    if labels.shape != reference.shape:
        raise GridMismatchError(f"{path}: labels of shape {labels.shape} do not match the scan's "
                                f"{reference.shape}")
    if not np.issubdtype(labels.dtype, np.integer) and not np.issubdtype(labels.dtype, np.bool_):
        if not np.array_equal(labels, np.round(labels)):
            raise ValueError("labels must be integers")
    dtype = np.uint8 if labels.min() >= 0 and labels.max() <= 255 else np.int16
    return _write(path, labels.astype(dtype), reference, overwrite, "labels")


def write_scan(path, volume: CTVolume, *, dtype: str = "int16", overwrite: bool = False) -> Path:
    """Write a scan's HU (NIfTI, NRRD) or its HU on the model scale as ``ct`` (NPZ).

    Parameters
    ----------
    path : str or Path
        ``.nii``, ``.nii.gz``, ``.nrrd`` or ``.npz``.
    volume : CTVolume
        The scan; its source file's grid and affine are used, as in :func:`write_labels`.
    dtype : str
        ``"int16"``: HU rounded and clipped to the int16 range; ``"float32"``: as they are.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path
    """
    if dtype == "int16":
        hu = np.clip(np.round(volume.hu), -32768, 32767).astype(np.int16)
    elif dtype == "float32":
        hu = np.asarray(volume.hu, np.float32)
    else:
        raise ValueError(f"dtype must be 'int16' or 'float32', got {dtype!r}")
    return _write(path, hu, volume, overwrite, "image")


def _write(path, array: np.ndarray, reference: CTVolume, overwrite: bool, role: str) -> Path:
    from .registry import writer_for

    path = Path(path)
    writer = writer_for(path)
    ending = next(e for e in writer.suffixes if path.name.lower().endswith(e))
    if path.exists() and not overwrite:
        raise OutputExistsError(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic(path, ending, lambda p: writer.save(p, array, reference, role), overwrite)
    return path


def file_mode() -> int:
    """The mode a new file gets from ``open``: ``0o666`` less the process umask.

    Returns
    -------
    int
        Permission bits (``0o644`` under the usual umask ``022``).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no other way to read it; set back at once
    os.umask(mask)
    return 0o666 & ~mask


def temporary_beside(path: Path, suffix: str = ".tmp") -> Path:
    """An empty temporary file beside ``path``, with the mode a new file would get.

    ``tempfile.mkstemp`` makes ``0600`` files; a file moved into place from it
    would keep that mode, unreadable for colleagues or a PACS gateway. This
    gives it the umask's mode, as ``open`` would.

    Parameters
    ----------
    path : Path
        The file to be written; the temporary file is a hidden sibling.
    suffix : str
        Ending of the temporary name (writers choose the format by it).

    Returns
    -------
    Path
    """
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        os.chmod(name, file_mode())
    finally:
        os.close(fd)
    return Path(name)


def write_text(path, text: str, *, overwrite: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all (a report, a table).

    Raises :class:`~diffseglung_core.errors.OutputExistsError` if ``path``
    exists and ``overwrite`` is False; the file follows the umask.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic(path, path.suffix, lambda tmp: tmp.write_text(text, encoding="utf-8"), overwrite)
    return path


def _atomic(path: Path, ending: str, save: Callable[[Path], None], overwrite: bool) -> None:
    tmp = temporary_beside(path, f".tmp{ending}")
    try:
        save(tmp)
        if overwrite:
            os.replace(tmp, path)
            return
        try:
            os.link(tmp, path)  # fails if the target appeared meanwhile: never clobbers
        except FileExistsError:
            raise OutputExistsError(path) from None
        except OSError:  # file systems without hard links
            if path.exists():
                raise OutputExistsError(path) from None
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_nifti(path: Path, array: np.ndarray, reference: CTVolume, role: str) -> None:
    """NIfTI on the grid and with the affine of ``reference``'s source file."""
    import nibabel as nib

    affine = reference.native_affine
    array = reference.to_native(array)

    img = nib.Nifti1Image(array, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    if role == "labels":
        img.header.set_intent("label")
    else:
        img.header["cal_min"], img.header["cal_max"] = -1000, 1000
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))


def save_nrrd(path: Path, array: np.ndarray, reference: CTVolume, role: str) -> None:
    """NRRD (gzip, LPS space) on the grid of ``reference``'s source file."""
    import nrrd

    affine = reference.native_affine
    array = reference.to_native(array)

    lps = np.array(affine, dtype=np.float64)
    lps[:2] *= -1
    header = {
        "space": "left-posterior-superior",
        "space directions": lps[:3, :3].T + 0.0,  # no negative zeros in the header
        "space origin": lps[:3, 3] + 0.0,
        "kinds": ["domain"] * 3,
        "encoding": "gzip",
    }
    nrrd.write(str(path), np.asarray(array), header, index_order="F")


def save_npz(path: Path, array: np.ndarray, reference: CTVolume, role: str) -> None:
    """Canonical arrays with ``spacing`` and ``affine``; HU on the model scale as ``ct``."""
    arrays = {"spacing": np.asarray(reference.spacing), "affine": reference.affine}
    if role == "labels":
        arrays["labels"] = array
    else:
        arrays["ct"] = normalize_hu(reference.hu).astype(np.float32)
    with open(path, "wb") as fp:
        np.savez_compressed(fp, **arrays)
