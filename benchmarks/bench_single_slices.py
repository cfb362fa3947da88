"""Each slice of A0001 alone against the whole scan: what the single-slice path keeps and loses.

Usage::

    python benchmarks/bench_single_slices.py [--data ../shared/data] [--src DIR] [--step 1]
                                             [--json benchmarks/results/single_slices.json]

A user may open one DICOM image of a series. Each slice of Lung-PET-CT-Dx A0001
(0.84 x 0.84 x 5 mm, a lung cancer of the left upper lobe against the spine)
runs alone through ``segment_volume`` with its defaults and its own lung mask, as
``diffseglung segment`` runs a single image, and is compared with the same slice
of the whole scan's run (its lung mask and labels, the reference here: the mask
was looked at on the scan, with the tumour inside and the heart and the liver
out). Per slice: the lung mask's Dice against the whole scan's; the area the
slice's mask adds (cm², and its median HU: muscle reads 30-60 HU, lung far
less) and leaves out; the share of the tumour (the largest solid component of
the whole scan's lung, :func:`~diffseglung_core.evaluate.testbed_burden.dense_structures`)
inside the slice's mask and labelled consolidation; consolidation outside the
whole scan's lung (cm²); and the share of the lung both masks hold that gets the
same label. ``--src DIR`` runs the sources of another checkout (``DIR/src``).
"""

from __future__ import annotations

import sys
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


def main(argv=None) -> int:
    parser = sources_parser(__doc__.splitlines()[0], "single_slices.json")
    parser.add_argument("--step", type=int, default=1, help="every step-th slice of the lung")
    parser.add_argument("--note", default="", help="what this run's sources are, for the docs")
    args = parser.parse_args(argv)
    run_sources_of(args.src)
    import numpy as np
    import torch

    from diffseglung_core.errors import NoLungFoundError
    from diffseglung_core.evaluate.testbed_burden import dense_structures
    from diffseglung_core.io import read_scan
    from diffseglung_core.labels import Tissue
    from diffseglung_core.segment import segment_volume
    from diffseglung_core.volume import CTVolume

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    scan = read_scan(args.data / "lung-pet-ct-dx-A0001" / "dicom")
    whole = segment_volume(scan, device="cpu")
    lung, labels = np.asarray(whole.lung) > 0, np.asarray(whole.labels)
    mass = dense_structures(scan.hu, lung, scan.spacing).mass
    cm2 = float(scan.spacing[1] * scan.spacing[2]) / 100.0
    rows = {}
    for z in np.flatnonzero(lung.any(axis=(1, 2)))[::args.step]:
        aff = scan.affine.copy()
        aff[:3, 3] = scan.affine[:3, :3] @ np.array([z, 0.0, 0.0]) + scan.affine[:3, 3]
        one = CTVolume(hu=np.ascontiguousarray(scan.hu[z:z + 1], np.float32), spacing=scan.spacing,
                       affine=aff)
        ref, ref_labels, tumour, hu = lung[z], labels[z], mass[z], scan.hu[z]
        row = {"lung_cm2": float(ref.sum() * cm2), "tumour_cm2": float(tumour.sum() * cm2)}
        t = time.perf_counter()
        try:
            r = segment_volume(one, device="cpu")
        except NoLungFoundError as err:
            row["no_lung"] = str(err)
        else:
            own, own_labels = np.asarray(r.lung)[0] > 0, np.asarray(r.labels)[0]
            extra, missing, both = own & ~ref, ref & ~own, own & ref
            row.update({
                "dice": float(2 * both.sum() / max(own.sum() + ref.sum(), 1)),
                "extra_cm2": float(extra.sum() * cm2),
                "extra_median_hu": float(np.median(hu[extra])) if extra.any() else None,
                "missing_cm2": float(missing.sum() * cm2),
                "missing_median_hu": float(np.median(hu[missing])) if missing.any() else None,
                "same_label": float((own_labels[both] == ref_labels[both]).mean()) if both.any() else None,
                "consolidation_outside_cm2": float(((own_labels == Tissue.CONSOLIDATION) & ~ref).sum()
                                                   * cm2),
            })
            if tumour.any():
                row["tumour_inside"] = float((own & tumour).sum() / tumour.sum())
                row["tumour_consolidation"] = float(
                    ((own_labels == Tissue.CONSOLIDATION) & tumour).sum() / tumour.sum())
        row["seconds"] = time.perf_counter() - t
        rows[str(int(z))] = row
    done = [r for r in rows.values() if "dice" in r]
    tumour_total = sum(r["tumour_cm2"] for r in rows.values())
    summary = {
        "slices": len(rows), "no_lung": len(rows) - len(done),
        "median_dice": float(np.median([r["dice"] for r in done])) if done else None,
        "min_dice": float(min(r["dice"] for r in done)) if done else None,
        "extra_cm2": float(sum(r["extra_cm2"] for r in done)),
        "missing_cm2": float(sum(r["missing_cm2"] for r in done)),
        "lung_cm2": float(sum(r["lung_cm2"] for r in rows.values())),
        "consolidation_outside_cm2": float(sum(r["consolidation_outside_cm2"] for r in done)),
        "tumour_inside": float(sum(r.get("tumour_inside", 0.0) * r["tumour_cm2"] for r in done)
                               / tumour_total) if tumour_total else None,
        "tumour_consolidation": float(sum(r.get("tumour_consolidation", 0.0) * r["tumour_cm2"]
                                          for r in done) / tumour_total) if tumour_total else None,
        "same_label_median": float(np.median([r["same_label"] for r in done])) if done else None,
    }
    result = {"commit": git_commit(args.src), "uncommitted_sources": uncommitted_sources(args.src),
              "date": time.strftime("%Y-%m-%d"), "threads": args.threads, "note": args.note,
              "reference": "the whole scan's lung mask and labels (segment_volume defaults)",
              "summary": summary, "slices": rows, "seconds": time.perf_counter() - t0}
    print(f"commit {result['commit']}")
    print("| slice | lung Dice | added cm² (median HU) | left out cm² (median HU) | tumour inside "
          "| tumour consolidation | consolidation outside cm² | same label |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")

    def fmt(v, spec=".2f"):
        return "-" if v is None else format(v, spec)

    for z, r in rows.items():
        if "no_lung" in r:
            print(f"| {z} | no lung ({r['lung_cm2']:.1f} cm² in the scan's mask) |" + " |" * 6)
            continue
        print(f"| {z} | {r['dice']:.3f} | {r['extra_cm2']:.1f} ({fmt(r['extra_median_hu'], '.0f')}) | "
              f"{r['missing_cm2']:.1f} ({fmt(r['missing_median_hu'], '.0f')}) | "
              f"{fmt(r.get('tumour_inside'))} | {fmt(r.get('tumour_consolidation'))} | "
              f"{r['consolidation_outside_cm2']:.1f} | {fmt(r['same_label'], '.3f')} |")
    print(summary)
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
