"""DICOM series reader: a folder (searched recursively) or a ``.zip`` of one.

Headers are read first (without pixel data) to group files by
SeriesInstanceUID; then the pixels of one series are read, sorted along the
slice normal, and rescaled to HU with each slice's RescaleSlope/Intercept.
A series stored as one multi-frame (enhanced) CT file, as newer scanners
write it, is read with highdicom, which sorts its frames into a volume from
their per-frame positions and rescales them to HU.
"""

from __future__ import annotations

import contextlib
import io
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np

from ..errors import ScanReadError
from ..progress import ProgressCallback, report
from .base import NativeScan, checked_spacing, lps_to_ras
from .checks import check_modality
from .limits import MAX_FILE_BYTES, check_declared_size, read_bounded


@dataclass(frozen=True)
class SeriesInfo:
    """One DICOM series of a folder or zip.

    Attributes
    ----------
    uid : str
        SeriesInstanceUID.
    number : str
        SeriesNumber ("" when absent).
    description : str
        SeriesDescription.
    modality : str
        Modality (``"CT"``, ``"MR"``, ``"PT"``, ...).
    n_slices : int
        Number of image files.
    rows, columns : int
        In-plane size of the first image.
    files : tuple of str
        File names (relative to the folder or zip) of the series.
    """

    uid: str
    number: str
    description: str
    modality: str
    n_slices: int
    rows: int
    columns: int
    files: tuple[str, ...] = field(default=(), repr=False)

    @property
    def label(self) -> str:
        """Short text for users: ``"series 3 '5mm' (CT, 64 slices)"``."""
        return (f"series {self.number or '?'} '{self.description}' "
                f"({self.modality or '?'}, {self.n_slices} slices)")


Opener = Callable[[], "io.BufferedIOBase"]


class Members(dict):
    """File names of a folder or zip -> functions that open them; ``skipped``: files left out.

    Files over :data:`~.limits.MAX_FILE_BYTES` (by their size on disk or the
    size the zip declares) are left out before anything is read, and zip
    members are read no further than that bound.
    """

    skipped: list[str]

    def __init__(self, *args, skipped=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.skipped = list(skipped)

    def none_found(self, path: Path) -> ScanReadError:
        """The error for a folder or zip without DICOM images, naming the files left out."""
        if not self.skipped:
            return ScanReadError(path, "no DICOM images found")
        names = ", ".join(self.skipped[:3]) + (", ..." if len(self.skipped) > 3 else "")
        return ScanReadError(path, f"no DICOM images found ({len(self.skipped)} file(s) over "
                                   f"{MAX_FILE_BYTES // 2**20} MiB left out unread: {names})")


def _one_file(path: Path) -> bool:
    """Whether ``path`` is one DICOM file (not a folder, nor a zip by name or content)."""
    return path.is_file() and path.suffix.lower() != ".zip" and not zipfile.is_zipfile(path)


@contextlib.contextmanager
def _members(path: Path) -> Iterator[Members]:
    """Map file names of a folder, a zip or one file to functions that open them (sizes bounded)."""
    if _one_file(path):
        fits = path.stat().st_size <= MAX_FILE_BYTES
        yield Members({path.name: lambda: open(path, "rb")} if fits else {},
                      skipped=[] if fits else [path.name])
        return
    if path.is_dir():
        files, skipped = [], []
        for p in sorted(path.rglob("*")):
            if p.is_file() and not p.name.startswith("."):
                (files if p.stat().st_size <= MAX_FILE_BYTES else skipped).append(p)
        yield Members({str(p.relative_to(path)): (lambda p=p: open(p, "rb")) for p in files},
                      skipped=[str(p.relative_to(path)) for p in skipped])
        return
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        raise ScanReadError(path, f"not a readable zip file ({err})") from None
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir() and "__MACOSX" not in i.filename
                 and not Path(i.filename).name.startswith(".")]
        small = sorted(i.filename for i in infos if i.file_size <= MAX_FILE_BYTES)
        skipped = sorted(i.filename for i in infos if i.file_size > MAX_FILE_BYTES)

        def opener(name: str) -> io.BytesIO:
            with archive.open(name) as fp:
                return io.BytesIO(read_bounded(fp, MAX_FILE_BYTES, path, name))

        yield Members({n: (lambda n=n: opener(n)) for n in small}, skipped=skipped)


def _headers(members: dict[str, Opener]) -> dict[str, object]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    headers = {}
    for name, opener in members.items():
        try:
            with opener() as fp:
                ds = pydicom.dcmread(fp, stop_before_pixels=True)
        except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError):
            continue  # not DICOM (or a broken file that will be named when it is needed)
        if "Rows" in ds and "SeriesInstanceUID" in ds:  # images only: skips DICOMDIR, reports
            headers[name] = ds
    return headers


def _series_from_headers(headers: dict) -> list[SeriesInfo]:
    groups: dict[str, list[str]] = {}
    for name, ds in headers.items():
        groups.setdefault(str(ds.SeriesInstanceUID), []).append(name)
    out = []
    for uid, names in groups.items():
        ds = headers[names[0]]
        out.append(SeriesInfo(uid=uid, number=str(ds.get("SeriesNumber", "") or ""),
                              description=str(ds.get("SeriesDescription", "") or "").strip(),
                              modality=str(ds.get("Modality", "") or ""),
                              n_slices=sum(_frames(headers[n]) for n in names),
                              rows=int(ds.Rows), columns=int(ds.Columns), files=tuple(names)))
    return sorted(out, key=lambda s: (-s.n_slices, s.number, s.uid))


def list_dicom_series(folder_or_zip) -> list[SeriesInfo]:
    """The image series of a DICOM folder (searched recursively) or zip, largest first.

    Reads headers only. Raises :class:`ScanReadError` when there is no DICOM image.
    """
    path = Path(folder_or_zip)
    with _members(path) as members:
        series = _series_from_headers(_headers(members))
        if not series:
            raise members.none_found(path)
    return series


def _choose(path: Path, series: list[SeriesInfo], wanted: Optional[str]) -> SeriesInfo:
    if wanted is not None:
        wanted = str(wanted)
        for s in series:
            if wanted in (s.uid, s.number) or wanted.lower() == s.description.lower():
                return s
        choices = "; ".join(f"{s.label} uid {s.uid}" for s in series)
        raise ScanReadError(path, f"no DICOM series {wanted!r} here (found {choices})")
    ct = [s for s in series if s.modality.upper() in ("CT", "")]
    if not ct:
        check_modality(path, series[0].modality)
        raise ScanReadError(path, f"no CT series (found {', '.join(s.label for s in series)})")
    return ct[0]


def read_dicom(path: Path, *, spacing=None, series=None, role="image",
               progress: Optional[ProgressCallback] = None) -> NativeScan:
    """Read one CT series of a DICOM folder or zip as ``(slice, row, column)`` HU.

    Parameters
    ----------
    path : Path
        Folder, ``.zip``, or one ``.dcm`` file (its folder's series is read;
        a multi-frame file holds its series by itself and is read alone).
    spacing : (z, y, x) mm, optional
        Used only for what the headers lack (PixelSpacing, the slice step of a
        single slice).
    series : str, optional
        SeriesInstanceUID, SeriesNumber or SeriesDescription to read. By
        default the CT series with most slices, with a warning when there are
        several.
    """
    if role != "image":
        raise ScanReadError(path, "DICOM label maps (DICOM SEG) are not supported; use NIfTI or NRRD")
    if _one_file(path):
        import pydicom

        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        if _frames(ds) == 1:  # one slice of a series: the series is its folder's
            uid = str(ds.get("SeriesInstanceUID", ""))
            return read_dicom(path.parent, spacing=spacing, series=uid or None, progress=progress)
    with _members(path) as members:
        headers = _headers(members)
        found = _series_from_headers(headers)
        if not found:
            raise members.none_found(path)
        chosen = _choose(path, found, series)
        check_modality(path, chosen.modality)
        description = chosen.description
        if len(found) > 1 and series is None:
            others = ", ".join(s.label for s in found if s is not chosen)
            description = f"{chosen.label}, chosen from {len(found)} series (also here: {others})"
            warnings.warn(f"{path}: {len(found)} DICOM series; reading {chosen.label} "
                          f"(uid {chosen.uid}); choose another with series=", stacklevel=3)
        slices = [(name, headers[name]) for name in chosen.files]
        data, affine = _stack(path, slices, members, spacing, progress)
    return NativeScan(data=data, affine=affine, description=description,
                      metadata={"modality": chosen.modality, "series_uid": chosen.uid,
                                "series_number": chosen.number, "n_series": len(found),
                                **_position_metadata([ds for _, ds in slices]),
                                **_padding_metadata([ds for _, ds in slices])})


def _position_metadata(headers: list) -> dict:
    """``{"patient_position": code}`` (DICOM PatientPosition, e.g. ``"HFS"``, ``"HFP"``)
    when every slice gives the same one; ``{}`` otherwise."""
    codes = {str(ds.get("PatientPosition", "") or "").strip().upper() for ds in headers}
    return {"patient_position": codes.pop()} if len(codes) == 1 and "" not in codes else {}


def _frames(ds) -> int:
    """Number of frames (slices) of one DICOM image: 1, or NumberOfFrames of a multi-frame one."""
    return int(ds.get("NumberOfFrames", 1) or 1)


def _rescale(ds) -> tuple[float, float]:
    """RescaleSlope and RescaleIntercept of ``ds``: its own or, in a multi-frame (enhanced)
    image, those of its shared (else first per-frame) Pixel Value Transformation."""
    source = ds
    if "RescaleSlope" not in ds and "RescaleIntercept" not in ds:
        for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
            transform = (ds.get(groups) or [{}])[0].get("PixelValueTransformationSequence")
            if transform:
                source = transform[0]
                break
    return (float(source.get("RescaleSlope", 1) or 1),
            float(source.get("RescaleIntercept", 0) or 0))


def _stored_to_hu(ds, raw) -> float:
    """A stored pixel value of ``ds`` in HU (its RescaleSlope and RescaleIntercept)."""
    raw = int(raw)
    if int(ds.get("PixelRepresentation", 0) or 0) == 1 and raw >= 2 ** 15:
        raw -= 2 ** 16  # a signed value read as unsigned (ambiguous VR "US or SS")
    slope, intercept = _rescale(ds)
    return raw * slope + intercept


def _padding_metadata(headers: list) -> dict:
    """PixelPaddingValue (and PixelPaddingRangeLimit) in HU, with each slice's rescale.

    Returns ``{"padding_hu": [values]}`` plus ``{"padding_range_hu": [low, high]}``
    when a range limit is given; ``{}`` when no slice declares padding.
    """
    values, ranges = set(), set()
    for ds in headers:
        if ds.get("PixelPaddingValue") is None:
            continue
        pad = _stored_to_hu(ds, ds.PixelPaddingValue)
        values.add(pad)
        if ds.get("PixelPaddingRangeLimit") is not None:
            limit = _stored_to_hu(ds, ds.PixelPaddingRangeLimit)
            ranges.add((min(pad, limit), max(pad, limit)))
    out: dict = {}
    if values:
        out["padding_hu"] = sorted(values)
    if ranges:
        out["padding_range_hu"] = [min(r[0] for r in ranges), max(r[1] for r in ranges)]
    return out


def _stack(path: Path, slices: list, members: dict, spacing, progress) -> tuple[np.ndarray, np.ndarray]:
    """Sort, check and read the pixels of one series; return ``(data, ras_affine)``."""
    first = slices[0][1]
    if _frames(first) > 1:
        return _multiframe(path, slices, members, progress)
    sizes = {(int(ds.Rows), int(ds.Columns)) for _, ds in slices}
    if len(sizes) > 1:
        raise ScanReadError(path, f"mixed series: slices of sizes {sorted(sizes)} in one series")
    rows, columns = sizes.pop()
    bits = int(first.get("BitsAllocated", 16) or 16)
    check_declared_size(path, (len(slices), rows, columns), max(1, bits // 8),
                        what="the series' headers declare")
    slices, lps = _geometry(path, slices, spacing)
    return _pixels(path, slices, members, progress), lps_to_ras(lps)


def _geometry(path: Path, slices: list, spacing) -> tuple[list, np.ndarray]:
    """Slices sorted along their normal (inferior first for axial CT) and their voxel-to-LPS affine."""
    try:
        iop = np.array([[float(v) for v in ds.ImageOrientationPatient] for _, ds in slices])
        ipp = np.array([[float(v) for v in ds.ImagePositionPatient] for _, ds in slices])
    except (AttributeError, TypeError, ValueError):
        raise ScanReadError(path, "slices lack ImagePositionPatient/ImageOrientationPatient: "
                                  "cannot order them in space") from None
    if np.abs(iop - iop[0]).max() > 1e-3:
        raise ScanReadError(path, "mixed series: slices with different orientations in one series")
    row_cos, col_cos = iop[0, :3], iop[0, 3:]
    normal = np.cross(row_cos, col_cos)
    order = np.argsort(ipp @ normal, kind="stable")
    ipp, slices = ipp[order], [slices[i] for i in order]
    first = slices[0][1]
    step = _slice_step(path, ipp @ normal, first, spacing)
    if first.get("PixelSpacing") is not None:
        dy, dx = (float(v) for v in first.PixelSpacing)
    elif spacing is not None:
        _, dy, dx = checked_spacing(path, spacing)
    else:
        raise ScanReadError(path, "missing voxel spacing (no PixelSpacing); "
                                  "give it with --spacing Z Y X (mm)")
    lps = np.eye(4)
    # the step between slice origins (not just along the normal) keeps a gantry tilt exact
    lps[:3, 0] = (ipp[-1] - ipp[0]) / (len(ipp) - 1) if len(ipp) > 1 else normal * step
    lps[:3, 1] = col_cos * dy  # down a column: the row index grows
    lps[:3, 2] = row_cos * dx  # along a row: the column index grows
    lps[:3, 3] = ipp[0]
    return slices, lps


def _slice_step(path: Path, pos: np.ndarray, first, spacing) -> float:
    """The slice step along the normal (mm); refuses duplicates, gaps and uneven steps."""
    if len(pos) == 1:
        for key in ("SpacingBetweenSlices", "SliceThickness"):
            if first.get(key):
                return float(first.get(key))
        if spacing is not None:
            return checked_spacing(path, spacing)[0]
        raise ScanReadError(path, "missing voxel spacing: one slice without SliceThickness; "
                                  "give --spacing Z Y X (mm)")
    steps = np.diff(pos)
    if steps.min() < 1e-3:
        n = int((steps < 1e-3).sum())
        raise ScanReadError(path, f"mixed series: {n} slices share a position with another slice "
                                  "(several acquisitions in one series?)")
    step = float(np.median(steps))
    tol = max(0.02 * step, 0.01)
    off = np.abs(steps - step) > tol
    if off.any():
        ratio = steps / step
        gaps = off & (np.abs(ratio - np.round(ratio)) * step <= tol) & (ratio > 1.5)
        if gaps.sum() == off.sum():
            missing = int(np.round(ratio[gaps]).sum() - gaps.sum())
            at = ", ".join(f"{pos[i]:.1f}..{pos[i + 1]:.1f}" for i in np.flatnonzero(gaps)[:3])
            raise ScanReadError(path, f"missing slices: {missing} slice(s) missing in a series stepping "
                                      f"{step:g} mm (gaps at {at} mm)")
        raise ScanReadError(path, f"uneven slice spacing: steps from {steps.min():.3g} to "
                                  f"{steps.max():.3g} mm along the slice normal")
    return step


def _multiframe(path: Path, slices: list, members: dict, progress) -> tuple[np.ndarray, np.ndarray]:
    """The volume of one multi-frame (enhanced) CT file, in HU, and its voxel-to-RAS affine."""
    if len(slices) > 1:
        raise ScanReadError(path, f"a series of {len(slices)} multi-frame DICOM files: give one of "
                                  f"them ({slices[0][0]}, ...) as the scan")
    name, ds = slices[0]
    bits = int(ds.get("BitsAllocated", 16) or 16)
    check_declared_size(path, (_frames(ds), int(ds.Rows), int(ds.Columns)), max(1, bits // 8),
                        what="the file's header declares")
    try:
        import highdicom
    except ImportError:
        raise ScanReadError(path, "multi-frame (enhanced) DICOM needs highdicom (pip install "
                                  "highdicom), or export the series as one file per slice") from None
    report(progress, 0, 1, "reading DICOM")
    try:
        with members[name]() as fp:
            image = highdicom.imread(fp)
        # frames sorted into a volume by their positions, rescaled to HU
        volume = image.get_volume(dtype=np.float32, apply_real_world_transform=False)
    except Exception as err:  # highdicom and the decoders fail in many types
        raise ScanReadError(path, f"cannot read {name} as one volume: {_first_line(err)}"
                                  f"{_codec_hint(ds)}") from None
    report(progress, 1, 1, "reading DICOM")
    return np.ascontiguousarray(volume.array, dtype=np.float32), lps_to_ras(volume.affine)


def _pixels(path: Path, slices: list, members: dict, progress) -> np.ndarray:
    import pydicom

    first = slices[0][1]
    out = np.empty((len(slices), int(first.Rows), int(first.Columns)), dtype=np.float32)
    for k, (name, _) in enumerate(slices):
        ds = None
        try:
            with members[name]() as fp:
                ds = pydicom.dcmread(fp)
            raw = ds.pixel_array
        except Exception as err:  # decoders fail in many types; name the slice and the syntax
            raise ScanReadError(path, f"cannot read the pixels of {name}: {_first_line(err)}"
                                      f"{_codec_hint(ds)}") from None
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
        out[k] = raw * np.float32(slope) + np.float32(intercept)
        report(progress, k + 1, len(slices), "reading DICOM")
    return out


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _codec_hint(ds) -> str:
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None and syntax.is_compressed:
        return f" (compressed: {syntax.name}; install pylibjpeg or python-gdcm)"
    return ""
