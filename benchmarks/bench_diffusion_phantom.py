"""Dice of the diffusion-feature engine with the shipped checkpoint on a phantom.

Prints a table and writes JSON (``--json``). Usage::

    python benchmarks/bench_diffusion_phantom.py --json benchmarks/results/diffusion_phantom.json
"""

from __future__ import annotations

import argparse
import json
import time

from diffseglung_core.evaluate.metrics import evaluate_labels
from diffseglung_core.phantom import make_phantom
from diffseglung_core.segment.engine import segment_volume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", nargs=3, type=int, default=(48, 128, 128))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--features", nargs="+", default=["diffusion", "radiomics"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    phantom = make_phantom(tuple(args.shape), seed=args.seed)
    rows = []
    for features in args.features:
        t = time.perf_counter()
        result = segment_volume(phantom.volume, features=features, device=args.device,
                                checkpoint="default" if features in ("diffusion", "both") else None)
        seconds = time.perf_counter() - t
        scores = evaluate_labels(result.labels, phantom.labels, phantom.volume.spacing,
                                 distances=False)
        rows.append({"features": features, "seconds": seconds,
                     "dice": {s["name"]: s["dice"] for s in scores}})
    names = list(rows[0]["dice"])
    print(f"{'features':<12}" + "".join(f"{n[:13]:>15}" for n in names) + f"{'s':>8}")
    for r in rows:
        print(f"{r['features']:<12}" + "".join(f"{r['dice'][n]:>15.3f}" for n in names)
              + f"{r['seconds']:>8.1f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"shape": args.shape, "seed": args.seed, "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
