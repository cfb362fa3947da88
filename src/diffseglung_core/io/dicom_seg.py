"""DICOM-SEG export of label maps, referencing the CT series they were made from.

One segment per tissue class present in the label map (label convention of
:mod:`diffseglung_core.labels`), written as a BINARY Segmentation with
highdicom on the frames of the source series, so that PACS viewers and 3D
Slicer overlay it on the original images.

Coded concepts (segmented property category / type):

=================  ==========================================  ====================================
label              category                                    type
=================  ==========================================  ====================================
1 healthy          SCT 85756007 Tissue                         SCT 39607008 Lung
2 GGO              SCT 49755003 Morphologically Abnormal       DCM 112120 Ground glass opacity
                   Structure                                   (CID 6104)
3 fibrosis         SCT 49755003 Morphologically Abnormal ...   SCT 112674009 Fibrosis
4 emphysema        SCT 49755003 Morphologically Abnormal ...   SCT 87433001 Pulmonary emphysema
5 consolidation    SCT 49755003 Morphologically Abnormal ...   SCT 95436008 Lung consolidation
=================  ==========================================  ====================================

Every segment also names the lung (SCT 39607008) as its anatomic region.
Segment numbers run 1..K over the classes present; the class value is kept in
each segment's TrackingID (``"diffseglung label 3"``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import DiffSegLungError, GridMismatchError, OutputExistsError
from ..labels import TISSUE_COLORS, TISSUE_NAMES, Tissue
from ..volume import CTVolume
from .base import lps_to_ras
from .dicom import _frames
from .writers import temporary_beside

__all__ = ["write_dicom_seg", "DicomSegError", "SEGMENT_CODES"]

#: ``label -> ((scheme, value, meaning) category, (scheme, value, meaning) type)``.
SEGMENT_CODES: dict[int, tuple[tuple[str, str, str], tuple[str, str, str]]] = {
    Tissue.HEALTHY: (("SCT", "85756007", "Tissue"), ("SCT", "39607008", "Lung")),
    Tissue.GGO: (("SCT", "49755003", "Morphologically Abnormal Structure"),
                 ("DCM", "112120", "Ground glass opacity")),
    Tissue.FIBROSIS: (("SCT", "49755003", "Morphologically Abnormal Structure"),
                      ("SCT", "112674009", "Fibrosis")),
    Tissue.EMPHYSEMA: (("SCT", "49755003", "Morphologically Abnormal Structure"),
                       ("SCT", "87433001", "Pulmonary emphysema")),
    Tissue.CONSOLIDATION: (("SCT", "49755003", "Morphologically Abnormal Structure"),
                           ("SCT", "95436008", "Lung consolidation")),
}

_LUNG = ("SCT", "39607008", "Lung")


class DicomSegError(DiffSegLungError):
    """A DICOM-SEG cannot be written for this scan or label map."""


def write_dicom_seg(path, labels: np.ndarray, reference: CTVolume, *,
                    source_files: Optional[Sequence] = None, overwrite: bool = False) -> Path:
    """Write a label map as a DICOM Segmentation of the scan's source series.

    Parameters
    ----------
    path : str or Path
        Output file (``.dcm``).
    labels : (Z, Y, X) integer ndarray
        Labels on ``reference``'s canonical grid: 0 outside lung, 1 healthy,
        2 GGO, 3 fibrosis, 4 emphysema, 5 consolidation.
    reference : CTVolume
        The scan, as read by :func:`diffseglung_core.io.read_scan` from a
        DICOM folder, zip or file.
    source_files : sequence of path, optional
        The DICOM files of the series, when the folder the scan was read from
        has moved. By default they are found again at ``reference.source.path``.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    DicomSegError
        The scan was not read from DICOM, its files cannot be found, they do
        not match the scan's grid, or the labels hold no tissue class.
    OutputExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if reference.source.format != "dicom":
        raise DicomSegError(f"{path}: DICOM-SEG needs a scan read from DICOM; this one is "
                            f"{reference.source.format} ({reference.source.path or 'in memory'}); "
                            "write NIfTI or NRRD instead")
    labels = np.asarray(labels)
    if labels.shape != reference.shape:
        raise GridMismatchError(f"{path}: labels of shape {labels.shape} do not match the scan's "
                                f"{reference.shape}")
    if path.exists() and not overwrite:
        raise OutputExistsError(path)
    present = [int(v) for v in np.unique(labels) if int(v) in SEGMENT_CODES]
    unknown = sorted(set(int(v) for v in np.unique(labels)) - set(SEGMENT_CODES) - {0})
    if unknown:
        raise DicomSegError(f"{path}: labels {unknown} are not tissue classes 1..5")
    if not present:
        raise DicomSegError(f"{path}: the label map holds no lung tissue (all 0): nothing to export")
    try:
        import highdicom as hd
    except ImportError:
        raise DicomSegError(f"{path}: DICOM-SEG export needs highdicom (pip install highdicom)") from None

    datasets = _source_datasets(path, reference, source_files)
    native = reference.to_native(labels)  # (slice, row, column) in the reader's slice order
    segment_of = np.zeros(int(labels.max()) + 1, dtype=np.uint8)
    for number, value in enumerate(present, start=1):
        segment_of[value] = number
    pixels = segment_of[native]
    if len(datasets) == 1 and _frames(datasets[0]) > 1:
        # one multi-frame source: highdicom matches the volume's planes to its frames
        pixels = hd.Volume(pixels, lps_to_ras(reference.native_affine), "PATIENT",
                           frame_of_reference_uid=datasets[0].get("FrameOfReferenceUID"))
    seg = hd.seg.Segmentation(
        source_images=datasets,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_description(hd, n, v) for n, v in enumerate(present, start=1)],
        series_instance_uid=hd.UID(),
        series_number=_series_number(datasets[0]),
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="napari-diffseglung",
        manufacturer_model_name="DiffSegLung",
        software_versions=_version(),
        device_serial_number="0",
        content_description="Lung tissue classes (DiffSegLung)",
        content_label="LUNG_TISSUE",
        series_description="DiffSegLung lung tissue",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_beside(path)  # the umask's mode, not mkstemp's 0600
    try:
        seg.save_as(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _description(hd, number: int, value: int):
    category, kind = SEGMENT_CODES[value]
    rgb = TISSUE_COLORS[value][:3]
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=TISSUE_NAMES[value],
        segmented_property_category=hd.sr.CodedConcept(category[1], category[0], category[2]),
        segmented_property_type=hd.sr.CodedConcept(kind[1], kind[0], kind[2]),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="DiffSegLung", version=_version(),
            family=hd.sr.CodedConcept("123110", "DCM", "Artificial Intelligence"),
        ),
        tracking_uid=hd.UID(),
        tracking_id=f"diffseglung label {value}",
        anatomic_regions=[hd.sr.CodedConcept(_LUNG[1], _LUNG[0], _LUNG[2])],
        display_color=hd.color.CIELabColor.from_rgb(*(int(round(255 * c)) for c in rgb)),
    )


def _source_datasets(path: Path, reference: CTVolume, source_files) -> list:
    """The headers of the scan's series, in the reader's slice order, checked against its grid."""
    import pydicom

    from .dicom import _geometry, _headers, _members

    uid = reference.source.metadata.get("series_uid")
    if source_files is not None:
        members = {str(f): (lambda f=f: open(f, "rb")) for f in source_files}
        headers = _headers(members)
    else:
        where = Path(reference.source.path)
        if where.is_file() and not _is_zip(where):
            where = where.parent
        if not where.exists():
            raise DicomSegError(f"{path}: the scan's DICOM files are gone from {where}; "
                                "pass source_files=")
        with _members(where) as members:
            headers = _headers(members)
    slices = [(n, ds) for n, ds in headers.items() if uid is None or str(ds.SeriesInstanceUID) == uid]
    if len(slices) == 1 and _frames(slices[0][1]) == reference.source.native_shape[0] > 1:
        return [slices[0][1]]  # one multi-frame file: its frames' geometry is checked on writing
    if len(slices) != reference.source.native_shape[0]:
        raise DicomSegError(f"{path}: found {len(slices)} files of series {uid} for a scan of "
                            f"{reference.source.native_shape[0]} slices")
    ordered, lps = _geometry(Path(reference.source.path), slices, None)
    if not np.allclose(lps_to_ras(lps), reference.native_affine, atol=1e-3):
        raise DicomSegError(f"{path}: the DICOM files found do not match the scan's grid")
    datasets = [ds for _, ds in ordered]
    if not isinstance(datasets[0], pydicom.Dataset):  # pragma: no cover - defensive
        raise DicomSegError(f"{path}: cannot read the source DICOM headers")
    return datasets


def _is_zip(path: Path) -> bool:
    import zipfile

    return path.suffix.lower() == ".zip" or zipfile.is_zipfile(path)


def _series_number(ds) -> int:
    try:
        return int(ds.get("SeriesNumber", 0) or 0) + 1000
    except (TypeError, ValueError):
        return 1000


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("napari-diffseglung")
    except Exception:  # not installed as a distribution
        return "0"
