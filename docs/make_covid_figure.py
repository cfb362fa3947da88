"""A picture of what the engine labels on real COVID-19 slices, for docs/results.md.

``docs/images/covid_labels.png``: four slices of covid-ny-sbu-open whose lungs hold
consolidation and ground glass (``../shared/data/covid-ny-sbu-open``, one
DICOM slice each), each cropped to its body: the CT (lung window) and the
default engine's pathology labels with its own lung mask (yellow GGO, magenta fibrosis,
blue emphysema, red consolidation); the shares of each class are those of
``benchmarks/bench_covid_slices.py``. Usage::

    python docs/make_covid_figure.py [DATA_FOLDER]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from diffseglung_core import render
from diffseglung_core.io import read_scan
from diffseglung_core.labels import Tissue
from diffseglung_core.segment.engine import segment_volume

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "docs" / "images" / "covid_labels.png"
SLICES = ("A002304_19010112-135", "A056642_19001229-053", "A056642_19010107-111",
          "A098752_19010127-128")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    folder = (Path(argv[0]) if argv else DEFAULT_DATA) / "covid-ny-sbu-open"
    rows = []
    for name in SLICES:
        volume = read_scan(folder / f"{name}.dcm")
        hu = volume.hu[0]
        labels = np.asarray(segment_volume(volume, device="cpu").labels)[0]
        ys, xs = np.nonzero(hu > -500)
        box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        pathology = np.where(labels >= Tissue.GGO, labels, 0)
        rows += [render.overlay(hu[box]), render.overlay(hu[box], pathology[box], alpha=0.4)]
    render.save_png(OUT, render.montage(rows, columns=2))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
