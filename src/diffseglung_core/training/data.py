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

from ..errors import DiffSegLungError
from ..progress import ProgressCallback, report
from ..volume import normalize_hu


@dataclass
class PatchArrays:
    """``N`` training patches.

    Attributes
    ----------
    ct : (N, D, H, W) float32 ndarray
        Normalised HU (:func:`normalize_hu`).
    mask : (N, D, H, W) ndarray
        Lung mask (any numeric dtype, 0 / 1).
    patient_ids : (N,) ndarray
        The scan each patch comes from.
    scans : list of str
        The scans (paths or names) the patches come from, in order.
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
    def from_folder(cls, folder, mmap: bool = True) -> PatchArrays:
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
                     min_lung_fraction: float = 0.25) -> PatchArrays:
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


def cached_teacher_vectors(data: PatchArrays, cache: Optional[Path] = None, *,
                           write: bool = True, device=None) -> np.ndarray:
    """Radiomic teacher vectors of every patch, read from or written to ``cache``.

    Parameters
    ----------
    data : PatchArrays
        The training patches.
    cache : Path, optional
        ``.npy`` file of an earlier run; used when it holds one row per patch.
    write : bool
        Save the vectors to ``cache`` (only the main process of a run should).
    device : str or torch.device, optional
        Where they are computed (default the CPU).

    Returns
    -------
    (N, 34) ndarray
        See :func:`~diffseglung_core.radiomics.teacher_vectors`.
    """
    from ..radiomics.teacher import teacher_vectors

    if cache is not None and Path(cache).is_file():
        vectors = np.load(cache)
        if len(vectors) == len(data):
            return vectors
    vectors = teacher_vectors(data.ct, data.mask, device=device)
    if cache is not None and write:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, vectors)
    return vectors


def lung_mask(hu: np.ndarray, spacing) -> np.ndarray:
    """Bool lung mask ``(z, y, x)`` of :func:`diffseglung_core.lung.compute_lung_mask`."""
    from ..lung import compute_lung_mask

    return np.asarray(compute_lung_mask(hu, spacing)) > 0


def patches_from_scans(paths: Sequence, patch_size: Sequence[int], patches_per_scan: int,
                       seed: int = 0, folder=None,
                       progress: Optional[ProgressCallback] = None) -> PatchArrays:
    """Cut ``patches_per_scan`` random lung patches from each scan.

    With a ``folder``, the patches are precomputed there (memory maps) and
    opened from it; otherwise scans are read, their lungs found and patches
    kept in memory.
    """
    if folder is not None:
        from .patches import precompute

        precompute([str(p) for p in paths], folder, patches_per_scan=patches_per_scan,
                   patch_size=tuple(patch_size), seed=seed, workers=1, dtype="float32",
                   overwrite=True, progress=progress)
        return PatchArrays.from_folder(folder)
    from ..io import read_scan

    vols = []
    for i, p in enumerate(paths):
        vol = read_scan(Path(p))
        vols.append((str(p), vol.hu, lung_mask(vol.hu, vol.spacing)))
        report(progress, i + 1, len(paths), "reading scans")
    return PatchArrays.from_volumes(vols, patch_size, patches_per_scan, seed=seed)
