"""Training patches: sampling in the lung, extraction, precomputed memmaps, Datasets.

A patch is a ``(D, H, W)`` box of a CT (default 32x96x96 voxels, ``(z, y, x)``)
whose centre lies in the lung and that holds at least ``min_lung_fraction``
lung. Two channels travel together: the CT normalised with
:func:`~diffseglung_core.volume.normalize_hu` and the binary lung mask.

:func:`precompute` cuts patches from many scans with several processes and
writes them as ``.npy`` memory maps (the layout of the original DiffSegLung
code)::

    out_dir/ct.npy            (N, D, H, W) float16 or float32, normalised HU
    out_dir/mask.npy          (N, D, H, W) uint8, 1 = lung
    out_dir/patient_ids.npy   (N,) str, the scan each patch comes from
    out_dir/patches.json      settings, scans and centres

A scan may also be a :class:`PatchSource`: a volume made in the worker (a
phantom, a scan with lesions inserted, a slice made into a slab) that may come
with its lung mask and a *focus* mask (known pathology) in which a share of
the centres is drawn, so that rare tissue is not rare among the patches.

:class:`PatchDataset` reads such a folder lazily; :class:`VolumePatchDataset`
cuts patches on the fly from volumes in memory (tests, tiny runs).
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset as _TorchDataset

from ..errors import DiffSegLungError, NoLungFoundError, OutputExistsError
from ..io.discovery import scan_name
from ..progress import ProgressCallback, report
from ..volume import CTVolume, normalize_hu

__all__ = [
    "DEFAULT_PATCH_SIZE",
    "PAD_HU",
    "sample_centres",
    "extract_patch",
    "extract_patches",
    "precompute",
    "PatchSource",
    "scan_id",
    "PatchDataset",
    "VolumePatchDataset",
]

#: Default patch size in voxels, ``(D, H, W)`` = ``(z, y, x)``.
DEFAULT_PATCH_SIZE: tuple[int, int, int] = (32, 96, 96)
#: HU used to pad patches that reach past the edge of a scan (air).
PAD_HU = -1000.0
#: Name of the settings file written by :func:`precompute`.
SETTINGS_FILE = "patches.json"


@dataclass(frozen=True)
class PatchSource:
    """A volume to cut patches from, made when its patches are cut.

    Attributes
    ----------
    name : str
        Its id in ``patient_ids.npy`` and ``patches.json``.
    make : callable
        ``make() -> (CTVolume, lung, focus)``. ``lung``: ``(Z, Y, X)`` mask
        (nonzero = lung), or None to compute it with
        :func:`~diffseglung_core.lung.compute_lung_mask`; ``focus``: a mask
        of voxels (e.g. known pathology) in which :func:`precompute` draws a
        share ``focus_fraction`` of the centres, or None. With several worker
        processes it must pickle (a module-level function or a
        ``functools.partial`` of one).
    """

    name: str
    make: Callable[[], tuple]


Scan = Union[str, os.PathLike, CTVolume, PatchSource]


def _corner(centre, size) -> np.ndarray:
    """Lower corner of a box of ``size`` centred on ``centre`` (centre at index size // 2)."""
    return np.asarray(centre, int) - np.asarray(size, int) // 2


def _lung_fraction(lung: np.ndarray, centre, size) -> float:
    lo = _corner(centre, size)
    hi = lo + np.asarray(size, int)
    a = np.maximum(lo, 0)
    b = np.minimum(hi, lung.shape)
    inside = lung[a[0]:b[0], a[1]:b[1], a[2]:b[2]]
    return float(np.count_nonzero(inside)) / float(np.prod(size))


def sample_centres(
    lung: np.ndarray,
    n: int,
    patch_size: Sequence[int] = DEFAULT_PATCH_SIZE,
    *,
    min_lung_fraction: float = 0.25,
    seed: Union[int, np.random.Generator, None] = 0,
    max_tries: int = 50,
) -> np.ndarray:
    """Draw patch centres uniformly among the lung voxels.

    Parameters
    ----------
    lung : (Z, Y, X) array
        Lung mask (nonzero = lung).
    n : int
        Number of centres.
    patch_size : 3 ints
        Patch size ``(D, H, W)`` in voxels.
    min_lung_fraction : float
        A centre is redrawn (up to ``max_tries`` times) while its patch holds
        a smaller fraction of lung voxels; the best draw is kept after that.
    seed : int or Generator
        Same seed, same lung, same centres.

    Returns
    -------
    (n, 3) int64 ndarray
        Voxel indices ``(z, y, x)``, each inside the lung. A patch spans
        ``centre - size // 2`` to ``centre - size // 2 + size``.

    Raises
    ------
    NoLungFoundError
        When the mask is empty.
    """
    lung = np.asarray(lung) != 0
    if lung.ndim != 3:
        raise ValueError(f"lung mask must be (z, y, x), got shape {lung.shape}")
    size = tuple(int(s) for s in patch_size)
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"patch_size must be 3 positive ints, got {patch_size}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    flat = np.flatnonzero(lung)
    if flat.size == 0:
        raise NoLungFoundError("the lung mask is empty: no patch can be sampled")
    return _draw_centres(lung, flat, n, size, min_lung_fraction, rng, max_tries)


def _draw_centres(lung, flat, n, size, min_lung_fraction, rng, max_tries) -> np.ndarray:
    centres = np.empty((n, 3), np.int64)
    for k in range(n):
        best, best_frac = None, -1.0
        for _ in range(max(1, max_tries)):
            c = np.unravel_index(flat[rng.integers(flat.size)], lung.shape)
            frac = _lung_fraction(lung, c, size)
            if frac > best_frac:
                best, best_frac = c, frac
            if frac >= min_lung_fraction:
                break
        centres[k] = best
    return centres


def extract_patch(array: np.ndarray, centre, patch_size: Sequence[int],
                  fill: float = 0) -> np.ndarray:
    """Cut a ``patch_size`` box centred on ``centre``, padding with ``fill`` past the edges.

    Returns an array of ``array.dtype`` and shape ``patch_size``.
    """
    size = np.asarray(patch_size, int)
    lo = _corner(centre, size)
    hi = lo + size
    out = np.full(tuple(size), fill, dtype=array.dtype)
    a = np.maximum(lo, 0)
    b = np.minimum(hi, array.shape)
    if np.any(b <= a):
        return out
    dst = tuple(slice(int(s - first), int(e - first)) for s, e, first in zip(a, b, lo))
    out[dst] = array[a[0]:b[0], a[1]:b[1], a[2]:b[2]]
    return out


def extract_patches(hu: np.ndarray, lung: np.ndarray, centres: np.ndarray,
                    patch_size: Sequence[int] = DEFAULT_PATCH_SIZE,
                    dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Normalised CT and lung-mask patches at ``centres``.

    Parameters
    ----------
    hu : (Z, Y, X) ndarray
        HU.
    lung : (Z, Y, X) ndarray
        Lung mask (nonzero = lung).
    centres : (N, 3) int ndarray
        Voxel indices of the patch centres.
    patch_size : (3,) sequence of int
        ``(D, H, W)`` voxels.
    dtype : numpy dtype
        Of the CT patches.

    Returns
    -------
    ct : (N, D, H, W) ndarray of ``dtype``
        :func:`normalize_hu` of the HU (padding = air).
    mask : (N, D, H, W) uint8 ndarray
        1 = lung.
    """
    if hu.shape != lung.shape:
        raise ValueError(f"hu {hu.shape} and lung {lung.shape} must share a grid")
    size = tuple(int(s) for s in patch_size)
    centres = np.asarray(centres).reshape(-1, 3)
    ct = np.empty((len(centres),) + size, dtype)
    mask = np.empty((len(centres),) + size, np.uint8)
    lung_u8 = lung.astype(np.uint8) if lung.dtype != np.uint8 else (lung != 0).astype(np.uint8)
    for i, c in enumerate(centres):
        ct[i] = normalize_hu(extract_patch(hu, c, size, fill=PAD_HU).astype(np.float32))
        mask[i] = extract_patch(lung_u8, c, size, fill=0)
    return ct, mask


# ---------------------------------------------------------------------------
# precompute


def scan_id(scan: Scan, index: int = 0) -> str:
    """A short name for a scan (:func:`~diffseglung_core.io.scan_name`).

    A volume made in memory, without a source file, is ``scan{index:04d}``;
    a :class:`PatchSource` is its ``name``.
    """
    if isinstance(scan, PatchSource):
        return scan.name
    if isinstance(scan, CTVolume):
        if not scan.source.path:
            return f"scan{index:04d}"
        scan = scan.source.path
    return scan_name(scan)


def _load(scan: Scan) -> CTVolume:
    if isinstance(scan, CTVolume):
        return scan
    from ..io import read_scan

    return read_scan(scan)


@dataclass(frozen=True)
class _Job:
    index: int
    scan: Scan
    out_dir: str
    offset: int
    count: int
    patch_size: tuple[int, int, int]
    min_lung_fraction: float
    seed: int
    focus_fraction: float = 0.0
    skip_empty: bool = False


def _resolve(scan: Scan, index: int):
    """``(volume, bool lung, focus or None, name)`` of a scan or a :class:`PatchSource`."""
    from ..lung import binary_lung, compute_lung_mask

    name = scan_id(scan, index)
    try:
        if isinstance(scan, PatchSource):
            vol, lung, focus = scan.make()
        else:
            vol, lung, focus = _load(scan), None, None
        lung = binary_lung(compute_lung_mask(vol.hu, vol.spacing) if lung is None else lung)
        if not lung.any():
            raise NoLungFoundError("the lung mask is empty")
    except NoLungFoundError as err:
        raise NoLungFoundError(f"{name}: {err}") from None
    return vol, lung, focus, name


def _run_job(job: _Job) -> tuple[int, Optional[list[list[int]]], dict]:
    """Cut one scan's patches and write them into the shared memmaps.

    Returns ``(index, centres, info)``; ``centres`` is None when the scan has
    no lung and ``job.skip_empty`` is set.
    """
    try:
        vol, lung, focus, name = _resolve(job.scan, job.index)
    except NoLungFoundError as err:
        if not job.skip_empty:
            raise
        return job.index, None, {"id": scan_id(job.scan, job.index), "skipped": str(err)}
    rng = np.random.default_rng([job.seed, job.index])
    in_focus = np.zeros(0, np.int64)
    if focus is not None and job.focus_fraction > 0:
        in_focus = np.flatnonzero((np.asarray(focus) != 0) & lung)
    n_focus = int(round(job.count * job.focus_fraction)) if in_focus.size else 0
    centres = sample_centres(lung, job.count - n_focus, job.patch_size,
                             min_lung_fraction=job.min_lung_fraction, seed=rng)
    if n_focus:
        centres = np.concatenate([_draw_centres(lung, in_focus, n_focus, job.patch_size,
                                                job.min_lung_fraction, rng, 50), centres])
    out = Path(job.out_dir)
    ct_mm = np.load(out / "ct.npy", mmap_mode="r+")
    mask_mm = np.load(out / "mask.npy", mmap_mode="r+")
    ct, mask = extract_patches(vol.hu, lung, centres, job.patch_size, dtype=ct_mm.dtype)
    ct_mm[job.offset:job.offset + job.count] = ct
    mask_mm[job.offset:job.offset + job.count] = mask
    ct_mm.flush()
    mask_mm.flush()
    del ct_mm, mask_mm
    info = {"id": name, "shape": list(vol.shape), "spacing_mm": list(vol.spacing),
            "lung_ml": float(lung.sum() * vol.voxel_volume_ml)}
    if focus is not None:
        f = np.asarray(focus) != 0
        info["focus_centres"] = n_focus
        info["patches_with_focus"] = int(sum(_lung_fraction(f, c, job.patch_size) > 0 for c in centres))
    return job.index, centres.tolist(), info


def _compact(out: Path, keep: np.ndarray, size: tuple[int, int, int]) -> None:
    """Keep only the rows ``keep`` of ``ct.npy`` and ``mask.npy`` (left-out scans)."""
    for name in ("ct.npy", "mask.npy"):
        src = np.load(out / name, mmap_mode="r")
        tmp = out / f".{name}.part"
        dst = np.lib.format.open_memmap(tmp, mode="w+", dtype=src.dtype, shape=(len(keep),) + size)
        for start in range(0, len(keep), 256):
            dst[start:start + 256] = src[keep[start:start + 256]]
        dst.flush()
        del src, dst
        os.replace(tmp, out / name)


def precompute(
    scans: Sequence[Scan],
    out_dir,
    *,
    patches_per_scan: Union[int, Sequence[int]] = 150,
    patch_size: Sequence[int] = DEFAULT_PATCH_SIZE,
    workers: Optional[int] = None,
    seed: int = 0,
    min_lung_fraction: float = 0.25,
    dtype: str = "float16",
    overwrite: bool = False,
    focus_fraction: float = 0.0,
    skip_empty: bool = False,
    progress: Optional[ProgressCallback] = None,
) -> Path:
    """Cut lung patches from scans and save them as ``.npy`` memory maps.

    Parameters
    ----------
    scans : sequence of paths, CTVolume or PatchSource
        Scan files or folders (read with :func:`diffseglung_core.io.read_scan`),
        volumes in memory, or :class:`PatchSource` (made in the worker, with
        their own lung mask if they bring one). Other lung masks are computed
        with :func:`~diffseglung_core.lung.compute_lung_mask`.
    out_dir : path
        Folder to write ``ct.npy``, ``mask.npy``, ``patient_ids.npy`` and
        ``patches.json`` to (created if needed).
    patches_per_scan : int or sequence of int
        Patches cut from each scan, or one count per scan.
    patch_size : 3 ints
        ``(D, H, W)`` voxels.
    workers : int, optional
        Processes (default: the CPUs available, at most the number of scans);
        1 works in this process.
    seed : int
        Same seed and scans, same patches, whatever ``workers``.
    min_lung_fraction : float
        See :func:`sample_centres`.
    dtype : "float16" or "float32"
        Storage type of the CT patches.
    overwrite : bool
        Replace existing patch files in ``out_dir``.
    focus_fraction : float
        Share of the centres of a :class:`PatchSource` with a focus mask drawn
        among its focus voxels (inside the lung); the rest are drawn in the
        whole lung. Scans without a focus are sampled uniformly in the lung.
    skip_empty : bool
        Leave out scans in which no lung is found (listed under ``skipped`` in
        ``patches.json``) instead of raising :class:`NoLungFoundError`.
    progress : callable, optional
        ``progress(done, total, stage)`` per scan done.

    Returns
    -------
    Path of ``out_dir``.
    """
    scans = list(scans)
    if not scans:
        raise DiffSegLungError("precompute: no scans given")
    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype must be float16 or float32, got {dtype!r}")
    size = tuple(int(s) for s in patch_size)
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"patch_size must be 3 positive ints, got {patch_size}")
    counts = ([int(patches_per_scan)] * len(scans) if np.ndim(patches_per_scan) == 0
              else [int(c) for c in patches_per_scan])
    if len(counts) != len(scans):
        raise ValueError(f"{len(counts)} patch counts for {len(scans)} scans")
    if min(counts) < 1:
        raise ValueError("patches_per_scan must be at least 1")
    if not 0.0 <= focus_fraction <= 1.0:
        raise ValueError(f"focus_fraction must lie in [0, 1], got {focus_fraction}")
    out = Path(out_dir)
    names = ("ct.npy", "mask.npy", "patient_ids.npy", SETTINGS_FILE)
    if not overwrite:
        for name in names:
            if (out / name).exists():
                raise OutputExistsError(out / name)
    out.mkdir(parents=True, exist_ok=True)

    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(int)
    n = int(offsets[-1])
    shape = (n,) + size
    np.lib.format.open_memmap(out / "ct.npy", mode="w+", dtype=np.dtype(dtype), shape=shape).flush()
    np.lib.format.open_memmap(out / "mask.npy", mode="w+", dtype=np.uint8, shape=shape).flush()
    jobs = [_Job(i, s, str(out), int(offsets[i]), counts[i], size, float(min_lung_fraction), int(seed),
                 float(focus_fraction), bool(skip_empty)) for i, s in enumerate(scans)]
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = max(1, min(int(workers or 1), len(jobs)))

    results: dict[int, tuple[Optional[list], dict]] = {}
    report(progress, 0, len(jobs), "cutting patches")
    try:
        if workers == 1:
            for job in jobs:
                i, centres, info = _run_job(job)
                results[i] = (centres, info)
                report(progress, len(results), len(jobs), f"cutting patches ({info['id']})")
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(_run_job, job) for job in jobs]
                try:
                    for fut in as_completed(futures):
                        i, centres, info = fut.result()
                        results[i] = (centres, info)
                        report(progress, len(results), len(jobs), f"cutting patches ({info['id']})")
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
        kept = [i for i in range(len(jobs)) if results[i][0] is not None]
        if not kept:
            raise NoLungFoundError("precompute: no lung in any of the scans")
        if len(kept) < len(jobs):
            _compact(out, np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in kept]), size)
    except BaseException:
        for name in names:
            (out / name).unlink(missing_ok=True)
        raise

    n = sum(counts[i] for i in kept)
    ids = [results[i][1]["id"] for i in kept]
    width = max(len(s) for s in ids)
    pid = np.lib.format.open_memmap(out / "patient_ids.npy", mode="w+", dtype=f"<U{width}", shape=(n,))
    start = 0
    for i, name in zip(kept, ids):
        pid[start:start + counts[i]] = name
        start += counts[i]
    pid.flush()
    del pid
    settings = {
        "format": "diffseglung-patches",
        "version": 1,
        "patch_size": list(size),
        "patches_per_scan": counts[0] if len(set(counts)) == 1 else counts,
        "n_patches": int(n),
        "min_lung_fraction": float(min_lung_fraction),
        "focus_fraction": float(focus_fraction),
        "seed": int(seed),
        "ct_dtype": dtype,
        "ct_normalisation": "(HU + 1000) / 700 - 1",
        "pad_hu": PAD_HU,
        "scans": [dict(results[i][1], source=_source_name(scans[i]), count=counts[i],
                       centres=results[i][0]) for i in kept],
        "skipped": [dict(results[i][1], source=_source_name(scans[i])) for i in range(len(jobs))
                    if i not in kept],
    }
    (out / SETTINGS_FILE).write_text(json.dumps(settings, indent=1))
    return out


def _source_name(scan: Scan) -> str:
    if isinstance(scan, PatchSource):
        return scan.name
    if isinstance(scan, CTVolume):
        return str(scan.source.path)
    return str(scan)


# ---------------------------------------------------------------------------
# datasets


class PatchDataset(_TorchDataset):
    """Patches of a :func:`precompute` folder, read lazily from memory maps.

    ``dataset[i]`` is ``(x, patient_id)``: ``x`` a float32 tensor
    ``(2, D, H, W)`` (channel 0 normalised CT, channel 1 lung mask 0/1) and
    ``patient_id`` a str.
    """

    def __init__(self, folder) -> None:
        folder = Path(folder)
        for name in ("ct.npy", "mask.npy", "patient_ids.npy"):
            if not (folder / name).is_file():
                raise DiffSegLungError(f"{folder}: not a patch folder (no {name}; make one with "
                                       "`diffseglung precompute`)")
        self.folder = folder
        self.ct = np.load(folder / "ct.npy", mmap_mode="r")
        self.mask = np.load(folder / "mask.npy", mmap_mode="r")
        self.patient_ids = np.load(folder / "patient_ids.npy", mmap_mode="r")
        if self.ct.shape != self.mask.shape or len(self.patient_ids) != len(self.ct):
            raise DiffSegLungError(f"{folder}: ct.npy {self.ct.shape}, mask.npy {self.mask.shape} and "
                                   f"patient_ids.npy ({len(self.patient_ids)}) do not match")
        settings = folder / SETTINGS_FILE
        self.settings = json.loads(settings.read_text()) if settings.is_file() else {}

    def __len__(self) -> int:
        return int(self.ct.shape[0])

    @property
    def patch_size(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.ct.shape[1:])  # type: ignore[return-value]

    def __getitem__(self, index: int):
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        x = np.empty((2,) + self.patch_size, np.float32)
        x[0] = self.ct[index]
        x[1] = self.mask[index]
        return torch.from_numpy(x), str(self.patient_ids[index])


class VolumePatchDataset(_TorchDataset):
    """Patches cut on the fly from volumes in memory.

    Parameters
    ----------
    volumes : sequence of (hu, lung) or (hu, lung, patient_id)
        ``(Z, Y, X)`` HU arrays (or CTVolume) and their lung masks.
    patches_per_volume : int
        Length of the dataset per volume.
    patch_size : (D, H, W) voxels.
    seed : int
        Item ``i`` is the same patch every time for one seed.
    min_lung_fraction : float
        See :func:`sample_centres`.

    ``dataset[i]`` is ``(x, patient_id)`` as in :class:`PatchDataset`.
    """

    def __init__(self, volumes, patches_per_volume: int = 16,
                 patch_size: Sequence[int] = DEFAULT_PATCH_SIZE, *, seed: int = 0,
                 min_lung_fraction: float = 0.25) -> None:
        self.volumes = []
        for k, item in enumerate(volumes):
            hu, lung, *rest = item
            name = str(rest[0]) if rest else scan_id(hu, k) if isinstance(hu, CTVolume) else f"scan{k:04d}"
            hu = hu.hu if isinstance(hu, CTVolume) else np.asarray(hu, np.float32)
            lung = np.asarray(lung) != 0
            if hu.shape != lung.shape:
                raise DiffSegLungError(f"{name}: lung mask {lung.shape} does not match the CT {hu.shape}")
            if not lung.any():
                raise NoLungFoundError(f"{name}: the lung mask is empty")
            self.volumes.append((hu, lung, np.flatnonzero(lung), name))
        self.patches_per_volume = int(patches_per_volume)
        self.patch_size = tuple(int(s) for s in patch_size)
        self.seed = int(seed)
        self.min_lung_fraction = float(min_lung_fraction)

    def __len__(self) -> int:
        return len(self.volumes) * self.patches_per_volume

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(index)
        v, k = divmod(index, self.patches_per_volume)
        hu, lung, flat, name = self.volumes[v]
        rng = np.random.default_rng([self.seed, v, k])
        centre = _draw_centres(lung, flat, 1, self.patch_size, self.min_lung_fraction, rng, 50)
        ct, mask = extract_patches(hu, lung, centre, self.patch_size)
        x = np.concatenate([ct, mask.astype(np.float32)], axis=0)
        return torch.from_numpy(x), name
