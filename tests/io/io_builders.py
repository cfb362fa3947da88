"""Small scan files for the io tests, written with nibabel, pynrrd and pydicom."""

from __future__ import annotations

from pathlib import Path

import numpy as np

RAS_AXES = {"R": (0, 1), "L": (0, -1), "A": (1, 1), "P": (1, -1), "S": (2, 1), "I": (2, -1)}


def unique_hu(shape, seed: int = 0) -> np.ndarray:
    """An int16 HU array whose voxels all differ (any axis flip or swap shows), -1000..+1500."""
    n = int(np.prod(shape))
    values = -1000 + np.random.default_rng(seed).permutation(n) * (2500 // max(n, 1) or 1)
    return values.reshape(shape).astype(np.int16)


def axcodes_affine(codes: str, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Voxel-to-RAS affine whose array axis ``i`` points to ``codes[i]`` with step ``spacing[i]``."""
    aff = np.eye(4)
    aff[:3, :3] = 0
    for i, (code, step) in enumerate(zip(codes, spacing)):
        axis, sign = RAS_AXES[code]
        aff[axis, i] = sign * step
    aff[:3, 3] = origin
    return aff


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    import nibabel as nib

    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def write_nrrd_lps(path: Path, data: np.ndarray, directions_lps: np.ndarray, origin_lps, **extra) -> Path:
    """A NRRD as 3D Slicer writes it: axes in ``sizes`` order, LPS world."""
    import nrrd

    header = {"space": "left-posterior-superior", "space directions": np.asarray(directions_lps, float),
              "space origin": np.asarray(origin_lps, float), "encoding": "raw", **extra}
    nrrd.write(str(path), data, header, index_order="F")
    return path


def write_dicom_series(folder: Path, raw: np.ndarray, *, positions_z=None, modality: str = "CT",
                       series_uid: str = "1.2.3.4.5", description: str = "synthetic",
                       series_number: int = 1, pixel_spacing=(0.8, 0.7), intercept: float = -1024.0,
                       slope: float = 1.0, names=None, iop=(1, 0, 0, 0, 1, 0),
                       origin=(-100.0, -120.0, 0.0), patient_position=None) -> list[Path]:
    """Write ``raw`` ``(slice, row, col)`` uint16 as one axial DICOM file per slice.

    Slice ``k`` lies at ``origin + positions_z[k] * normal`` (LPS mm, default
    ``2.5 * k``). With the default ``iop`` rows run to posterior and columns to
    the patient's left (the usual axial CT layout).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    positions_z = 2.5 * np.arange(len(raw)) if positions_z is None else positions_z
    normal = np.cross(np.asarray(iop[:3], float), np.asarray(iop[3:], float))
    out = []
    for k, (plane, z) in enumerate(zip(raw, positions_z)):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID, ds.SeriesDescription = modality, series_uid, description
        ds.SeriesNumber, ds.InstanceNumber = series_number, len(raw) - k  # superior first, as scanners do
        ds.StudyInstanceUID, ds.FrameOfReferenceUID = "1.2.3.4", "1.2.3.4.6"
        if patient_position is not None:
            ds.PatientPosition = patient_position
        ds.ImagePositionPatient = [float(v) for v in np.asarray(origin, float) + float(z) * normal]
        ds.ImageOrientationPatient = [float(v) for v in iop]
        ds.PixelSpacing = list(pixel_spacing)
        ds.SliceThickness = 2.5
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
        ds.Rows, ds.Columns = plane.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = np.ascontiguousarray(plane, dtype=np.uint16).tobytes()
        path = folder / (names[k] if names else f"s{series_number}-{k:03d}.dcm")
        ds.save_as(str(path), enforce_file_format=True)
        out.append(path)
    return out


def enhanced_ct(slices: list, path: Path, *, series_number: int = 2) -> Path:
    """Convert single-frame CT files into one multi-frame (Legacy Converted Enhanced CT) file."""
    import warnings

    import highdicom
    import pydicom
    from pydicom.uid import generate_uid

    datasets = [pydicom.dcmread(str(p)) for p in slices]
    with warnings.catch_warnings():  # attributes synthetic series lack (FrameOfReferenceUID, ...)
        warnings.simplefilter("ignore")
        image = highdicom.legacy.LegacyConvertedEnhancedCTImage(
            datasets, series_instance_uid=generate_uid(), series_number=series_number,
            sop_instance_uid=generate_uid(), instance_number=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save_as(str(path))
    return path


def ct_raw(n_slices: int = 4, rows: int = 6, cols: int = 5, seed: int = 0) -> np.ndarray:
    """Stored DICOM values (HU + 1024) with every voxel different."""
    return (unique_hu((n_slices, rows, cols), seed).astype(np.int32) + 1024).astype(np.uint16)


def deflate_zeros(prefix: bytes, n_zeros: int, chunk: int = 64 * 2**20) -> tuple[bytes, int]:
    """Raw deflate stream and CRC-32 of ``prefix`` followed by ``n_zeros`` zero bytes.

    Built in a fraction of a second for gigabytes: every full chunk of zeros
    after a full flush compresses to the same bytes, which are repeated.
    """
    import zlib

    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = min(n_zeros, max(chunk - len(prefix), 0))
    parts = [comp.compress(prefix + bytes(head)) + comp.flush(zlib.Z_FULL_FLUSH)]
    crc = zlib.crc32(prefix + bytes(head))
    left = n_zeros - head
    zeros = bytes(chunk)
    full, rest = divmod(left, chunk)
    if full:
        unit = comp.compress(zeros) + comp.flush(zlib.Z_FULL_FLUSH)
        parts.append(unit * full)
        for _ in range(full):
            crc = zlib.crc32(zeros, crc)
    parts.append(comp.compress(bytes(rest)) + comp.flush(zlib.Z_FINISH))
    crc = zlib.crc32(bytes(rest), crc)
    return b"".join(parts), crc


def gzip_of_zeros(path: Path, prefix: bytes, n_zeros: int) -> Path:
    """A gzip file of ``prefix`` then ``n_zeros`` zero bytes (a NIfTI header and its data)."""
    import struct

    body, crc = deflate_zeros(prefix, n_zeros)
    size = (len(prefix) + n_zeros) % 2**32
    path.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + body + struct.pack("<II", crc, size))
    return path


def zip_of_zeros(path: Path, name: str, n_zeros: int) -> Path:
    """A zip holding one deflated member of ``n_zeros`` zero bytes (under 4 GiB: no zip64)."""
    import struct

    body, crc = deflate_zeros(b"", n_zeros)
    raw = name.encode()
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(body), n_zeros,
                        len(raw), 0) + raw
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(body),
                          n_zeros, len(raw), 0, 0, 0, 0, 0, 0) + raw
    offset = len(local) + len(body)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), offset, 0)
    path.write_bytes(local + body + central + end)
    return path


def nifti_header_bytes(shape, dtype=np.int16, spacing=(1.0, 1.0, 1.0)) -> bytes:
    """The 352 bytes (header and empty extension flag) of a NIfTI-1 file of ``shape``."""
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(dtype)
    header.set_zooms(spacing)
    header.set_qform(np.diag([*spacing, 1.0]), code=1)
    header.set_sform(np.diag([*spacing, 1.0]), code=1)
    header["vox_offset"] = 352
    return header.binaryblock + b"\x00" * 4
