"""A picture of what the engine calls pathology on the native A0001 scan, for docs/testbed.md.

``docs/images/a0001_burden.png``: the three slices of the Lung-PET-CT-Dx A0001
series with the most thin dense voxels (the false-positive burden's vessel-like
voxels, :func:`diffseglung_core.evaluate.testbed_burden.dense_structures`)
labelled pathology by the default engine, cropped around them. Per slice: the
CT (lung window); the engine's labels (yellow GGO, magenta fibrosis, blue
emphysema, red consolidation); the thin dense voxels labelled pathology (yellow)
over the burden's solid components (blue).

Prints where those voxels lie (within 10 mm of a solid component or not, per
class) and the largest region labelled GGO (volume, median HU), the figures
docs/testbed.md quotes. Usage::

    python docs/make_burden_figure.py [DATA_FOLDER]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from diffseglung_core import render
from diffseglung_core.evaluate.testbed import load_a0001
from diffseglung_core.evaluate.testbed_burden import dense_structures, dilate_mm
from diffseglung_core.labels import Tissue
from diffseglung_core.segment.engine import segment_volume

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "docs" / "images" / "a0001_burden.png"
CLASSES = {"GGO": Tissue.GGO, "fibrosis": Tissue.FIBROSIS, "emphysema": Tissue.EMPHYSEMA,
           "consolidation": Tissue.CONSOLIDATION}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    volume, lung = load_a0001(Path(argv[0]) if argv else DEFAULT_DATA)
    hu, spacing = volume.hu, volume.spacing
    labels = np.asarray(segment_volume(volume, device="cpu").labels)
    st = dense_structures(hu, lung > 0, spacing)
    near = dilate_mm(st.solid, spacing, 10.0)
    flagged = st.thin & (labels >= Tissue.GGO)
    print(f"thin dense voxels {int(st.thin.sum())}, labelled pathology {int(flagged.sum())} "
          f"({100.0 * flagged.sum() / st.thin.sum():.1f} %)")
    for name, value in CLASSES.items():
        m = st.thin & (labels == value)
        print(f"  {name}: {int(m.sum())} voxels, {int((m & near).sum())} within 10 mm of a solid component")
    ggo, n = ndi.label(labels == Tissue.GGO)
    if n:
        sizes = np.bincount(ggo.ravel())[1:]
        big = ggo == int(np.argmax(sizes)) + 1
        zs = np.flatnonzero(big.any(axis=(1, 2)))
        print(f"largest GGO region: {big.sum() * np.prod(spacing) / 1000.0:.1f} mL, slices "
              f"{zs[0]}-{zs[-1]}, median {np.median(hu[big]):.0f} HU "
              f"(healthy lung {np.median(hu[labels == Tissue.HEALTHY]):.0f} HU)")

    rows = []
    for z in sorted(np.argsort(flagged.sum(axis=(1, 2)))[::-1][:3]):
        ys, xs = np.nonzero(flagged[z])
        cy, cx, half = int(np.median(ys)), int(np.median(xs)), 70
        y0 = int(np.clip(cy - half, 0, hu.shape[1] - 2 * half))
        x0 = int(np.clip(cx - half, 0, hu.shape[2] - 2 * half))
        box = (z, slice(y0, y0 + 2 * half), slice(x0, x0 + 2 * half))
        lab = labels[box]
        plain = render.overlay(hu[box])
        marked = plain.copy()
        marked[st.solid[box]] = (0.5 * marked[st.solid[box]] + [0, 0, 127]).astype(np.uint8)
        marked[flagged[box]] = (255, 255, 0)
        rows += [plain, render.overlay(hu[box], np.where(lab >= Tissue.GGO, lab, 0), alpha=0.4), marked]
        print(f"slice {z}: {int(flagged[z].sum())} thin dense voxels labelled pathology")
    picture = render.montage(rows, columns=3)
    render.save_png(OUT, picture.repeat(2, axis=0).repeat(2, axis=1))  # 0.42 mm per pixel
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
