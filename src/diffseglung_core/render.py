"""Pictures of CT and label maps: windowing, colour overlays and montages.

Used by PNG exports (CLI, napari plugin, docs). Arrays in, RGB arrays out;
:func:`save_png` is the only function that touches the disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .labels import TISSUE_COLORS

#: Window presets as (low, high) HU.
WINDOWS: dict[str, tuple[float, float]] = {
    "lung": (-1350.0, 150.0),
    "mediastinum": (-160.0, 240.0),
    "bone": (-450.0, 1050.0),
}


def window(hu: np.ndarray, low: float = -1350.0, high: float = 150.0) -> np.ndarray:
    """Map HU to gray levels in [0, 1] (values outside the window are clipped)."""
    return np.clip((np.asarray(hu, dtype=np.float32) - low) / (high - low), 0.0, 1.0)


def overlay(hu_slice: np.ndarray, labels_slice: Optional[np.ndarray] = None, *,
            hu_window: tuple[float, float] = WINDOWS["lung"], alpha: float = 0.45) -> np.ndarray:
    """A windowed CT slice with labels blended in their class colours.

    Parameters
    ----------
    hu_slice : (Y, X) array of HU.
    labels_slice : (Y, X) integer array in the project's label convention, optional.
    hu_window : (low, high) HU of the gray scale.
    alpha : opacity of the label colours.

    Returns
    -------
    (Y, X, 3) uint8 RGB image.
    """
    gray = window(hu_slice, *hu_window)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    if labels_slice is not None:
        for value, color in TISSUE_COLORS.items():
            if color[3] == 0:
                continue
            sel = labels_slice == value
            rgb[sel] = (1 - alpha) * rgb[sel] + alpha * np.asarray(color[:3], np.float32)
    return (rgb * 255 + 0.5).astype(np.uint8)


def montage(images: Sequence[np.ndarray], columns: int = 4, pad: int = 4) -> np.ndarray:
    """Tile equally sized (Y, X, 3) uint8 images into one image, row by row."""
    if not images:
        raise ValueError("montage needs at least one image")
    h = max(im.shape[0] for im in images)
    w = max(im.shape[1] for im in images)
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    out = np.zeros((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), np.uint8)
    for i, im in enumerate(images):
        r, c = divmod(i, columns)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        out[y:y + im.shape[0], x:x + im.shape[1]] = im
    return out


def mid_slice_montage(volumes_hu: Sequence[np.ndarray], *, zoom: Optional[int] = None,
                      columns: int = 8) -> np.ndarray:
    """The middle axial slice of each volume, windowed for the lung, enlarged and tiled.

    Parameters
    ----------
    volumes_hu : sequence of (D, H, W) ndarray
        Patches or volumes in HU.
    zoom : int, optional
        Pixels per voxel (nearest neighbour); default ``max(1, 128 // H)``.
    columns : int
        Images per row.

    Returns
    -------
    (Y, X, 3) uint8 ndarray
    """
    tiles = []
    for volume in volumes_hu:
        gray = (window(np.asarray(volume)[len(volume) // 2]) * 255).astype(np.uint8)
        k = zoom if zoom is not None else max(1, 128 // gray.shape[0])
        gray = np.kron(gray, np.ones((k, k), np.uint8))
        tiles.append(np.repeat(gray[..., None], 3, axis=-1))
    return montage(tiles, columns=columns)


def axial_overview(hu: np.ndarray, labels: Optional[np.ndarray] = None, *, n_slices: int = 8,
                   lung: Optional[np.ndarray] = None, columns: int = 4) -> np.ndarray:
    """A montage of evenly spaced axial slices through the lung, labels overlaid.

    Parameters
    ----------
    hu : (Z, Y, X) HU volume.
    labels : (Z, Y, X) label map, optional.
    n_slices : number of slices shown.
    lung : (Z, Y, X) mask used to choose slices (defaults to ``labels > 0``).
    """
    ref = lung if lung is not None else labels
    if ref is not None and np.any(ref):
        zs = np.flatnonzero(np.any(ref, axis=(1, 2)))
        lo, hi = zs[0], zs[-1]
    else:
        lo, hi = 0, hu.shape[0] - 1
    picks = np.unique(np.linspace(lo, hi, num=min(n_slices, hi - lo + 1)).round().astype(int))
    tiles = [overlay(hu[z], None if labels is None else labels[z]) for z in picks]
    return montage(tiles, columns=columns)


def save_png(path, rgb: np.ndarray) -> Path:
    """Write an (Y, X, 3) uint8 image as PNG and return its path."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(rgb)).save(path)
    return path
