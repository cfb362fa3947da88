"""How much the engine's figures move with the seed of its Gaussian mixture alone.

Usage::

    python benchmarks/bench_seed_spread.py [--gmm-seeds 0 1 2] [--phantom-seeds 20 21 22]
                                           [--threads 2] [--data ../shared/data]
                                           [--json benchmarks/results/seed_spread.json]

The default engine (:func:`diffseglung_core.segment.engine.segment_volume`, its own
lung mask) is run on the same scans with ``seed`` = each of ``--gmm-seeds``; the
seed picks the rows of the mixture's subsample and its k-means++ starts, nothing
else. Measured per seed:

* the phantoms of ``docs/results.md`` (:func:`diffseglung_core.phantom.make_phantom`,
  48 x 160 x 160, ``--phantom-seeds``): Dice per class;
* the real-anatomy test bed (:mod:`diffseglung_core.evaluate.testbed`, scored as in
  ``bench_testbed.py``): Dice per class and case;
* the native A0001 scan: the false-positive burden of ``bench_testbed.py``.

For every figure it prints the seeds' mean, lowest and highest value; a change of
the engine that moves a figure by less than this range at one seed is within the
noise of the clustering. Writes JSON.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _provenance import git_commit, uncommitted_sources, write_json  # noqa: E402
from bench_testbed import CLASSES, score_case  # noqa: E402


def _phantom_dice(labels, truth) -> dict:
    out = {}
    for i, name in enumerate(CLASSES, start=1):
        a, b = labels == i, truth == i
        n = int(a.sum() + b.sum())
        out[name] = 2.0 * int((a & b).sum()) / n if n else float("nan")
    return out


def _spread(values: list) -> dict:
    v = np.asarray([x for x in values if x is not None and not np.isnan(x)], float)
    if v.size == 0:
        return {"mean": None, "min": None, "max": None}
    return {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max())}


def _summarise(per_seed: dict) -> dict:
    """{figure: {seed: value}} -> {figure: mean/min/max over the seeds}."""
    return {k: _spread(list(v.values())) for k, v in per_seed.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gmm-seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--phantom-seeds", type=int, nargs="*", default=[20, 21, 22])
    ap.add_argument("--shape", type=int, nargs=3, default=[48, 160, 160])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=None, help="shared real CT folder (default ../shared/data)")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "seed_spread.json")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from diffseglung_core.evaluate import testbed as tb
    from diffseglung_core.evaluate.testbed_burden import false_positive_burden
    from diffseglung_core.phantom import make_phantom
    from diffseglung_core.segment.engine import segment_volume

    t0 = time.perf_counter()
    commit, changed = git_commit(), uncommitted_sources()  # the code that runs, read before it runs
    figures: dict = {}  # "where / figure" -> {seed: value}

    def record(prefix: str, values: dict, seed: int) -> None:
        for k, v in values.items():
            figures.setdefault(f"{prefix} / {k}", {})[seed] = float(v)

    for ps in args.phantom_seeds:
        ph = make_phantom(tuple(args.shape), seed=ps)
        for s in args.gmm_seeds:
            r = segment_volume(ph.volume, device="cpu", seed=s)
            record(f"phantom seed {ps}", _phantom_dice(r.labels, ph.labels), s)
            print(f"phantom seed {ps}, GMM seed {s}: done", flush=True)
    data = Path(args.data) if args.data else tb.default_data_dir()
    cases = tb.standard_cases(data)
    for name, case in cases.items():
        held = {c for c in CLASSES[1:] if (case.truth == CLASSES.index(c) + 1).any()}
        for s in args.gmm_seeds:
            r = segment_volume(case.volume, device="cpu", seed=s)
            dice = score_case(case, r.labels, r.lung > 0)["dice"]
            record(f"test bed {name}", {c: dice[c] for c in ("healthy", *sorted(held))}, s)
            print(f"test bed {name}, GMM seed {s}: done", flush=True)
    if not tb.scan_missing(data, "a0001"):
        vol = tb.load_scan("a0001", data)[0]
        for s in args.gmm_seeds:
            r = segment_volume(vol, device="cpu", seed=s)
            b = false_positive_burden(r.labels, r.lung > 0, vol.hu, vol.spacing)
            away = b["percent_lung_away_from_mass"]
            record("A0001 native", {
                "GGO % away from the mass": away["ggo"],
                "fibrosis % away from the mass": away["fibrosis"],
                "emphysema % away from the mass": away["emphysema"],
                "the three % away from the mass": away["ggo"] + away["fibrosis"] + away["emphysema"],
                "thin vessel-like voxels called pathology": b["thin_dense_pathology_fraction"],
            }, s)
            print(f"A0001, GMM seed {s}: done", flush=True)

    summary = _summarise(figures)
    print(f"\n{'figure':70s} {'mean':>7s} {'min':>7s} {'max':>7s}")
    for k, v in summary.items():
        if v["mean"] is not None:
            print(f"{k:70s} {v['mean']:7.3f} {v['min']:7.3f} {v['max']:7.3f}")
    out = {"conditions": {"commit": commit, "uncommitted_sources": changed,
                          "date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
                          "cpus": os.cpu_count(), "threads": args.threads,
                          "python": platform.python_version(), "gmm_seeds": args.gmm_seeds,
                          "phantom_seeds": args.phantom_seeds, "shape": args.shape,
                          "engine": "segment_volume(volume, device='cpu', seed=s), its own lung mask",
                          "total_seconds": time.perf_counter() - t0},
           "per_seed": figures, "summary": summary}
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
