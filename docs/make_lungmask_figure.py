"""Make ``docs/images/lungmask_a0001.png``: the lung mask of the A0001 chest CT.

A few axial slices of the Lung-PET-CT-Dx A0001 series (lung window -1350..150
HU) with the contour of the right lung (blue) and the left lung (orange). The
tumour and the left upper-lobe opacity must lie inside the contours.

Usage::

    python docs/make_lungmask_figure.py [DICOM_FOLDER] [OUT_PNG]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from diffseglung_core import render
from diffseglung_core.lung import compute_lung_mask, lung_volumes_ml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SCAN = ROOT.parent / "shared" / "data" / "lung-pet-ct-dx-A0001" / "dicom"
DEFAULT_OUT = ROOT / "docs" / "images" / "lungmask_a0001.png"
COLOURS = {1: (60, 140, 255), 2: (255, 150, 30)}


def read_ct(path: Path):
    """HU (z, y, x) and spacing of a scan, with the project reader when it is there."""
    try:
        from diffseglung_core.io import read_scan
    except ImportError:
        read_scan = None
    if read_scan is not None:
        vol = read_scan(path)
        return vol.hu, vol.spacing
    import pydicom

    slices = [pydicom.dcmread(str(f)) for f in sorted(path.glob("*.dcm"))]
    slices.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    hu = np.stack([d.pixel_array * float(d.RescaleSlope) + float(d.RescaleIntercept)
                   for d in slices]).astype(np.float32)
    dz = abs(float(slices[1].ImagePositionPatient[2]) - float(slices[0].ImagePositionPatient[2]))
    dy, dx = (float(v) for v in slices[0].PixelSpacing)
    return hu, (dz, dy, dx)


def contour_tile(hu_slice: np.ndarray, labels_slice: np.ndarray, width: int = 2) -> np.ndarray:
    """A lung-window slice with the outline of each lung drawn in its colour."""
    rgb = render.overlay(hu_slice, None, hu_window=render.WINDOWS["lung"])
    for value, colour in COLOURS.items():
        inside = labels_slice == value
        edge = inside & ~ndi.binary_erosion(inside, iterations=width)
        rgb[edge] = colour
    return rgb


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    scan = Path(argv[0]) if argv else DEFAULT_SCAN
    out = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUT
    hu, spacing = read_ct(scan)
    t0 = time.perf_counter()
    labels = compute_lung_mask(hu, spacing)
    seconds = time.perf_counter() - t0
    vols = lung_volumes_ml(labels, spacing)
    print(f"{scan}: {hu.shape} voxels of {spacing} mm, mask in {seconds:.1f} s, "
          f"right {vols['right']:.0f} mL, left {vols['left']:.0f} mL")
    # four slices evenly through the lungs and the four with the most dense (> -300 HU) lung
    zs = np.flatnonzero(labels.any(axis=(1, 2)))
    even = np.linspace(zs[0] + 2, zs[-1] - 1, 4).round().astype(int)
    dense = ((hu > -300) & (labels > 0)).sum(axis=(1, 2))
    chosen: list[int] = []
    for z in np.argsort(dense)[::-1]:
        if len(chosen) == 4:
            break
        if all(abs(int(z) - c) >= 3 for c in chosen + even.tolist()):
            chosen.append(int(z))
    picks = np.unique(np.concatenate([even, chosen]))
    rows = np.flatnonzero(labels.any(axis=(0, 2)))
    cols = np.flatnonzero(labels.any(axis=(0, 1)))
    y0, y1 = max(rows[0] - 40, 0), min(rows[-1] + 40, hu.shape[1])
    x0, x1 = max(cols[0] - 40, 0), min(cols[-1] + 40, hu.shape[2])
    tiles = [contour_tile(hu[z, y0:y1, x0:x1], labels[z, y0:y1, x0:x1]) for z in picks]
    render.save_png(out, render.montage(tiles, columns=4))
    print(f"wrote {out} (slices {picks.tolist()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
