"""A picture of small emphysema in 5 mm slices: inserted lesions found, and A0001's own lucencies.

``docs/images/small_emphysema_a0001.png``: top row, the test bed's ``a0001-mixed``
case (:mod:`diffseglung_core.evaluate.testbed`): the three slices holding most of
its inserted centrilobular and paraseptal emphysema, cropped around it, with the
truth's outline (yellow) and the default engine's emphysema (blue), its own lung
mask. Bottom row, the native A0001 scan: the three slices holding most of what the
engine calls emphysema there (no reader has said what it is), cropped around its
largest region in each. Lung window (-1000 to -600 HU, to show low attenuation).
Prints the recall of the inserted emphysema and the native share. Usage::

    python docs/make_small_emphysema_figure.py [DATA_FOLDER]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from diffseglung_core import render
from diffseglung_core.evaluate import testbed
from diffseglung_core.labels import Tissue
from diffseglung_core.segment.engine import segment_volume

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images" / "small_emphysema_a0001.png"
HALF = 48  # half width of each crop (voxels, about 40 mm)
SIZE = 320  # pixels of each picture
BLUE, YELLOW = (40, 120, 255), (255, 230, 0)


def picture(hu: np.ndarray, found: np.ndarray, truth: np.ndarray, centre) -> np.ndarray:
    """One crop: CT in a low-attenuation window, ``found`` filled, ``truth`` outlined."""
    y, x = (int(np.clip(c, HALF, n - HALF)) for c, n in zip(centre, hu.shape))
    box = (slice(y - HALF, y + HALF), slice(x - HALF, x + HALF))
    grey = (255 * np.clip((hu[box] + 1000.0) / 400.0, 0, 1)).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    rgb[found[box]] = (0.5 * rgb[found[box]] + 0.5 * np.array(BLUE)).astype(np.uint8)
    edge = truth[box] & ~ndi.binary_erosion(truth[box])
    rgb[edge] = YELLOW
    return np.asarray(Image.fromarray(rgb).resize((SIZE, SIZE), Image.NEAREST))


def row(hu: np.ndarray, found: np.ndarray, truth: np.ndarray, where: np.ndarray) -> np.ndarray:
    """The three slices holding most of ``where``, each cropped around its largest part there."""
    pictures = []
    for z in sorted(np.argsort(-where.sum(axis=(1, 2)))[:3]):
        lab, n = ndi.label(where[z])
        biggest = 1 + int(np.argmax(ndi.sum(where[z], lab, range(1, n + 1))))
        pictures.append(picture(hu[z], found[z], truth[z], ndi.center_of_mass(lab == biggest)))
        pictures.append(np.zeros((SIZE, 4, 3), np.uint8))
    return np.concatenate(pictures[:-1], axis=1)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    data = Path(argv[0]) if argv else None
    case = testbed.standard_cases(data, names=["a0001-mixed"])["a0001-mixed"]
    labels = np.asarray(segment_volume(case.volume, device="cpu").labels)
    truth = case.truth == Tissue.EMPHYSEMA
    found = labels == Tissue.EMPHYSEMA
    print(f"a0001-mixed: {100 * (found & truth).sum() / truth.sum():.0f} % of the inserted "
          "emphysema labelled emphysema")
    top = row(case.volume.hu, found, truth, truth)
    native, lung = testbed.load_a0001(data)
    own = np.asarray(segment_volume(native, device="cpu").labels) == Tissue.EMPHYSEMA
    print(f"native A0001: emphysema {100 * own.sum() / lung.sum():.2f} % of the lung")
    bottom = row(native.hu, own, np.zeros_like(own), own)
    gap = np.zeros((4, top.shape[1], 3), np.uint8)
    render.save_png(OUT, np.concatenate([top, gap, bottom], axis=0))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
