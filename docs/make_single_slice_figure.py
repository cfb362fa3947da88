"""A picture of A0001's slices run alone against the whole scan's lung mask.

``docs/images/single_slices_a0001.png``: four slices of Lung-PET-CT-Dx A0001, each
run alone through the default engine (``segment_volume`` of a one-slice
volume, as ``diffseglung segment`` runs one DICOM image), in a soft-tissue window
(-400 to 300 HU): the whole scan's lung mask outlined in green, the slice's own
in cyan, and what the slice's own run labels consolidation filled in red. The
slices are those of ``benchmarks/bench_single_slices.py`` with the most
consolidation outside the whole scan's lung and the least of the tumour inside.
Usage::

    python docs/make_single_slice_figure.py [DATA_FOLDER]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from diffseglung_core import render
from diffseglung_core.io import read_scan
from diffseglung_core.labels import Tissue
from diffseglung_core.segment.engine import segment_volume
from diffseglung_core.volume import CTVolume

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "images" / "single_slices_a0001.png"
SLICES = (15, 39, 44, 46)
GREEN, CYAN, RED = (0, 220, 0), (0, 230, 255), (255, 40, 40)


def one_slice(scan: CTVolume, z: int) -> CTVolume:
    """Slice ``z`` of ``scan`` as a volume of its own, with its own place in the affine."""
    affine = scan.affine.copy()
    affine[:3, 3] = scan.affine[:3, :3] @ np.array([z, 0.0, 0.0]) + scan.affine[:3, 3]
    return CTVolume(hu=np.ascontiguousarray(scan.hu[z:z + 1], np.float32), spacing=scan.spacing,
                    affine=affine)


def picture(hu: np.ndarray, whole: np.ndarray, own: np.ndarray, cons: np.ndarray) -> np.ndarray:
    rgb = (255 * render.window(hu, -400.0, 300.0)).astype(np.uint8)
    rgb = np.repeat(rgb[..., None], 3, axis=2)
    rgb[cons] = (0.5 * rgb[cons] + 0.5 * np.array(RED)).astype(np.uint8)
    for mask, colour in ((whole, GREEN), (own, CYAN)):
        rgb[mask & ~ndi.binary_erosion(mask, iterations=2)] = colour
    ys, xs = np.nonzero(whole | own)
    return rgb[max(ys.min() - 20, 0):ys.max() + 20, max(xs.min() - 20, 0):xs.max() + 20]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    data = Path(argv[0]) if argv else ROOT.parent / "shared" / "data"
    scan = read_scan(data / "lung-pet-ct-dx-A0001" / "dicom")
    whole = np.asarray(segment_volume(scan, device="cpu").lung) > 0
    pictures = []
    for z in SLICES:
        r = segment_volume(one_slice(scan, z), device="cpu")
        own = np.asarray(r.lung)[0] > 0
        cons = np.asarray(r.labels)[0] == Tissue.CONSOLIDATION
        print(f"slice {z}: lung Dice {2 * (own & whole[z]).sum() / (own.sum() + whole[z].sum()):.3f}")
        pictures.append(picture(scan.hu[z], whole[z], own, cons))
    render.save_png(OUT, render.montage(pictures, columns=2))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
