"""A picture of the engine's emphysema on real HRCT slices, for the README.

``docs/images/emphysema_cted.png``: two slices of cted-open (the open subset of the
CT Emphysema Database, 1.25 mm HRCT; centrilobular emphysema of severity 4 and
paraseptal emphysema of severity 2 by the database's readers), each cropped to
its lungs and shown at the same width: the CT (lung
window) and the default engine's labels (blue emphysema, yellow GGO, magenta
fibrosis, red consolidation), its own lung mask. An emphysema region is its
holes and the lung between them (in slices this thin, between holes up to 8 mm
apart), and a lucency that reads as air is emphysema by itself
(:mod:`diffseglung_core.segment.evidence`). Prints each slice's emphysema share
and the expert's severity. Usage::

    python docs/make_emphysema_figure.py [DATA_FOLDER]
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from diffseglung_core import render
from diffseglung_core.io import read_scan
from diffseglung_core.labels import Tissue
from diffseglung_core.segment.engine import segment_volume

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "docs" / "images" / "emphysema_cted.png"
WIDTH = 480  # pixels of each picture
SPACING = (1.25, 0.78, 0.78)  # cted-open's HRCT slices (TIFF stores no spacing)
SLICES = ("subject11_middle.tiff", "subject12_top.tiff")  # centrilobular (severity 4), paraseptal (2)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    folder = (Path(argv[0]) if argv else DEFAULT_DATA) / "cted-open"
    severity = {Path(r["file"]).name: r["severity"] for r in csv.DictReader(open(folder / "slices.csv"))}
    rows = []
    for name in SLICES:
        volume = read_scan(folder / "slices" / name, spacing=SPACING)
        labels = np.asarray(segment_volume(volume, device="cpu").labels)[0]
        ys, xs = np.nonzero(labels)
        box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        hu, lab = volume.hu[0][box], labels[box]
        pair = []
        for rgb in (render.overlay(hu), render.overlay(hu, np.where(lab >= Tissue.GGO, lab, 0), alpha=0.45)):
            height = round(rgb.shape[0] * WIDTH / rgb.shape[1])  # pictures of equal width
            pair.append(np.asarray(Image.fromarray(rgb).resize((WIDTH, height), Image.NEAREST)))
        rows.append(np.concatenate([pair[0], np.zeros((height, 4, 3), np.uint8), pair[1]], axis=1))
        share = 100.0 * np.count_nonzero(labels == Tissue.EMPHYSEMA) / np.count_nonzero(labels)
        print(f"{name}: emphysema {share:.1f} % of the lung, expert severity {severity[name]} (0-5)")
    gap = np.zeros((4, rows[0].shape[1], 3), np.uint8)
    render.save_png(OUT, np.concatenate([rows[0], gap, *rows[1:]], axis=0))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
