"""Real CT patches from ``../shared/data`` for the radiomics tests (HU arrays and masks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def cted_patches(cted_open: Path, n: int = 45) -> list[tuple[np.ndarray, np.ndarray]]:
    """The CT Emphysema Database 61x61 patches as one-slice (1, 61, 61) HU patches, whole-patch masks."""
    import tifffile

    files = sorted((cted_open / "patches").glob("*.tif*"), key=lambda p: int(p.stem[5:]))[:n]
    out = []
    for f in files:
        hu = tifffile.imread(f).astype(np.float32)[None]
        out.append((hu, np.ones(hu.shape, bool)))
    return out


def _lung_boxes(hu: np.ndarray, lung: np.ndarray, size, n: int, seed: int,
                min_fraction: float = 0.3) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    size = np.asarray(size)
    candidates = np.argwhere(lung[tuple(slice(s // 2, d - s + s // 2) for s, d in zip(size, hu.shape))])
    candidates += size // 2
    out = []
    for _ in range(50 * n):
        if len(out) == n:
            break
        c = candidates[rng.integers(len(candidates))]
        box = tuple(slice(a - s // 2, a - s // 2 + s) for a, s in zip(c, size))
        m = lung[box]
        if m.mean() >= min_fraction:
            out.append((hu[box].astype(np.float32), m.copy()))
    return out


def a0001_patches(a0001_dicom: Path, n: int = 12, size=(3, 24, 24),
                  seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Boxes of the A0001 series centred in the lung; mask = voxels below -400 HU (lung parenchyma)."""
    from diffseglung_core.io import read_scan

    hu = read_scan(a0001_dicom).hu
    lung = hu < -400
    lung[:, :40] = False  # keep clear of the air outside the body at the image edge
    lung[:, -40:] = False
    lung[:, :, :40] = False
    lung[:, :, -40:] = False
    return _lung_boxes(hu, lung, size, n, seed)


def cip_patches(cip_chest: Path, n: int = 8, size=(6, 12, 12),
                seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Boxes of cip-chest ``ct-64.nrrd`` with the ``wholeLung-64.nrrd`` mask."""
    from diffseglung_core.io import read_mask, read_scan

    ct = read_scan(cip_chest / "ct-64.nrrd")
    lung = read_mask(cip_chest / "wholeLung-64.nrrd", ct) > 0
    return _lung_boxes(ct.hu, lung, size, n, seed)
