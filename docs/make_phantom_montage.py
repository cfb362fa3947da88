"""Make docs/images/phantom_montage.png: phantom slices beside a real chest CT slice.

Top row: a real axial slice of the A0001 series (lung window, -1350..150 HU)
and axial and coronal slices of a synthetic phantom. Bottom row: the same
phantom slices with the ground-truth labels overlaid (green healthy, yellow
GGO, magenta fibrosis, blue emphysema, red consolidation).

Usage: python docs/make_phantom_montage.py [--data ../shared/data] [--out docs/images/phantom_montage.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from diffseglung_core.phantom import make_phantom
from diffseglung_core.render import WINDOWS, montage, overlay, save_png

ROOT = Path(__file__).resolve().parents[1]
TILE = 320


def real_slice(folder: Path, index: int = 40) -> np.ndarray | None:
    """One axial slice of the A0001 series in HU (read with pydicom directly)."""
    import pydicom

    files = sorted(folder.glob("*.dcm"))
    if not files:
        return None
    slices = sorted((pydicom.dcmread(f) for f in files), key=lambda d: float(d.ImagePositionPatient[2]))
    ds = slices[min(index, len(slices) - 1)]
    return ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def tile(rgb: np.ndarray, title: str, aspect: float = 1.0) -> np.ndarray:
    """Resize an RGB slice to the tile size (``aspect`` = row mm / column mm) and caption it."""
    h = int(round(TILE * min(1.0, rgb.shape[0] * aspect / rgb.shape[1])))
    im = Image.fromarray(rgb).resize((TILE, h), Image.BILINEAR)
    canvas = Image.new("RGB", (TILE, TILE), (0, 0, 0))
    canvas.paste(im, (0, (TILE - h) // 2))
    ImageDraw.Draw(canvas).text((6, 4), title, fill=(255, 255, 120))
    return np.asarray(canvas)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "phantom_montage.png")
    parser.add_argument("--shape", type=int, nargs=3, default=(96, 256, 256))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    ph = make_phantom(tuple(args.shape), seed=args.seed)
    hu, lab = ph.volume.hu, ph.labels
    sz, sy, _ = ph.volume.spacing
    zs = [int(f * hu.shape[0]) for f in (0.3, 0.55, 0.78)]
    yc = int(0.55 * hu.shape[1])
    top, bottom = [], []
    real = real_slice(args.data / "lung-pet-ct-dx-A0001" / "dicom")
    if real is not None:
        top.append(tile(overlay(real), "real CT (A0001), lung window"))
        bottom.append(tile(overlay(real, hu_window=WINDOWS["mediastinum"]), "real CT, soft-tissue window"))
    for z in zs:
        top.append(tile(overlay(hu[z]), f"phantom z={z}"))
        bottom.append(tile(overlay(hu[z], lab[z]), f"ground truth z={z}"))
    # coronal: flip z so that superior is up
    top.append(tile(overlay(hu[::-1, yc]), f"phantom coronal y={yc}", aspect=sz / sy))
    bottom.append(tile(overlay(hu[::-1, yc], lab[::-1, yc]), "labels coronal", aspect=sz / sy))
    top.append(tile(overlay(hu[zs[1]], hu_window=WINDOWS["mediastinum"]), "phantom, soft-tissue window"))
    ys, xs = hu.shape[1] // 4, hu.shape[2] // 8
    crop = hu[zs[1], ys:ys + hu.shape[1] // 2, xs:xs + hu.shape[2] // 2]
    bottom.append(tile(overlay(crop), "phantom, zoomed"))
    save_png(args.out, montage(top + bottom, columns=len(top)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
