"""The solid components the default engine finds on the native A0001 scan, one by one.

Usage::

    python benchmarks/bench_a0001_solids.py [--data ../shared/data] [--src DIR]
                                            [--json benchmarks/results/a0001_solids.json]

Lung-PET-CT-Dx A0001 (0.84 x 0.84 x 5 mm) holds one known lesion, the left upper-lobe
tumour (slices 39-54). ``segment_volume`` runs with its defaults and its own lung mask;
each 3D component of its structure evidence's solid voxels (what the labels call
consolidation) is listed with its volume, slices, box, median HU and mean Hessian tube
measure (:func:`diffseglung_core.segment.structure.structure_maps` of the calibrated HU,
as the evidence reads it): the tumour is a blob, a vessel cut across is tube-like. Compare
two versions with ``--src DIR`` (the ``src/`` of another checkout). Prints a table and
writes JSON.
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
    parser = sources_parser(__doc__.splitlines()[0], "a0001_solids.json")
    args = parser.parse_args(argv)
    run_sources_of(args.src)
    import numpy as np
    import torch
    from scipy import ndimage as ndi

    from diffseglung_core.io import read_scan
    from diffseglung_core.segment.engine import segment_volume
    from diffseglung_core.segment.structure import structure_maps

    torch.set_num_threads(args.threads)
    ct = read_scan(args.data / "lung-pet-ct-dx-A0001" / "dicom")
    t = time.perf_counter()
    result = segment_volume(ct, device="cpu")
    seconds = time.perf_counter() - t
    lung = np.asarray(result.lung) > 0
    solid = np.zeros(lung.shape, bool)
    solid[lung] = result.evidence.solid
    offset = float(result.mapping.hu_offset)
    tube = structure_maps(np.clip(ct.hu - offset, -1100.0, 300.0).astype(np.float32), ct.spacing,
                          names=("tube",))["tube"]
    parts, _ = ndi.label(solid, np.ones((3, 3, 3), bool))
    voxel_ml = float(np.prod(ct.spacing)) / 1000.0
    rows = []
    for i, box in enumerate(ndi.find_objects(parts), start=1):
        comp = parts[box] == i
        rows.append({"ml": float(comp.sum() * voxel_ml),
                     "slices": [box[0].start, box[0].stop - 1],
                     "box_yx": [[box[1].start, box[1].stop], [box[2].start, box[2].stop]],
                     "median_hu": float(np.median(ct.hu[box][comp])),
                     "mean_tube": float(tube[box][comp].mean())})
    rows.sort(key=lambda r: -r["ml"])
    print(f"sources of {git_commit(args.src)}: {len(rows)} solid components, engine {seconds:.1f} s")
    print(f"{'mL':>7} {'slices':>8} {'rows':>10} {'columns':>10} {'median HU':>10} {'tube':>6}")
    for r in rows:
        (y0, y1), (x0, x1) = r["box_yx"]
        print(f"{r['ml']:7.2f} {r['slices'][0]:>3}-{r['slices'][1]:<4} {y0:>4}-{y1:<5} {x0:>4}-{x1:<5} "
              f"{r['median_hu']:10.0f} {r['mean_tube']:6.2f}")
    out = {"commit": git_commit(args.src), "uncommitted_sources": uncommitted_sources(args.src),
           "date": time.strftime("%Y-%m-%d"), "threads": args.threads, "engine_seconds": seconds,
           "hu_offset": offset, "components": rows}
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
