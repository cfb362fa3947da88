"""What the default engine labels on the real COVID-19 slices of covid-ny-sbu-open.

Usage::

    python benchmarks/bench_covid_slices.py [--data ../shared/data] [--src DIR]
                                            [--json benchmarks/results/covid_slices.json]

Each slice (one DICOM image: 1-5 mm thick, two vendors) runs through
``segment_volume`` with its defaults and its own lung mask, as ``diffseglung
segment`` would run it. The slices have no pixel labels, so nothing here is a
Dice: the table gives the share of the lung in each class and of the body in the
lung mask (the JSON also the share of the consolidation voxels that read below
-300 HU, as no airless lung does but its partial-volume edge), to be read with
the pictures (what a radiologist sees on each slice is in docs/results.md), and
to compare two versions of the engine on the same
slices. ``--src DIR`` runs the sources of another checkout (``DIR/src``), e.g. a
``git worktree`` of an earlier commit, for that comparison.
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

CLASSES = ("healthy", "ggo", "fibrosis", "emphysema", "consolidation")


def main(argv=None) -> int:
    parser = sources_parser(__doc__.splitlines()[0], "covid_slices.json")
    parser.add_argument("--note", default="", help="what this run's sources are, for the docs")
    args = parser.parse_args(argv)
    run_sources_of(args.src)
    import numpy as np
    import torch

    from diffseglung_core.errors import NoLungFoundError
    from diffseglung_core.io import read_scan
    from diffseglung_core.lung.body import filled_body, outside_air
    from diffseglung_core.segment import segment_volume

    torch.set_num_threads(args.threads)
    commit = git_commit(args.src)
    rows = {}
    for path in sorted((args.data / "covid-ny-sbu-open").glob("*.dcm")):
        vol = read_scan(path)
        row: dict = {"thickness_mm": float(vol.spacing[0]), "pixel_mm": float(vol.spacing[1])}
        t = time.perf_counter()
        try:
            labels = np.asarray(segment_volume(vol, device="cpu").labels)
        except NoLungFoundError as err:
            row["no_lung"] = str(err)
        else:
            lung = np.count_nonzero(labels)
            body = np.count_nonzero(filled_body(~outside_air(vol.hu < -400)))
            row["lung_share_of_body"] = lung / body
            row["percent_lung"] = {c: 100.0 * np.count_nonzero(labels == i) / lung
                                   for i, c in enumerate(CLASSES, start=1)}
            row["pathology_percent"] = 100.0 - row["percent_lung"]["healthy"]
            # consolidation is airless: lighter voxels are its partial-volume edge at most
            cons = labels == CLASSES.index("consolidation") + 1
            row["consolidation_below_minus300_percent"] = (
                100.0 * np.count_nonzero(cons & (vol.hu < -300)) / np.count_nonzero(cons)
                if cons.any() else None)
        row["seconds"] = time.perf_counter() - t
        rows[path.name] = row
    result = {"commit": commit, "uncommitted_sources": uncommitted_sources(args.src),
              "date": time.strftime("%Y-%m-%d"), "threads": args.threads, "note": args.note,
              "slices": rows}
    print(f"commit {commit}")
    print("| slice | thickness | lung / body | " + " | ".join(CLASSES) + " | pathology |")
    print("| --- |" + " --- |" * (len(CLASSES) + 3))
    for name, row in rows.items():
        if "no_lung" in row:
            print(f"| {name} | {row['thickness_mm']:g} mm | no lung |" + " |" * (len(CLASSES) + 1))
            continue
        pct = row["percent_lung"]
        print(f"| {name} | {row['thickness_mm']:g} mm | {100 * row['lung_share_of_body']:.1f} % | "
              + " | ".join(f"{pct[c]:.1f}" for c in CLASSES) + f" | {row['pathology_percent']:.1f} |")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
