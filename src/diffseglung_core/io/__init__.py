"""Reading chest CT and writing label maps.

:func:`read_scan` picks a reader from :data:`READERS` by file type (NIfTI,
DICOM folder or zip, NRRD, the seed NPZ, TIFF slices), reorients the array to
the canonical ``(z, y, x)`` = (S, P, L) layout of :mod:`diffseglung_core.volume`
and checks that it is CT in HU. Every problem a user can fix is raised as
:class:`~diffseglung_core.errors.ScanReadError` with one line naming the file.
:func:`write_labels` puts label maps back on the source file's grid.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import DiffSegLungError, GridMismatchError, ScanReadError
from ..progress import ProgressCallback, report
from ..volume import CTVolume, ScanSource
from .base import NativeScan, Reader
from .checks import check_hu, check_spacing
from .dicom import SeriesInfo, list_dicom_series
from .dicom_seg import write_dicom_seg  # noqa: F401  (DICOM-SEG export, needs highdicom)
from .discovery import find_scans, is_scan_collection, scan_name, scans_in, strip_scan_suffix
from .limits import DEFAULT_MAX_VOXELS, max_voxels, voxel_limit
from .orientation import affine_spacing, axcodes, to_canonical
from .registry import READERS, WRITERS, label_suffixes, reader_for, register_reader, scan_suffixes, writer_for
from .writers import write_labels, write_scan

__all__ = ["read_scan", "read_mask", "read_label_map", "list_dicom_series", "SeriesInfo", "write_labels",
           "write_scan", "READERS", "WRITERS", "Reader", "NativeScan", "register_reader",
           "reader_for", "writer_for", "scan_suffixes", "label_suffixes", "find_scans",
           "scans_in", "is_scan_collection", "scan_name", "strip_scan_suffix", "DEFAULT_MAX_VOXELS",
           "max_voxels", "voxel_limit"]


def read_scan(path, *, spacing: Optional[Sequence[float]] = None, series: Optional[str] = None,
              hu_offset: float = 0.0, progress: Optional[ProgressCallback] = None,
              whole_scan: bool = True, max_voxels: Optional[int] = None) -> CTVolume:
    """Read a chest CT into the canonical layout, in HU.

    Parameters
    ----------
    path : str or Path
        ``.nii``/``.nii.gz``, ``.nrrd``/``.nhdr``, a DICOM folder, ``.zip`` or
        ``.dcm``, the seed ``.npz``, or ``.tif``/``.tiff``.
    spacing : (z, y, x) float, optional
        Voxel size in mm for files that do not store one (TIFF, NPZ without
        ``spacing``, headers without a voxel size). A file's own spacing wins.
    series : str, optional
        DICOM SeriesInstanceUID, SeriesNumber or SeriesDescription. By default
        the CT series with most slices (named in ``source.description``).
    hu_offset : float
        Added to every value before the HU checks, for scans stored without
        their rescale (``-1024`` for raw 0..4095 units).
    progress : ProgressCallback, optional
        Called as ``progress(done, total, stage)``.
    whole_scan : bool
        True (default) for a chest CT. False for a region of interest or a
        patch (a cube of lung for radiomics): the checks that need both air
        and tissue in the image are left out (see :func:`.checks.check_hu`).
    max_voxels : int, optional
        Refuse files whose header declares more voxels (default
        :func:`.limits.max_voxels`: ``DIFFSEGLUNG_MAX_VOXELS`` or 512 x 512 x 2048).
        Declared sizes are also checked against the memory available, before
        any data are read.

    Returns
    -------
    CTVolume
        ``hu`` float32 ``(z, y, x)`` with ``z`` inferior to superior, ``y``
        anterior to posterior and ``x`` right to left; ``spacing`` in mm;
        ``source`` says how to go back to the file's grid.

    Raises
    ------
    ScanReadError
        The file cannot be read, is too large, or is not a CT in HU (one line,
        with the file).

    Warns
    -----
    UserWarning
        A whole scan with no tissue denser than air (a crop of the lung), among
        others (one line each, naming the file).
    """
    path = Path(path)
    reader = reader_for(path)
    with voxel_limit(max_voxels):
        native = _read(reader, path, spacing=spacing, series=series, role="image", progress=progress)
    data = native.data if not hu_offset else native.data + np.float32(hu_offset)
    check_hu(path, data, whole_scan=whole_scan)
    hu, affine, transform = to_canonical(data, native.affine)
    voxel = affine_spacing(affine)
    check_spacing(path, voxel)
    if spacing is not None and native.has_geometry and not np.allclose(voxel, spacing, rtol=1e-3):
        warnings.warn(f"{path}: the file's spacing {_mm(voxel)} mm is used, not the given "
                      f"{_mm(spacing)} mm", stacklevel=2)
    metadata = dict(native.metadata)
    if hu_offset:  # padding values in the HU of the volume returned
        for key in ("padding_hu", "padding_range_hu"):
            if key in metadata:
                metadata[key] = [float(v) + float(hu_offset) for v in metadata[key]]
    source = ScanSource(path=str(path), format=reader.name, native_shape=tuple(native.data.shape),
                        native_affine=native.affine, orientation=axcodes(native.affine),
                        to_canonical=transform, description=native.description,
                        metadata={**metadata, "has_geometry": native.has_geometry,
                                  "hu_offset": float(hu_offset)})
    report(progress, 1, 1, "read")
    return CTVolume(hu=hu, spacing=voxel, affine=affine, source=source)


def read_mask(path, reference: CTVolume) -> np.ndarray:
    """Read a label map or binary mask on the grid of ``reference``.

    Parameters
    ----------
    path : str or Path
        NIfTI, NRRD, NPZ (``labels`` or ``mask``) or TIFF.
    reference : CTVolume
        The scan the mask belongs to.

    Returns
    -------
    (Z, Y, X) ndarray
        uint8 labels (int32 above 255) in the canonical layout of ``reference``.

    Raises
    ------
    GridMismatchError
        Shape, spacing or position differ from the scan's.
    ScanReadError
        The file cannot be read or holds non-integer or negative values.
    """
    path = Path(path)
    reader = reader_for(path)
    native = _read(reader, path, spacing=reference.spacing, series=None, role="labels", progress=None)
    labels, affine, _ = to_canonical(native.data, native.affine)
    voxel = affine_spacing(affine)
    mismatch = labels.shape != reference.shape or not np.allclose(voxel, reference.spacing, rtol=1e-3,
                                                                   atol=1e-3)
    both_placed = native.has_geometry and reference.source.metadata.get("has_geometry", True)
    if not mismatch and both_placed:
        tol = 0.5 * min(reference.spacing)
        mismatch = np.abs(affine[:3] - reference.affine[:3]).max() > tol
    if mismatch:
        where = "" if labels.shape != reference.shape or not both_placed else " (position differs)"
        raise GridMismatchError(f"{path}: mask grid {labels.shape} at {_mm(voxel)} mm does not match "
                                f"the scan's {reference.shape} at {_mm(reference.spacing)} mm{where}")
    return _as_labels(path, labels)


def read_label_map(path, *, spacing: Optional[Sequence[float]] = None) -> CTVolume:
    """Read a label map on its own grid, as a reference for other label maps.

    Parameters
    ----------
    path : str or Path
        NIfTI, NRRD, NPZ (``labels`` or ``mask``) or TIFF.
    spacing : (z, y, x) float, optional
        Voxel size in mm for files that do not store one.

    Returns
    -------
    CTVolume
        ``hu`` holds the labels (float32) in the canonical layout; other label
        maps on the same grid are read with ``read_mask(other, volume)``.
    """
    path = Path(path)
    native = _read(reader_for(path), path, spacing=tuple(spacing) if spacing else None,
                   series=None, role="labels", progress=None)
    data, affine, transform = to_canonical(native.data, native.affine)
    source = ScanSource(path=str(path), native_affine=native.affine, to_canonical=transform,
                        metadata={"has_geometry": native.has_geometry})
    volume = CTVolume(hu=data.astype(np.float32), spacing=affine_spacing(affine), affine=affine,
                      source=source)
    volume.hu = read_mask(path, volume).astype(np.float32)  # integer checks
    return volume


def _as_labels(path: Path, labels: np.ndarray) -> np.ndarray:
    if labels.dtype == bool:
        return labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.isfinite(labels)) or not np.array_equal(labels, np.round(labels)):
            raise ScanReadError(path, f"not a label map: values {np.nanmin(labels):g}..{np.nanmax(labels):g} "
                                      "are not all integers")
    lo, hi = (int(labels.min()), int(labels.max())) if labels.size else (0, 0)
    if lo < 0:
        raise ScanReadError(path, f"not a label map: negative values ({lo}..{hi})")
    return labels.astype(np.uint8 if hi <= 255 else np.int32)


def _read(reader: Reader, path: Path, **kwargs) -> NativeScan:
    """Run a reader; turn library errors on broken files into one-line ScanReadErrors."""
    try:
        return reader.read(path, **kwargs)
    except (DiffSegLungError, MemoryError, KeyboardInterrupt):
        raise
    except Exception as err:  # nibabel, pynrrd, pydicom, zlib... each fail in their own types
        text = str(err).strip().splitlines()
        detail = f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
        raise ScanReadError(path, f"cannot read this {reader.name} file (corrupt or truncated?): "
                                  f"{detail}") from err


def _mm(values) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in values) + ")"
