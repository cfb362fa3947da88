"""Interactive correction: time of a remap, an object relabel and learning; Dice after corrected slices.

Usage::

    python benchmarks/bench_interaction.py [--cases chest mass a0001-mixed] [--steps 300]
                                           [--threads 2] [--memory]
                                           [--json benchmarks/results/interaction.json]

Cases (512 x 512 x 64 unless said otherwise):

* ``chest``: the synthetic phantom (:func:`diffseglung_core.phantom.make_phantom`,
  64 x 512 x 512, seed 0) with all four pathologies;
* ``mass``: the phantom's ``pleural_mass`` case (a solid mass against the
  costal pleura with known mask ``Phantom.mass``);
* ``a0001-mixed``: the real-anatomy test bed (lesions of known extent inserted
  into the real A0001 series, :mod:`diffseglung_core.evaluate.testbed`), when
  the shared data is present.

For each case the default engine (:func:`~diffseglung_core.segment.engine.segment_volume`)
segments the scan with its own lung mask, then, through the same core calls as
the napari widgets (:class:`~diffseglung_core.segment.session.CorrectionSession`):

1. **Remap**: the largest cluster and a middle-sized one are remapped to
   ground glass (:meth:`CorrectionSession.remap` + ``remap_step``): seconds and
   voxels changed. The argmax labels and their margins, which every remap
   starts from, are computed once beforehand (napari's Segment does it in its
   worker with the segmentation); that time is reported apart.
2. **Object relabel** (``mass``; the largest inserted mass on the test bed):
   :func:`~diffseglung_core.segment.objects.select_object` at the mass's deepest
   voxel, :func:`~diffseglung_core.segment.objects.relabel_object` and the
   session step: seconds, Dice with the true mass, dense healthy voxels (vessels)
   taken along.
3. **Learning**: a radiologist correcting ``n`` = 1, 3, 5 axial slices is
   simulated (the truth on those slices, inside the engine's lung, becomes the
   confirmed labels); slices are chosen by *next slice to check*
   (:func:`~diffseglung_core.segment.guidance.next_slice`, re-asked after each
   learning from the head's posteriors) or at random among the lung slices
   (seeded). The weight-free head learns from the ``n`` slices
   (:func:`~diffseglung_core.segment.learn.learn_from_corrections`); Dice per
   class is measured on the lung voxels of every *uncorrected* slice, for the
   engine's labels and for the labels after learning (the session's merge:
   confirmed slices kept). How much of what is left lies at the truth's
   boundaries: ``edge_band_share``, the share of those voxels within two voxels
   (in-plane, diagonals included: :func:`~diffseglung_core.evaluate.metrics.edge_band`) of a
   voxel of another truth label, and ``ceiling``, the mean Dice
   of each label map with every error outside that band corrected (what a
   correction of whole regions could reach; a band voxel holds two tissues).

``--memory`` also learns on a 300 x 512 x 512 phantom in a child process and
records its peak resident memory. Prints tables; writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from _provenance import git_commit, uncommitted_sources  # noqa: E402

SHAPE = (64, 512, 512)
COUNTS = (1, 3, 5)


def dice_per_class(pred, truth, where) -> dict:
    out = {}
    for c in range(1, 6):
        a, b = (pred == c) & where, (truth == c) & where
        n = int(a.sum() + b.sum())
        if n:
            out[c] = 2.0 * int((a & b).sum()) / n
    return out


def mean(d: dict) -> float:
    return float(np.mean(list(d.values()))) if d else float("nan")


# -- cases ---------------------------------------------------------------------------------


def load_case(name: str):
    """(volume, truth labels, truth lung, scored region, mass mask or None, description)."""
    if name in ("chest", "mass"):
        from diffseglung_core.phantom import make_phantom

        ph = make_phantom(SHAPE, case="chest" if name == "chest" else "pleural_mass", seed=0)
        lung = ph.lung > 0
        return ph.volume, ph.labels, lung, lung, ph.mass, f"phantom {ph.case} {SHAPE}"
    from diffseglung_core.evaluate.testbed import standard_cases

    cases = standard_cases(names=[name])
    if name not in cases:
        return None
    case = cases[name]
    mass = None
    masses = [r for r in case.lesions if r.kind == "mass"]
    if masses:
        biggest = max(masses, key=lambda r: r.volume_ml)
        mass = case.lesion_map == biggest.index
    return (case.volume, case.truth, case.lung > 0, case.scored, mass,
            f"test bed {name}: {case.description}")


# -- measurements ---------------------------------------------------------------------------


def bench_remap(result) -> list:
    from diffseglung_core.labels import Tissue
    from diffseglung_core.segment.session import CorrectionSession

    session = CorrectionSession(result)
    t = time.perf_counter()
    session.argmax()  # napari's Segment prepares this with the segmentation, in its worker
    prepare = time.perf_counter() - t
    shown = np.array(result.labels, copy=True)
    sizes = [st["n_voxels"] for st in result.mapping.stats]
    order = np.argsort(sizes)
    picks = [int(order[-1]), int(order[len(order) // 2])]
    out = []
    for cluster in picks:
        label = Tissue.GGO if result.mapping.labels[cluster] != Tissue.GGO else Tissue.CONSOLIDATION
        mapping = session.mapping.with_label(cluster, label)
        t = time.perf_counter()
        change = session.remap(mapping)
        step = session.remap_step(shown, change, mapping, session.forced)
        shown[step.where] = step.values
        session.commit(step)
        seconds = time.perf_counter() - t
        out.append({"cluster": cluster, "cluster_voxels": int(sizes[cluster]), "to": int(label),
                    "seconds": seconds, "voxels_changed": step.n_changed, "message": step.message,
                    "prepared_with_segmentation_seconds": prepare})
    return out


def bench_object(volume, result, truth, mass) -> dict:
    from scipy import ndimage as ndi

    from diffseglung_core.labels import Tissue
    from diffseglung_core.segment.objects import relabel_object, select_object
    from diffseglung_core.segment.session import CorrectionSession

    seed = np.unravel_index(ndi.distance_transform_edt(mass, sampling=volume.spacing).argmax(),
                            mass.shape)
    session = CorrectionSession(result)
    shown = np.array(result.labels, copy=True)
    t = time.perf_counter()
    sel = select_object(result.hu, seed, spacing=result.spacing, labels=shown)
    where, values = relabel_object(shown, sel, Tissue.CONSOLIDATION)
    step = session.relabel_step(shown, where, values)
    shown[step.where] = step.values
    session.commit(step)
    seconds = time.perf_counter() - t
    found = sel.full_mask(mass.shape)
    vessels = (truth == Tissue.HEALTHY) & (volume.hu > -400) & ~mass
    near = ndi.distance_transform_edt(~mass, sampling=volume.spacing) <= 3.0
    return {"seconds": seconds, "object_ml": sel.volume_ml,
            "mass_ml": float(mass.sum() * np.prod(volume.spacing) / 1000),
            "dice_with_mass": float(2 * (found & mass).sum() / (found.sum() + mass.sum())),
            "vessel_voxels_taken": int((found & vessels).sum()),
            "vessel_voxels_taken_beyond_3mm": int((found & vessels & ~near).sum()),
            "mass_labelled_consolidation_before": float((result.labels[mass] == 5).mean()),
            "voxels_changed": step.n_changed, "message": sel.message}


def simulate_learning(volume, result, truth, scored, *, chooser: str, steps: int, seed: int = 0):
    """Dice on uncorrected slices after 0, 1, 3, 5 corrected slices chosen by ``chooser``."""
    from diffseglung_core.evaluate.metrics import edge_band
    from diffseglung_core.segment.changes import label_posteriors
    from diffseglung_core.segment.guidance import next_slice
    from diffseglung_core.segment.learn import learn_from_corrections

    lung = np.asarray(result.lung) > 0
    auto = np.asarray(result.labels)
    post = label_posteriors(result)
    probs = post
    zs = np.flatnonzero((lung & scored).sum(axis=(1, 2)) >= 0.2 * (lung & scored).sum(axis=(1, 2)).max())
    rng = np.random.default_rng(seed)
    random_order = [int(z) for z in rng.permutation(zs)]
    chosen: list[int] = []
    runs = [{"corrected": 0, "slices": [], "dice_unsupervised": dice_per_class(auto, truth, lung & scored),
             "dice": dice_per_class(auto, truth, lung & scored)}]
    runs[0]["mean_unsupervised"] = runs[0]["mean"] = mean(runs[0]["dice"])
    band = edge_band(truth, voxels=2)
    for n in range(1, max(COUNTS) + 1):
        if chooser == "next":
            allowed = np.zeros(lung.shape[0], bool)
            allowed[zs] = True
            blocked = set(chosen) | set(np.flatnonzero(~allowed).tolist())
            z = next_slice(probs, lung, blocked, slice_mm=result.spacing[0])
            z = z if z is not None else next(s for s in random_order if s not in chosen)
        else:
            z = next(s for s in random_order if s not in chosen)
        chosen.append(int(z))
        if n not in COUNTS:
            continue
        shown = auto.copy()
        confirmed = np.zeros(lung.shape, bool)
        for s in chosen:
            inside = lung[s] & scored[s]
            shown[s][inside] = truth[s][inside]
            confirmed[s] = inside
        t = time.perf_counter()
        outcome = learn_from_corrections(result.hu, shown, confirmed, lung, spacing=result.spacing,
                                         auto=auto, posteriors=post, steps=steps, device="cpu")
        seconds = time.perf_counter() - t
        merged = outcome.labels.copy()
        merged[chosen] = shown[chosen]  # the confirmed slices stay as corrected
        rest = lung & scored
        rest[chosen] = False
        before, after = dice_per_class(auto, truth, rest), dice_per_class(merged, truth, rest)
        if outcome.accepted and outcome.probabilities is not None:
            probs = outcome.probabilities.astype(np.float32)
        runs.append({"corrected": n, "slices": list(chosen), "seconds": seconds,
                     "timings": outcome.timings, "accepted": outcome.accepted,
                     "message": outcome.message, "dice_unsupervised": before, "dice": after,
                     "mean_unsupervised": mean(before), "mean": mean(after),
                     "gain": mean(after) - mean(before),
                     "worst_class_change": min(after.get(c, 1.0) - before[c] for c in before),
                     "edge_band_share": float((band & rest).sum() / max(rest.sum(), 1)),
                     "ceiling": {k: mean(dice_per_class(np.where(band, v, truth), truth, rest))
                                 for k, v in (("unsupervised", auto), ("learned", merged))}})
    return runs


_MAKE = """
import json, sys, numpy as np
from diffseglung_core.phantom import make_phantom
ph = make_phantom((300, 512, 512), seed=0)
d = sys.argv[1]
np.save(d + "/hu.npy", ph.volume.hu); np.save(d + "/truth.npy", ph.labels); np.save(d + "/lung.npy", ph.lung)
print(json.dumps(list(ph.volume.spacing)))
"""

_LEARN = """
import json, sys, time, numpy as np, torch
torch.set_num_threads(2)
from diffseglung_core.segment.learn import learn_from_corrections, one_hot
d, spacing, steps = sys.argv[1], tuple(json.loads(sys.argv[2])), int(sys.argv[3])
hu = np.load(d + "/hu.npy", mmap_mode="r"); truth = np.load(d + "/truth.npy")
lung = np.load(d + "/lung.npy") > 0
auto = truth.copy(); auto[truth == 3] = 2  # an unsupervised result that calls fibrosis GGO
confirmed = np.zeros(lung.shape, bool); confirmed[[100, 150, 200]] = True; confirmed &= lung
def peak_gb():  # this process's own high-water mark (ru_maxrss would include the parent's)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1e6
base = peak_gb()
t = time.perf_counter()
out = learn_from_corrections(hu, truth, confirmed, lung, spacing=spacing, auto=auto,
                             posteriors=one_hot(auto[lung]), steps=steps, device="cpu")
print(json.dumps({"seconds": time.perf_counter() - t, "timings": out.timings,
                  "peak_gb": peak_gb(),
                  "before_learning_gb": base, "accepted": out.accepted, "message": out.message}))
"""


def memory_child(steps: int) -> dict:
    """Learn on a 300 x 512 x 512 phantom in a child process: seconds and peak resident memory.

    The phantom is made and saved by another process first, and read memory-mapped, so the
    peak is that of the arrays learning needs (labels, lung, confirmed, features), not of the
    phantom's maker.
    """
    import shutil
    import tempfile

    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    d = tempfile.mkdtemp()
    try:
        spacing = subprocess.check_output([sys.executable, "-c", _MAKE, d], env=env,
                                          text=True).strip().splitlines()[-1]
        out = subprocess.check_output([sys.executable, "-c", _LEARN, d, spacing, str(steps)],
                                      env=env, text=True)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", default=["chest", "mass", "a0001-mixed"])
    parser.add_argument("--update", action="store_true",
                        help="keep the cases already in --json that are not run again")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "interaction.json")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from diffseglung_core.segment import segment_volume

    report = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "torch_threads": args.threads, "python": platform.python_version()},
              "commit": git_commit(), "uncommitted_sources": uncommitted_sources(),
              "date": time.strftime("%Y-%m-%d"), "steps": args.steps, "cases": {}}
    if args.update and args.json.is_file():
        old = json.loads(args.json.read_text())
        report["cases"] = old.get("cases", {})
        if "memory_300x512x512" in old:
            report["memory_300x512x512"] = old["memory_300x512x512"]
    for name in args.cases:
        loaded = load_case(name)
        if loaded is None:
            print(f"{name}: data not found, skipped")
            continue
        volume, truth, truth_lung, scored, mass, description = loaded
        t = time.perf_counter()
        result = segment_volume(volume, device="cpu")
        seg_seconds = time.perf_counter() - t
        entry = {"description": description, "commit": report["commit"], "shape": list(volume.shape),
                 "spacing": list(volume.spacing), "lung_voxels": int((result.lung > 0).sum()),
                 "segment_seconds": seg_seconds, "remap": bench_remap(result)}
        if mass is not None:
            entry["object"] = bench_object(volume, result, truth, mass)
        if name != "mass":
            entry["learning"] = {c: simulate_learning(volume, result, truth, scored, chooser=c,
                                                      steps=args.steps)
                                 for c in ("next", "random")}
        report["cases"][name] = entry
        print(f"\n== {name}: {description}")
        for r in entry["remap"]:
            print(f"remap cluster {r['cluster']} ({r['cluster_voxels']} voxels): "
                  f"{r['seconds']:.2f} s, {r['voxels_changed']} voxels changed")
        if "object" in entry:
            o = entry["object"]
            print(f"object relabel: {o['seconds']:.2f} s, {o['object_ml']:.1f} mL "
                  f"(mass {o['mass_ml']:.1f} mL), Dice {o['dice_with_mass']:.3f}, "
                  f"vessel voxels taken {o['vessel_voxels_taken']} "
                  f"({o['vessel_voxels_taken_beyond_3mm']} beyond 3 mm)")
        for chooser, runs in entry.get("learning", {}).items():
            for r in runs[1:]:
                print(f"learn [{chooser}] {r['corrected']} slices: {r['seconds']:.1f} s, "
                      f"mean Dice {r['mean_unsupervised']:.3f} -> {r['mean']:.3f} "
                      f"(worst class {r['worst_class_change']:+.3f}), accepted {r['accepted']}; "
                      f"errors away from truth edges fixed: {r['ceiling']['unsupervised']:.3f} / "
                      f"{r['ceiling']['learned']:.3f} (edge band {r['edge_band_share']:.0%})")
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=float))
    if args.memory:
        report["memory_300x512x512"] = memory_child(args.steps)
        print("learning on 300 x 512 x 512:", report["memory_300x512x512"])
    args.json.write_text(json.dumps(report, indent=1, default=float))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
