"""Pictures of the weight-free lung mask on real CT, for docs/lungmask.md.

* ``docs/images/lungmask_a0001.png``: slices of the Lung-PET-CT-Dx A0001 series
  (four evenly through the lungs, four with the most dense lung) with the outline
  of the right lung (blue) and the left lung (orange). The tumour and the left
  upper-lobe opacity must lie inside, the heart and the liver outside.
* ``docs/images/lungmask_covid.png``: the COVID-19 slices of covid-ny-sbu-open
  with the same outlines; the slices below the lungs say "no lung".
* ``docs/images/lungmask_cted.png``: the cted-open HRCT slices (single slices, the
  ribs in fragments) with the same outlines: the chest wall between the ribs, the
  aorta and air under a sheet behind the back must lie outside.

Lung window -1350..150 HU. Usage::

    python docs/make_lungmask_figure.py [DATA_FOLDER]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from diffseglung_core import render
from diffseglung_core.errors import NoLungFoundError
from diffseglung_core.io import read_scan
from diffseglung_core.lung import compute_lung_mask, lung_volumes_ml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
IMAGES = ROOT / "docs" / "images"
COLOURS = {1: (60, 140, 255), 2: (255, 150, 30)}


def contour_tile(hu_slice: np.ndarray, labels_slice: np.ndarray, width: int = 2) -> np.ndarray:
    """A lung-window slice with the outline of each lung drawn in its colour."""
    rgb = render.overlay(hu_slice, None, hu_window=render.WINDOWS["lung"])
    for value, colour in COLOURS.items():
        inside = labels_slice == value
        edge = inside & ~ndi.binary_erosion(inside, iterations=width)
        rgb[edge] = colour
    return rgb


def a0001_figure(scan: Path, out: Path) -> None:
    vol = read_scan(scan)
    hu = vol.hu
    t0 = time.perf_counter()
    labels = compute_lung_mask(hu, vol.spacing)
    seconds = time.perf_counter() - t0
    vols = lung_volumes_ml(labels, vol.spacing)
    print(f"{scan}: {hu.shape} voxels of {vol.spacing} mm, mask in {seconds:.1f} s, "
          f"right {vols['right']:.0f} mL, left {vols['left']:.0f} mL")
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


def covid_figure(folder: Path, out: Path) -> None:
    tiles = []
    for path in sorted(folder.glob("*.dcm")):
        hu = read_scan(path).hu
        try:
            labels = compute_lung_mask(hu, read_scan(path).spacing)[0]
        except NoLungFoundError as err:
            print(f"{path.name}: {err}")
            labels = np.zeros(hu.shape[1:], np.uint8)
        tile = contour_tile(hu[0], labels)
        tiles.append(tile[::2, ::2])
    render.save_png(out, render.montage(tiles, columns=5))
    print(f"wrote {out}")


def cted_figure(folder: Path, out: Path) -> None:
    tiles = []
    for path in sorted((folder / "slices").glob("*.tiff")):
        vol = read_scan(path, spacing=(1.25, 0.78, 0.78))
        tiles.append(contour_tile(vol.hu[0], compute_lung_mask(vol.hu, vol.spacing)[0], width=4)[::2, ::2])
    render.save_png(out, render.montage(tiles, columns=6))
    print(f"wrote {out}")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    data = Path(argv[0]) if argv else DEFAULT_DATA
    a0001_figure(data / "lung-pet-ct-dx-A0001" / "dicom", IMAGES / "lungmask_a0001.png")
    covid_figure(data / "covid-ny-sbu-open", IMAGES / "lungmask_covid.png")
    cted_figure(data / "cted-open", IMAGES / "lungmask_cted.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
