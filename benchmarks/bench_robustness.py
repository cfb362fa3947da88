"""The same real scan as other sites store it: do the engine's labels stay the same?

Usage::

    python benchmarks/bench_robustness.py [--data ../shared/data] [--src DIR]
                                          [--json benchmarks/results/robustness.json]

Lung-PET-CT-Dx A0001 (64 x 512 x 512, 5 mm) runs through ``segment_volume``
with its defaults and its own lung mask, as the scan and as variants of it that
real sites produce:

* ``flipped``: stored left-right flipped in a NIfTI file, its affine saying so
  (read back with ``read_scan``, which puts every file in one orientation);
* ``noise``: white noise of 40 HU added (a lower dose);
* ``crop``: cropped to the lungs and 15 mm around them (no outside air);
* ``cut_right``: cropped 30 mm into the right lung (a field of view smaller
  than the patient);
* ``lower``: the lowest 20 slices alone (lung bases and upper abdomen);
* ``thick``: pairs of slices averaged (10 mm slices);
* ``coarse4``, ``coarse6``: blocks of 4 x 4 and 6 x 6 pixels averaged in-plane
  (3.4 and 5.1 mm pixels: a low-resolution export or reconstruction), compared
  on the scan's voxels, each coarse voxel standing for its block.

For each: the Dice of the lung (labels > 0) against the scan's, on the same
voxels (the ``thick`` variant against the scan's lung in both slices of a pair),
the share of the scan's lung voxels given the same label (not for ``thick``)
and each class's share of the lung (%). ``--src DIR`` runs the sources of
another checkout (``DIR/src``) for a comparison.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _provenance import (  # noqa: E402
    git_commit,
    run_sources_of,
    sources_parser,
    uncommitted_sources,
    write_json,
)

CLASSES = ("healthy", "ggo", "fibrosis", "emphysema", "consolidation")


def main(argv=None) -> int:
    parser = sources_parser(__doc__.splitlines()[0], "robustness.json")
    args = parser.parse_args(argv)
    run_sources_of(args.src)
    import nibabel as nib
    import numpy as np
    import torch

    from diffseglung_core.evaluate.metrics import dice
    from diffseglung_core.io import read_scan
    from diffseglung_core.segment import segment_volume
    from diffseglung_core.volume import CTVolume

    torch.set_num_threads(args.threads)
    scan = read_scan(args.data / "lung-pet-ct-dx-A0001" / "dicom")
    hu, affine, spacing = scan.hu, scan.affine, scan.spacing

    def on_grid(data, aff) -> CTVolume:
        return CTVolume(hu=np.ascontiguousarray(data, np.float32), spacing=spacing, affine=aff)

    def shifted(aff, index):  # the affine of a crop starting at voxel ``index``
        out = aff.copy()
        out[:3, 3] = aff[:3, :3] @ np.asarray(index, float) + aff[:3, 3]
        return out

    def labels_of(vol) -> np.ndarray:
        return np.asarray(segment_volume(vol, device="cpu").labels)

    def percent_lung(labels) -> dict:  # each class's share of the labelled lung (%)
        n = max(np.count_nonzero(labels), 1)
        return {c: 100.0 * np.count_nonzero(labels == i) / n for i, c in enumerate(CLASSES, start=1)}

    t = time.perf_counter()
    base = labels_of(scan)
    seconds = {"scan": time.perf_counter() - t}
    lung = base > 0
    cols = np.flatnonzero(lung.any(axis=(0, 1)))
    rows = np.flatnonzero(lung.any(axis=(0, 2)))
    m15 = int(round(15.0 / spacing[1]))
    y0, y1 = max(rows[0] - m15, 0), rows[-1] + 1 + m15
    x0, x1 = max(cols[0] - m15, 0), cols[-1] + 1 + m15
    xc = cols[0] + int(round(30.0 / spacing[2]))
    n = hu.shape[0] // 2 * 2
    thick_affine = affine.copy()
    thick_affine[:3, 0] *= 2.0
    thick_affine[:3, 3] += 0.5 * affine[:3, 0]
    noise = np.random.default_rng(0).normal(0.0, 40.0, hu.shape).astype(np.float32)

    def flipped() -> np.ndarray:
        flip = affine.copy()
        flip[:3, 2] = -affine[:3, 2]
        flip[:3, 3] = affine[:3, 3] + affine[:3, 2] * (hu.shape[2] - 1)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "flipped.nii.gz"
            nib.save(nib.Nifti1Image(np.round(hu[:, :, ::-1]).astype(np.int16), flip), str(path))
            return labels_of(read_scan(path))

    def coarse(f: int):  # blocks of f x f pixels averaged in-plane
        ny, nx = hu.shape[1] // f * f, hu.shape[2] // f * f
        data = hu[:, :ny, :nx].reshape(hu.shape[0], ny // f, f, nx // f, f).mean(axis=(2, 4))
        aff = affine.copy()
        aff[:3, 1:3] *= f
        aff[:3, 3] += 0.5 * (f - 1) * (affine[:3, 1] + affine[:3, 2])  # the block's centre
        vol = CTVolume(hu=np.ascontiguousarray(data, np.float32),
                       spacing=(spacing[0], spacing[1] * f, spacing[2] * f), affine=aff)
        labels = labels_of(vol)
        return np.repeat(np.repeat(labels, f, axis=1), f, axis=2), np.s_[:, :ny, :nx]

    variants = {  # name -> (labels on the scan's voxels, which of the scan's voxels)
        "flipped": lambda: (flipped(), np.s_[:, :, :]),
        "noise": lambda: (labels_of(on_grid(np.maximum(hu + noise, -1024.0), affine)), np.s_[:, :, :]),
        "crop": lambda: (labels_of(on_grid(hu[:, y0:y1, x0:x1], shifted(affine, (0, y0, x0)))),
                         np.s_[:, y0:y1, x0:x1]),
        "cut_right": lambda: (labels_of(on_grid(hu[:, :, xc:], shifted(affine, (0, 0, xc)))),
                              np.s_[:, :, xc:]),
        "lower": lambda: (labels_of(on_grid(hu[:20], affine)), np.s_[:20]),
        "thick": lambda: (labels_of(on_grid(0.5 * (hu[0:n:2] + hu[1:n:2]), thick_affine)), None),
        "coarse4": lambda: coarse(4),
        "coarse6": lambda: coarse(6),
    }
    out = {}
    for name, run in variants.items():
        t = time.perf_counter()
        labels, where = run()
        seconds[name] = time.perf_counter() - t
        row: dict = {}
        if where is None:  # 10 mm slices: the lung in both slices of each pair
            row["lung_dice"] = dice(np.repeat(labels > 0, 2, axis=0), lung[:n])
        else:
            ref = base[where]
            row["lung_dice"] = dice(labels > 0, ref > 0)
            row["same_label"] = float(np.mean(labels[ref > 0] == ref[ref > 0]))
            row["scan_percent_lung"] = percent_lung(ref)
        row["percent_lung"] = percent_lung(labels)
        out[name] = row
        print(f"{name}: lung Dice {row['lung_dice']:.3f}"
              + (f", same label {row['same_label']:.3f}" if "same_label" in row else ""), flush=True)
    scan_pct = percent_lung(base)
    result = {"commit": git_commit(args.src), "uncommitted_sources": uncommitted_sources(args.src),
              "date": time.strftime("%Y-%m-%d"), "threads": args.threads,
              "scan": "lung-pet-ct-dx-A0001", "percent_lung": scan_pct, "variants": out,
              "seconds": seconds}
    print(f"commit {result['commit']}")
    print("| variant | lung Dice | same label | " + " | ".join(CLASSES[1:]) + " |")
    print("| --- | --- | --- |" + " --- |" * (len(CLASSES) - 1))
    print("| the scan | 1 | 1 | " + " | ".join(f"{scan_pct[c]:.2f}" for c in CLASSES[1:]) + " |")
    for name, row in out.items():
        same = f"{row['same_label']:.3f}" if "same_label" in row else "-"
        print(f"| {name} | {row['lung_dice']:.3f} | {same} | "
              + " | ".join(f"{row['percent_lung'][c]:.2f}" for c in CLASSES[1:]) + " |")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
