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
* ``docs/images/lungmask_aorta.png``: the consolidation inserted beside the
  descending aorta in the test bed case a0001-mixed (yellow outline), four slices
  through it, in the mediastinal window: top row the mask without the rays to the
  aorta, bottom row with them; the traced aorta in magenta.
* ``docs/images/lungmask_aorta_rim.png``: the same, top row with 15 mm of dense
  tissue to the aorta (the vertebral body's), bottom row with the 8 mm it needs.
* ``docs/images/lungmask_recess.png``: the phantom chest (seed 0), four slices through
  the consolidation of its right posterior recess (yellow outline), in the mediastinal
  window: top row the mask without the recess step, bottom row with it.
* ``docs/images/lungmask_cut.png``: A0001 cropped 30 mm into the right lung, as a
  field of view smaller than the patient cuts it (four slices evenly through the
  lungs): the mask of the crop must reach the image's edge.

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


def cut_figure(scan: Path, out: Path) -> None:
    vol = read_scan(scan)
    whole = compute_lung_mask(vol.hu, vol.spacing)
    x0 = np.flatnonzero(whole.any(axis=(0, 1)))[0] + int(round(30.0 / vol.spacing[2]))
    hu = vol.hu[:, :, x0:]
    labels = compute_lung_mask(hu, vol.spacing)
    zs = np.flatnonzero(labels.any(axis=(1, 2)))
    picks = np.linspace(zs[0] + 2, zs[-1] - 1, 4).round().astype(int)
    tiles = [contour_tile(hu[z], labels[z])[::2, ::2] for z in picks]
    render.save_png(out, render.montage(tiles, columns=4))
    print(f"wrote {out} (cropped at x = {x0}, slices {picks.tolist()})")


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


def _outline(rgb: np.ndarray, mask: np.ndarray, colour, width: int = 2) -> None:
    rgb[mask & ~ndi.binary_erosion(mask, iterations=width)] = colour


def aorta_figures(data: Path, out: Path, rim_out: Path) -> None:
    """The test bed's consolidation beside the aorta: without and with the rays to the aorta
    (``out``), then with 15 mm and 8 mm of dense tissue to it (``rim_out``)."""
    from diffseglung_core.evaluate import testbed as tb
    from diffseglung_core.lung import segment_lungs

    vol, lung = tb.load_a0001(data)
    case = tb.build_case("a0001-mixed", vol, lung, context=tb.prepare_scan(vol, lung))
    hu, spacing = case.volume.hu, case.volume.spacing
    lesion = case.lesion_map == next(r.index for r in case.lesions if r.kind == "consolidation")
    seg = segment_lungs(hu, spacing)
    without = segment_lungs(hu, spacing, mediastinal_passes=0).labels
    column_gap = segment_lungs(hu, spacing, aorta_gap_mm=15.0).labels
    _montage(hu, lesion, seg.aorta, [without, seg.labels], out,
             ("without the rays to the aorta", "with them"))
    _montage(hu, lesion, seg.aorta, [column_gap, seg.labels], rim_out,
             ("with 15 mm to the aorta", "with 8 mm"))


def recess_figure(out: Path) -> None:
    """The phantom chest (seed 0): the consolidation of the right posterior recess, without
    and with the recess step."""
    from diffseglung_core.phantom import make_phantom

    ph = make_phantom((48, 160, 160), seed=0)
    hu, spacing = ph.volume.hu, ph.volume.spacing
    without = compute_lung_mask(hu, spacing, recess=False)
    with_step = compute_lung_mask(hu, spacing)
    taken = (with_step > 0) & (without == 0)
    consolidation = ph.labels == 5
    lesion = consolidation & ndi.binary_dilation(taken, iterations=3)
    _montage(hu, lesion, None, [without, with_step], out, ("without the recess step", "with it"))


def _montage(hu, lesion, aorta, masks, out: Path, names) -> None:
    """Four slices through ``lesion`` (yellow outline) with each mask of ``masks`` (a row each)
    and, when given, the traced aorta (magenta)."""
    zs = np.flatnonzero(lesion.any(axis=(1, 2)))
    picks = np.linspace(zs[0] + 1, zs[-1] - 1, 4).round().astype(int)
    ys, xs = np.nonzero(lesion.any(axis=0))
    cy, cx, r = int(ys.mean()), int(xs.mean()), 80
    box = (slice(max(cy - r, 0), cy + r), slice(max(cx - r, 0), cx + r))
    yy, xx = np.mgrid[box]
    tiles = []
    for labels in masks:
        for z in picks:
            rgb = render.overlay(hu[z][box], None, hu_window=render.WINDOWS["mediastinum"])
            for value, colour in COLOURS.items():
                _outline(rgb, labels[z][box] == value, colour)
            _outline(rgb, lesion[z][box], (255, 230, 0), width=1)
            if aorta is not None and not np.isnan(aorta[z, 0]):
                ring = np.abs(np.hypot(yy - aorta[z, 0], xx - aorta[z, 1]) - aorta[z, 2]) < 0.8
                rgb[ring] = (230, 0, 230)
            tiles.append(np.kron(rgb, np.ones((2, 2, 1), rgb.dtype)))
    inside = [np.count_nonzero(lesion & (m > 0)) / np.count_nonzero(lesion) for m in masks]
    render.save_png(out, render.montage(tiles, columns=4))
    print(f"wrote {out} (slices {picks.tolist()}; lesion inside {inside[0]:.3f} {names[0]}, "
          f"{inside[1]:.3f} {names[1]})")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    data = Path(argv[0]) if argv else DEFAULT_DATA
    a0001_figure(data / "lung-pet-ct-dx-A0001" / "dicom", IMAGES / "lungmask_a0001.png")
    cut_figure(data / "lung-pet-ct-dx-A0001" / "dicom", IMAGES / "lungmask_cut.png")
    covid_figure(data / "covid-ny-sbu-open", IMAGES / "lungmask_covid.png")
    cted_figure(data / "cted-open", IMAGES / "lungmask_cted.png")
    aorta_figures(data, IMAGES / "lungmask_aorta.png", IMAGES / "lungmask_aorta_rim.png")
    recess_figure(IMAGES / "lungmask_recess.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
