"""Training patches in memory or memory-mapped, and where they come from.

A :class:`PatchArrays` holds ``N`` patches of normalised CT and lung mask
(``(N, D, H, W)`` arrays, possibly ``np.memmap``) and the scans they were cut
from. Sources: a precomputed patch folder (``ct.npy``, ``mask.npy``,
``patient_ids.npy``), a folder of scans, or volumes already in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import torch

from ..errors import DiffSegLungError, ScanReadError
from ..progress import ProgressCallback, report
from ..volume import normalize_hu


@dataclass
class PatchArrays:
    """``N`` training patches.

    Attributes
    ----------
    ct : (N, D, H, W) float32, normalised HU (:func:`normalize_hu`).
    mask : (N, D, H, W) lung mask (any numeric dtype, 0 / 1).
    patient_ids : (N,) array naming each patch's scan.
    scans : the scans (paths or names) the patches come from, in order.
    """

    ct: np.ndarray
    mask: np.ndarray
    patient_ids: np.ndarray
    scans: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.ct.ndim != 4 or self.ct.shape != self.mask.shape:
            raise ValueError(f"ct {self.ct.shape} and mask {self.mask.shape} must be equal (N, D, H, W)")
        if len(self.patient_ids) != len(self.ct):
            raise ValueError("one patient id per patch is needed")

    def __len__(self) -> int:
        return int(self.ct.shape[0])

    @property
    def patch_size(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.ct.shape[1:])  # type: ignore[return-value]

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ct, mask)`` float32 tensors ``(b, 1, D, H, W)`` for the given patch indices."""
        idx = np.asarray(indices, dtype=np.int64)
        order = np.argsort(idx, kind="stable")  # sorted reads are faster on memmaps
        ct = np.empty((len(idx),) + self.patch_size, np.float32)
        mask = np.empty((len(idx),) + self.patch_size, np.float32)
        ct[order] = self.ct[idx[order]]
        mask[order] = self.mask[idx[order]]
        return torch.from_numpy(ct)[:, None], torch.from_numpy(mask)[:, None]

    @classmethod
    def from_folder(cls, folder, mmap: bool = True) -> "PatchArrays":
        """Open a precomputed patch folder (``ct.npy``, ``mask.npy``, ``patient_ids.npy``)."""
        folder = Path(folder)
        for name in ("ct.npy", "mask.npy"):
            if not (folder / name).is_file():
                raise DiffSegLungError(f"{folder}: not a patch folder (no {name})")
        mode = "r" if mmap else None
        ct = np.load(folder / "ct.npy", mmap_mode=mode)
        mask = np.load(folder / "mask.npy", mmap_mode=mode)
        ids_path = folder / "patient_ids.npy"
        ids = np.load(ids_path, allow_pickle=False) if ids_path.is_file() else np.zeros(len(ct), int)
        scans = [str(s) for s in dict.fromkeys(ids.tolist())]
        return cls(ct=ct, mask=mask, patient_ids=ids, scans=scans)

    @classmethod
    def from_volumes(cls, volumes: Iterable[tuple[str, np.ndarray, np.ndarray]],
                     patch_size: Sequence[int], patches_per_volume: int, seed: int = 0,
                     min_lung_fraction: float = 0.25) -> "PatchArrays":
        """Cut random patches centred in the lung of ``(name, hu, lung)`` volumes.

        Parameters
        ----------
        volumes : iterable of (name, (Z, Y, X) HU array, (Z, Y, X) lung mask).
        patch_size : (D, H, W) voxels.
        patches_per_volume : patches cut from each volume.
        seed : seeds the patch positions.
        min_lung_fraction : a patch with less lung is redrawn (up to 20 times).
        """
        rng = np.random.default_rng(seed)
        size = np.asarray(patch_size, int)
        cts, masks, ids, names = [], [], [], []
        for name, hu, lung in volumes:
            hu = np.asarray(hu, np.float32)
            lung = np.asarray(lung) > 0
            pad = [(int(s) // 2, int(s) - int(s) // 2) for s in size]
            hu_p = np.pad(hu, pad, mode="constant", constant_values=-1000.0)
            lung_p = np.pad(lung, pad)
            centres = np.argwhere(lung)
            if len(centres) == 0:
                raise DiffSegLungError(f"{name}: no lung voxels to sample patches from")
            names.append(str(name))
            for _ in range(patches_per_volume):
                for _try in range(20):
                    c = centres[rng.integers(len(centres))]
                    sl = tuple(slice(int(ci), int(ci) + int(s)) for ci, s in zip(c, size))
                    m = lung_p[sl]
                    if m.mean() >= min_lung_fraction:
                        break
                cts.append(normalize_hu(hu_p[sl]).astype(np.float32))
                masks.append(m.astype(np.uint8))
                ids.append(str(name))
        return cls(ct=np.stack(cts), mask=np.stack(masks), patient_ids=np.asarray(ids), scans=names)


def threshold_lung(hu: np.ndarray) -> np.ndarray:
    """A rough lung mask: the large air-like components inside the body.

    Used only when :mod:`diffseglung_core.lung` is not installed. Voxels below
    -400 HU not connected to the in-plane border, minus tiny components.
    """
    from scipy import ndimage as ndi

    air = hu < -400
    lab, n = ndi.label(air)
    # Outside air touches the in-plane border; the lungs may touch the first or last slice.
    border = np.unique(np.concatenate([lab[:, [0, -1]].ravel(), lab[:, :, [0, -1]].ravel()]))
    inside = air & ~np.isin(lab, border)
    lab, n = ndi.label(inside)
    if n == 0:
        return inside
    sizes = ndi.sum(inside, lab, index=np.arange(1, n + 1))
    keep = np.flatnonzero(sizes >= max(0.05 * sizes.max(), 1)) + 1
    return np.isin(lab, keep)


def _read_volume(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """HU ``(z, y, x)`` and spacing (mm) of a scan file or DICOM folder."""
    try:
        from ..io import read_scan  # type: ignore[attr-defined]
    except ImportError:
        read_scan = None
    if read_scan is not None:
        vol = read_scan(path)
        return vol.hu, vol.spacing
    if path.is_dir():
        return read_dicom_series(path)
    raise ScanReadError(path, "no reader for this file (diffseglung_core.io is not available)")


def read_dicom_series(folder) -> tuple[np.ndarray, tuple[float, float, float]]:
    """HU ``(z, y, x)`` and spacing (mm) of a single-series axial DICOM folder.

    Slices are sorted inferior to superior. With the usual axial orientation
    (rows along +x, columns along +y of the patient LPS frame) the pixel rows
    run anterior to posterior and the columns patient right to left, which is
    the project's ``(y, x)`` layout already.
    """
    import pydicom

    files = sorted(Path(folder).glob("*.dcm")) or sorted(p for p in Path(folder).iterdir() if p.is_file())
    slices = [pydicom.dcmread(str(f)) for f in files]
    if not slices:
        raise ScanReadError(folder, "no DICOM files")
    slices.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    hu = np.stack([d.pixel_array.astype(np.float32) * float(getattr(d, "RescaleSlope", 1))
                   + float(getattr(d, "RescaleIntercept", 0)) for d in slices])
    zs = [float(d.ImagePositionPatient[2]) for d in slices]
    dz = float(np.median(np.diff(zs))) if len(zs) > 1 else float(getattr(slices[0], "SliceThickness", 1))
    dy, dx = (float(v) for v in slices[0].PixelSpacing)
    return hu, (abs(dz), dy, dx)


def read_dicom_series_hu(folder) -> np.ndarray:
    """HU ``(z, y, x)`` of a DICOM folder (see :func:`read_dicom_series`)."""
    return read_dicom_series(folder)[0]


def lung_mask(hu: np.ndarray, spacing) -> np.ndarray:
    """Bool lung mask: :func:`diffseglung_core.lung.compute_lung_mask` or :func:`threshold_lung`."""
    try:
        from ..lung import compute_lung_mask
    except ImportError:
        return threshold_lung(hu)
    return np.asarray(compute_lung_mask(hu, spacing)) > 0


def patches_from_scans(paths: Sequence, patch_size: Sequence[int], patches_per_scan: int,
                       seed: int = 0, folder=None,
                       progress: Optional[ProgressCallback] = None) -> PatchArrays:
    """Cut ``patches_per_scan`` random lung patches from each scan.

    With :mod:`diffseglung_core.patches` installed and a ``folder`` given, the
    patches are precomputed there (memory maps) and opened from it; otherwise
    scans are read, their lungs found and patches kept in memory.
    """
    if folder is not None:
        try:
            from ..patches import precompute
        except ImportError:
            precompute = None
        if precompute is not None:
            precompute([str(p) for p in paths], folder, patches_per_scan=patches_per_scan,
                       patch_size=tuple(patch_size), seed=seed, workers=1, dtype="float32",
                       overwrite=True, progress=progress)
            return PatchArrays.from_folder(folder)
    vols = []
    for i, p in enumerate(paths):
        p = Path(p)
        hu, spacing = _read_volume(p)
        vols.append((str(p), hu, lung_mask(hu, spacing)))
        report(progress, i + 1, len(paths), "reading scans")
    return PatchArrays.from_volumes(vols, patch_size, patches_per_scan, seed=seed)


def scan_paths(folder) -> list[Path]:
    """Scans of a folder: its files (NIfTI, NRRD, NPZ, ...) and sub-folders of DICOM files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DiffSegLungError(f"{folder}: not a folder")
    if any(folder.glob("*.dcm")):
        return [folder]
    out = [p for p in sorted(folder.iterdir()) if not p.name.startswith(".")]
    if not out:
        raise DiffSegLungError(f"{folder}: no scans found")
    return out
