"""Per-class Dice on the real-anatomy test bed and the false-positive burden on A0001.

Usage::

    python benchmarks/bench_testbed.py [--cases a0001-ggo cip64-mixed ...]
                                       [--methods engine density-mask] [--threads 2]
                                       [--data ../shared/data] [--json benchmarks/results/testbed.json]
                                       [--montage docs/images/testbed.png]

1. Builds the standard cases of :mod:`diffseglung_core.evaluate.testbed`
   (lesions of known extent inserted into real CT, fixed seeds).
2. Runs each method end to end on the modified scan, with its **own** lung
   mask: ``engine`` is :func:`diffseglung_core.segment.engine.segment_volume`
   with its defaults (it computes its lung mask); ``engine-no-evidence`` the
   same without the structure evidence (ablation); ``density-mask`` is the
   fixed-threshold baseline :func:`diffseglung_core.evaluate.baselines.density_mask_labels`
   on :func:`diffseglung_core.lung.compute_lung_mask` of the same scan.
3. Scores per-class Dice (:func:`diffseglung_core.evaluate.metrics.evaluate_labels`)
   on the **truth lung region** of the case (the CIP lung maps for the CIP
   scans, ``compute_lung_mask`` of the native scan for A0001), minus the
   native tissue of unknown class (``case.ignore``: dense, a tumour or thick
   hilar structures; lucent, regions below -950 HU after 2 mm smoothing over
   the lung's own voxels that may be the scan's own emphysema; hazy,
   parenchyma whose 2 mm mean reads above -700 HU, such as a tumour's halo;
   5 mm around them). Voxels of the truth lung that a method left outside its own lung
   count as label 0 (a miss). For each inserted lesion it
   reports the share of its voxels inside the method's own lung mask and the
   share labelled with the lesion's class (recall).
4. On the native A0001 scan (no fibrosis, GGO or emphysema known) it reports
   :func:`diffseglung_core.evaluate.testbed_burden.false_positive_burden` of
   each method, on the lung mask of the native scan, also outside the native
   tissue of unknown class that the test bed's scores leave out (the tumour
   and its hazy halo, with 5 mm).

Prints tables and writes JSON. ``--montage`` also writes a picture of the
cases (lung window, truth overlaid); ``--methods`` with no name only builds
and pictures the cases.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from _provenance import git_commit, uncommitted_sources  # noqa: E402

CLASSES = ("healthy", "ggo", "fibrosis", "emphysema", "consolidation")


def run_method(name: str, volume, checkpoint=None):
    """(labels, own lung mask, seconds) of a method run end to end on ``volume``."""
    t = time.perf_counter()
    if name in ("engine", "engine-no-evidence", "diffusion"):
        from diffseglung_core.segment.engine import segment_volume

        kw = {"features": "both", "checkpoint": checkpoint} if name == "diffusion" else {}
        if name == "diffusion" and checkpoint is None:
            raise SystemExit("method diffusion needs --checkpoint")
        r = segment_volume(volume, device="cpu", evidence=name != "engine-no-evidence", **kw)
        labels, lung = r.labels, r.lung > 0
    elif name == "density-mask":
        from diffseglung_core.evaluate.baselines import density_mask_labels
        from diffseglung_core.lung import compute_lung_mask

        lung = compute_lung_mask(volume.hu, volume.spacing) > 0
        labels = density_mask_labels(volume.hu, lung)
    else:
        raise ValueError(f"unknown method {name!r}")
    return np.asarray(labels), np.asarray(lung, bool), time.perf_counter() - t


def score_case(case, labels, own_lung) -> dict:
    from diffseglung_core.evaluate.metrics import dice, edge_band, evaluate_labels

    sp = case.volume.spacing
    scored = case.scored
    rows = evaluate_labels(labels, case.truth, sp, within=scored, distances=False)
    per_class = {name: r["dice"] for name, r in zip(CLASSES, rows)}
    # the same off the truth's edges: where a voxel may hold two tissues (or lung and chest wall)
    band = edge_band(case.truth, 1)
    rows = evaluate_labels(labels, case.truth, sp, within=scored & ~band, distances=False)
    off_edges = {name: r["dice"] for name, r in zip(CLASSES, rows)}
    lesions = []
    for rec in case.lesions:
        m = case.lesion_map == rec.index
        n = int(m.sum())
        lesions.append({
            "index": rec.index, "kind": rec.kind, "label": rec.label,
            "diameter_mm": rec.diameter_mm, "volume_ml": rec.volume_ml,
            "subpleural": rec.subpleural,
            "inside_own_lung": float(own_lung[m].mean()) if n else float("nan"),
            "recall": float((labels[m] == rec.label).mean()) if n else float("nan"),
            "labelled_as": ({c: float((labels[m] == i + 1).mean()) for i, c in enumerate(CLASSES)}
                            if n else {}),
        })
    return {"dice": per_class, "dice_off_edges": off_edges,
            "edge_band_share": float(band[scored].mean()) if scored.any() else float("nan"),
            "own_lung_dice": dice(own_lung, case.lung > 0),
            "scored_voxels": int(scored.sum()), "lesions": lesions}


def case_montage(cases: dict, tile: int = 200):
    """RGB montage: for each case the axial slice with most lesion voxels, plain and with its truth."""
    from PIL import Image

    from diffseglung_core.render import montage, overlay

    tiles = []
    for case in cases.values():
        counts = (case.truth > 1).sum(axis=(1, 2))
        z = int(np.argmax(counts))
        ys, xs = np.nonzero(case.lung[z] if case.lung[z].any() else np.ones(case.lung.shape[1:]))
        pad = 6
        y0, y1 = max(0, ys.min() - pad), min(case.lung.shape[1], ys.max() + pad + 1)
        x0, x1 = max(0, xs.min() - pad), min(case.lung.shape[2], xs.max() + pad + 1)
        side = max(y1 - y0, x1 - x0)
        cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
        y0, x0 = max(0, cy - side // 2), max(0, cx - side // 2)
        hu = case.volume.hu[z, y0:y0 + side, x0:x0 + side]
        lab = case.truth[z, y0:y0 + side, x0:x0 + side]
        lab = np.where(lab > 1, lab, 0)
        for img, resample in ((overlay(hu), Image.BILINEAR), (overlay(hu, lab, alpha=0.4), Image.NEAREST)):
            tiles.append(np.asarray(Image.fromarray(img).resize((tile, tile), resample)))
    return montage(tiles, columns=4)


def fmt(v) -> str:
    return "    -" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:5.2f}"


def _json_default(o):
    return o.tolist() if hasattr(o, "tolist") else str(o)


def _built(entry: dict) -> str:
    """What a case was built from, floats to float32 precision (libraries round the last bit
    of a float32 parameter differently)."""
    def rounded(v):
        if isinstance(v, float):
            return float(f"{v:.6g}")
        if isinstance(v, dict):
            return {k: rounded(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [rounded(x) for x in v]
        return v

    plain = json.loads(json.dumps([entry["seed"], entry["shape"], entry["lesions"]], default=_json_default))
    return json.dumps(rounded(plain))


def merge(old: dict, new: dict, source: str) -> dict:
    """``old`` with the cases, methods and burden rows of ``new`` added or replaced.

    A case present in both must have been built alike (same seed, lesions and
    shape); the conditions of ``old`` are kept under ``conditions.merged``.
    """
    for name, entry in new["cases"].items():
        prev = old["cases"].get(name)
        if prev is None:
            old["cases"][name] = entry
            continue
        if _built(prev) != _built(entry):
            raise SystemExit(f"--merge {source}: case {name} was built otherwise")
        prev["methods"].update(entry["methods"])
    if "a0001_false_positive_burden" in new:
        fresh = new["a0001_false_positive_burden"]
        burden = old.setdefault("a0001_false_positive_burden", {"methods": {}})
        burden.update({k: v for k, v in fresh.items() if k != "methods"})  # what the scan gives
        burden["methods"].update(fresh["methods"])
    methods = sorted({m for e in new["cases"].values() for m in e["methods"]})
    # the methods of an earlier merge that were run again on the same cases are superseded
    merged = []
    for e in old["conditions"].get("merged", []):
        if set(e["cases"]) <= set(new["cases"]):
            e = e | {"methods": [m for m in e["methods"] if m not in methods]}
        if e["methods"]:
            merged.append(e)
    merged.append({k: new["conditions"][k] for k in ("commit", "uncommitted_sources", "date", "threads",
                                                     "total_seconds")}
                  | {"methods": methods, "cases": sorted(new["cases"])})
    old["conditions"]["merged"] = merged
    old["conditions"]["methods"].update(new["conditions"]["methods"])
    return old


def main() -> None:
    from diffseglung_core.evaluate import testbed as tb

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(tb.STANDARD_CASES))
    parser.add_argument("--methods", nargs="*", default=["engine", "engine-no-evidence", "density-mask"])
    parser.add_argument("--data", default=None, help="shared real CT folder (default ../shared/data)")
    parser.add_argument("--checkpoint", default=None,
                        help="model of the method diffusion (engine with density, radiomic and "
                             "diffusion features)")
    parser.add_argument("--merge", default=None,
                        help="a --json file of an earlier run (same cases): its methods are kept "
                             "unless recomputed")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-burden", action="store_true", help="skip the A0001 false-positive burden")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "testbed.json"))
    parser.add_argument("--montage", default=None, help="write a PNG of the cases with their truth")
    args = parser.parse_args()

    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        pass

    t0 = time.perf_counter()
    cases = tb.standard_cases(args.data, args.cases)
    build_s = time.perf_counter() - t0
    if not cases:
        print(f"no test-bed scan found in {args.data or tb.default_data_dir()}")
        return
    print(f"built {len(cases)} cases in {build_s:.1f} s")
    if args.montage:
        from PIL import Image

        Path(args.montage).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(case_montage(cases)).quantize(colors=192).save(args.montage, optimize=True)
        print(f"wrote {args.montage}")
    if not args.methods:
        return
    out = {"conditions": {
        "machine": " ".join(x for x in (platform.machine(), platform.processor(),
                                        f"{os.cpu_count()} logical CPUs") if x),
        "threads": args.threads, "python": platform.python_version(), "commit": git_commit(),
        "uncommitted_sources": uncommitted_sources(),
        "date": time.strftime("%Y-%m-%d"),
        "dice_region": "truth lung of the case minus case.ignore (native dense, lucent or hazy tissue of "
                       "unknown class + 5 mm); voxels a method leaves outside its own lung count as label 0",
        "truth_lung": {"a0001": "compute_lung_mask of the native scan",
                       "cip64": "CIP wholeLung-64.nrrd", "cipcrop": "CIP partial lung label map, "
                       "the two slices matching crop_ct_2slices"},
        "methods": {"engine": "segment_volume(volume, device='cpu') with its defaults and its own "
                              "lung mask",
                    "engine-no-evidence": "the same with evidence=False (cluster names with the "
                                          "two density gates)",
                    "density-mask": "density_mask_labels on compute_lung_mask of the same scan",
                    "diffusion": f"segment_volume(volume, device='cpu', features='both', "
                                 f"checkpoint={args.checkpoint!r})"},
        "build_seconds": build_s}, "cases": {}}

    for name, case in cases.items():
        entry = {"scan": tb.STANDARD_CASES[name][0], "seed": case.seed,
                 "spacing_mm": list(case.volume.spacing), "shape": list(case.volume.shape),
                 "noise_sigma_hu": case.noise.sigma,
                 "lung_ml": float((case.lung > 0).sum() * np.prod(case.volume.spacing) / 1000.0),
                 "ignored_ml": float(case.ignore.sum() * np.prod(case.volume.spacing) / 1000.0),
                 "lesions": [r.as_dict() for r in case.lesions],
                 "skipped": [f"{s.kind} {s.diameter_mm} mm: {why}" for s, why in case.skipped],
                 "methods": {}}
        for m in args.methods:
            labels, own, secs = run_method(m, case.volume, args.checkpoint)
            res = score_case(case, labels, own)
            res["seconds"] = secs
            entry["methods"][m] = res
            print(f"{name:<22} {m:<13}" + " ".join(fmt(res["dice"][c]) for c in CLASSES)
                  + f"  lung {res['own_lung_dice']:.3f}  {secs:6.1f} s", flush=True)
        out["cases"][name] = entry

    print()
    print(f"{'case':<22} {'method':<13}" + " ".join(f"{c[:5]:>5}" for c in CLASSES) + "  (Dice)")
    for name, entry in out["cases"].items():
        for m, res in entry["methods"].items():
            print(f"{name:<22} {m:<13}" + " ".join(fmt(res["dice"][c]) for c in CLASSES))
    print()
    print(f"{'case':<22} {'lesion':<16} {'d mm':>5} {'mL':>7} {'sub':>4}"
          + "".join(f" {m[:12]:>12}:in/rec" for m in args.methods))
    for name, entry in out["cases"].items():
        for i, les in enumerate(entry["lesions"]):
            row = f"{name:<22} {les['kind']:<16} {les['diameter_mm']:5.0f} {les['volume_ml']:7.1f} " \
                  f"{'y' if les['subpleural'] else 'n':>4}"
            for m in args.methods:
                lr = entry["methods"][m]["lesions"][i]
                row += f" {lr['inside_own_lung']:12.2f}/{lr['recall']:.2f}"
            print(row)

    if not args.no_burden and any(tb.STANDARD_CASES[n][0] == "a0001" for n in cases):
        from diffseglung_core.evaluate.testbed_burden import (
            dense_structures,
            false_positive_burden,
        )

        vol, lung = tb.load_a0001(args.data)
        st = dense_structures(vol.hu, lung, vol.spacing)
        # the test bed's native tissue of unknown class: the tumour, its hazy halo, with 5 mm
        unknown = tb.unknown_tissue(vol.hu, lung, vol.spacing)
        burden = {"lung": "compute_lung_mask of the native A0001 scan", "mass_ml": float(st.mass.sum()
                  * np.prod(vol.spacing) / 1000.0), "solid_components_ml": st.component_ml,
                  "thin_dense_voxels": int(st.thin.sum()),
                  "unknown_ml": float(unknown.sum() * np.prod(vol.spacing) / 1000.0), "methods": {}}
        print()
        print("A0001 native, false-positive burden (% of lung; thin dense voxels labelled pathology;"
              " mass labelled consolidation)")
        for m in args.methods:
            labels, own, secs = run_method(m, vol, args.checkpoint)
            b = false_positive_burden(labels, lung, vol.hu, vol.spacing, structures=st, unknown=unknown)
            b["seconds"] = secs
            b["own_lung_dice"] = float(2 * (own & (lung > 0)).sum() / (own.sum() + (lung > 0).sum()))
            burden["methods"][m] = b
            p = b["percent_lung"]
            print(f"  {m:<13} GGO {p['ggo']:5.2f} %  fibrosis {p['fibrosis']:5.2f} %  emphysema "
                  f"{p['emphysema']:5.2f} %  consolidation {p['consolidation']:5.2f} %  | thin dense -> "
                  f"pathology {b['thin_dense_pathology_fraction']:.3f} (away from the mass "
                  f"{b['thin_dense_pathology_fraction_away_from_mass']:.3f}, outside unknown tissue "
                  f"{b['thin_dense_pathology_fraction_outside_unknown']:.3f})  | mass -> consolidation "
                  f"{b['mass_consolidation_fraction']:.3f} ({b['mass_ml']:.1f} mL)", flush=True)
        out["a0001_false_positive_burden"] = burden

    out["conditions"]["total_seconds"] = time.perf_counter() - t0
    if args.merge:
        out = merge(json.loads(Path(args.merge).read_text()), out, args.merge)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1, default=_json_default)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
