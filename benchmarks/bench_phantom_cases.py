"""The engine end to end on the phantom's disease cases: contrast, white lung, effusions, masses.

Usage::

    python benchmarks/bench_phantom_cases.py [--cases white_lung effusion ...] [--seeds 20 21 22]
                                             [--shape 48 160 160] [--threads 2]
                                             [--json benchmarks/results/phantom_cases.json]

``docs/results.md`` scores the engine on the phantom's ``chest`` case (scattered
lesions in otherwise healthy lungs). The other cases of
:mod:`diffseglung_core.phantom.cases` put the disease where a method is most
easily fooled: blood as dense as bone after intravenous contrast (``contrast``, beside
``chest``: the same anatomy and lesions without contrast), both lungs mostly ground
glass and consolidation (``white_lung``),
lung compressed by pleural fluid (``effusion``), a solid mass against the costal,
mediastinal or diaphragmatic pleura (``pleural_mass*``), free air in the pleural space
(``pneumothorax``: the share of it left out of the lung, and labelled each class). Each case and seed runs
:func:`segment_volume` with its defaults and its own lung mask; Dice per class is
measured against the phantom's truth on the whole volume (truth-lung voxels the
engine leaves outside its lung count as label 0), with the lung mask's Dice; beside them
the Dice off the truth's edges (the voxels within one voxel, in-plane, of a voxel of another
truth label left out: :func:`~diffseglung_core.evaluate.metrics.edge_band`), which tells
errors where a voxel of the phantom holds two tissues from regions labelled wrong, and the
surface Dice (:func:`~diffseglung_core.evaluate.metrics.surface_dice`) at a tolerance of
one in-plane voxel. The
phantom's tissues and the engine's rules come from the same hands: these figures
show what a case breaks, not how well real disease is labelled
(docs/testbed.md does that).

Prints a table and writes JSON.
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

CLASSES = ("healthy", "ggo", "fibrosis", "emphysema", "consolidation")
CASES = ("chest", "contrast", "white_lung", "effusion", "pleural_mass", "pleural_mass_mediastinal",
         "pleural_mass_diaphragmatic", "pneumothorax")


def run_case(case: str, seed: int, shape) -> dict:
    """Dice and surface Dice per class (NaN for a class absent from the truth), and the lung
    mask's."""
    from diffseglung_core.evaluate.metrics import dice, edge_band, surface_dice
    from diffseglung_core.phantom import make_phantom
    from diffseglung_core.segment import segment_volume

    ph = make_phantom(shape, seed=seed, case=case)
    t = time.perf_counter()
    res = segment_volume(ph.volume, device="cpu")
    seconds = time.perf_counter() - t
    labels, lung, spacing = np.asarray(res.labels), np.asarray(res.lung) > 0, ph.volume.spacing
    tol = float(max(spacing[1:]))
    off = ~edge_band(ph.labels, 1)
    out = {"seconds": seconds, "lung_dice": dice(lung, ph.lung > 0), "tolerance_mm": tol,
           "lung_surface_dice": surface_dice(lung, ph.lung > 0, spacing, tol),
           "edge_band_share": float(np.mean(~off[ph.lung > 0])),
           "dice": {}, "dice_off_edges": {}, "surface_dice": {}}
    for i, name in enumerate(CLASSES, start=1):
        truth, found = ph.labels == i, labels == i
        present = truth.any()
        out["dice"][name] = dice(found, truth) if present else float("nan")
        out["dice_off_edges"][name] = dice(found & off, truth & off) if present else float("nan")
        out["surface_dice"][name] = surface_dice(found, truth, spacing, tol) if present else float("nan")
    if ph.pneumothorax is not None:
        # free pleural air: what the engine calls it (0: left out of the lung)
        counts = np.bincount(labels[ph.pneumothorax], minlength=6)
        out["free_air_labelled"] = {name: float(counts[i] / max(counts.sum(), 1))
                                    for i, name in enumerate(("outside",) + CLASSES)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=list(CASES))
    ap.add_argument("--seeds", type=int, nargs="+", default=[20, 21, 22])
    ap.add_argument("--shape", type=int, nargs=3, default=[48, 160, 160])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "phantom_cases.json")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    conditions = {"machine": f"{platform.machine()} {os.cpu_count()} logical CPUs",
                  "threads": args.threads, "python": platform.python_version(),
                  "commit": git_commit(), "uncommitted_sources": uncommitted_sources(),
                  "date": time.strftime("%Y-%m-%d"), "shape": list(args.shape), "seeds": args.seeds,
                  "method": "segment_volume(volume, device='cpu') with its defaults and its own lung mask"}
    cases = {}
    print(f"{'case':28s} {'seed':>4s}  " + " ".join(f"{c[:5]:>6s}" for c in CLASSES) + "    lung      s")
    for case in args.cases:
        runs = []
        for seed in args.seeds:
            r = run_case(case, seed, tuple(args.shape))
            runs.append(r)
            print(f"{case:28s} {seed:4d}  " + " ".join(f"{r['dice'][c]:6.3f}" for c in CLASSES)
                  + f"  {r['lung_dice']:6.3f} {r['seconds']:6.1f}", flush=True)
        mean = {c: float(np.mean([r["dice"][c] for r in runs])) for c in CLASSES}
        surface = {c: float(np.mean([r["surface_dice"][c] for r in runs])) for c in CLASSES}
        off = {c: float(np.mean([r["dice_off_edges"][c] for r in runs])) for c in CLASSES}
        cases[case] = {"seeds": dict(zip(map(str, args.seeds), runs)), "mean_dice": mean,
                       "mean_lung_dice": float(np.mean([r["lung_dice"] for r in runs])),
                       "mean_dice_off_edges": off,
                       "edge_band_share": float(np.mean([r["edge_band_share"] for r in runs])),
                       "mean_surface_dice": surface, "tolerance_mm": runs[0]["tolerance_mm"],
                       "mean_lung_surface_dice": float(np.mean([r["lung_surface_dice"] for r in runs]))}
        print(f"{case:28s} mean  " + " ".join(f"{mean[c]:6.3f}" for c in CLASSES)
              + f"  {cases[case]['mean_lung_dice']:6.3f}", flush=True)
        print(f"{case:28s} off   " + " ".join(f"{off[c]:6.3f}" for c in CLASSES)
              + f"           (Dice off the truth's edges, {cases[case]['edge_band_share']:.0%} of "
              "the true lung)", flush=True)
        print(f"{case:28s} NSD   " + " ".join(f"{surface[c]:6.3f}" for c in CLASSES)
              + f"  {cases[case]['mean_lung_surface_dice']:6.3f}   (surface Dice at "
              f"{runs[0]['tolerance_mm']:.2f} mm)", flush=True)
        if "free_air_labelled" in runs[0]:
            air = {k: float(np.mean([r["free_air_labelled"][k] for r in runs]))
                   for k in runs[0]["free_air_labelled"]}
            cases[case]["mean_free_air_labelled"] = air
            print(f"{case:28s} free pleural air: " + ", ".join(f"{k} {v:.3f}" for k, v in air.items()),
                  flush=True)
    write_json(args.json, {"conditions": conditions, "cases": cases})
    return 0


if __name__ == "__main__":
    sys.exit(main())
