"""Generate docs/results.md: every method and ablation on phantoms and on the open HRCT slices.

Usage::

    python benchmarks/make_results.py [--data ../shared/data] [--seeds 20 21 22]
                                      [--checkpoint MODEL --stage1-checkpoint CKPT1
                                       --no-hu-checkpoint CKPT1_NO_HU] [--methods ...]
                                      [--out docs/results.md] [--json results.json]
                                      [--merge earlier.json | --from-json earlier.json]

Phantoms (project's synthetic chest, known ground truth, seeds not used while
the methods were written): Dice and HD95 (mm) per class, end to end: every
method segments inside the lung mask the engine computes itself
(:func:`~diffseglung_core.lung.segment_scan_lungs`), and true lung it leaves
out counts as missed; one row gives the engine on the true lung mask, for
comparison only. The real-anatomy test bed (lesions of known extent inserted
into real CT) is summarised from ``benchmarks/results/testbed.json`` (made by
``benchmarks/bench_testbed.py``). cted-open (10 subjects of the CT Emphysema Database, HRCT slices):
ROI AUC of the emphysema fraction (normal patches vs centrilobular/paraseptal
emphysema patches), pixel Dice of emphysema inside the ROIs (ROI label taken
for all its lung pixels), and Spearman rho of the slice emphysema percentage
against the visual severity score. Nothing here is tuned on these scans.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from _provenance import git_commit, uncommitted_sources  # noqa: E402
from diffseglung_core.evaluate.baselines import METHODS, density_mask_labels  # noqa: E402
from diffseglung_core.evaluate.metrics import evaluate_labels  # noqa: E402
from diffseglung_core.labels import PATHOLOGIES, Tissue  # noqa: E402

CTED_SPACING = (1.25, 0.78, 0.78)
PHANTOM_METHODS = ["engine", "no-evidence", "density-only", "no-sdf", "no-hu-preservation",
                   "kmeans-radiomics", "density-mask", "diffusion", "diffusion-alone",
                   "diffusion-one-timestep", "diffusion-no-distillation",
                   "diffusion-no-hu-preservation"]
TRUE_MASK_ROW = "engine (true lung mask)"
CTED_METHODS = PHANTOM_METHODS
#: methods run with another checkpoint than --checkpoint: method -> argument holding it
OTHER_CHECKPOINT = {"diffusion-no-distillation": "stage1_checkpoint",
                    "diffusion-no-hu-preservation": "no_hu_checkpoint"}


def checkpoints(args) -> dict:
    """The checkpoint (or None) each method runs with."""
    return {m: getattr(args, OTHER_CHECKPOINT.get(m, "checkpoint")) for m in PHANTOM_METHODS}


def run_phantoms(seeds, shape, methods, ckpt):
    from diffseglung_core.lung import segment_scan_lungs
    from diffseglung_core.phantom import make_phantom

    rows = {}
    for seed in seeds:
        ph = make_phantom(shape, seed=seed)
        t = time.perf_counter()
        own = segment_scan_lungs(ph.volume)
        mask_s = time.perf_counter() - t
        for name in methods + ([TRUE_MASK_ROW] if "engine" in methods else []):
            t = time.perf_counter()
            if name == TRUE_MASK_ROW:
                labels = METHODS["engine"](ph.volume, ph.lung)
            else:
                labels = METHODS[name](ph.volume, own, checkpoint=ckpt[name])
            if labels is None:
                continue
            if name != TRUE_MASK_ROW:
                t -= mask_s  # the mask is computed once for all methods; count it in each
            ev = evaluate_labels(labels, ph.labels, ph.volume.spacing)
            rows.setdefault(name, []).append((ev, time.perf_counter() - t))
            print(f"phantom seed {seed} {name}: " + " ".join(
                f"{r['name'][:5]} {r['dice']:.3f}" for r in ev), flush=True)
    table = {}
    for name, runs in rows.items():
        table[name] = {"seconds": float(np.mean([s for _, s in runs]))}
        for lab in range(1, 6):
            d = [ev[lab - 1]["dice"] for ev, _ in runs]
            h = [ev[lab - 1]["hd95_mm"] for ev, _ in runs]
            table[name][lab] = (float(np.nanmean(d)), float(np.nanmean(np.where(np.isinf(h), np.nan, h)))
                                if np.isfinite(h).any() else float("inf"))
    return table


def _shown(path: Path) -> str:
    """``path`` relative to the project when it lies in it."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _auc(scores, positive):
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(positive, scores))


#: cted-open patch labels.
CTED_PATCH_KINDS = {"1": "normal", "2": "centrilobular", "3": "paraseptal"}


def _without(r: dict) -> str:
    """``"a/b, c/d, e/f"``: ROIs with no emphysema label per patch kind, or "-" (older runs)."""
    none = r.get("rois_without_emphysema")
    if not none:
        return "-"
    return ", ".join(f"{none[k][0]}/{none[k][1]}" for k in CTED_PATCH_KINDS.values())


#: cted-open slice patterns (``slices.csv``): 1 is normal tissue (severity 0).
CTED_NORMAL_PATTERN = "1"


def _normal_slices(r: dict) -> str:
    """``"g / f / e / c"``: mean % of the lung labelled each pathology on the normal slices, or "-"."""
    normal = r.get("normal_slice_percent")
    if not normal:
        return "-"
    return " / ".join(f"{normal[k]:.2f}" for k in PATHOLOGIES)


def run_cted(folder: Path, methods, ckpt):
    from scipy.stats import spearmanr

    from diffseglung_core.io import read_scan
    from diffseglung_core.lung import segment_scan_lungs

    slices = list(csv.DictReader(open(folder / "slices.csv")))
    patches = list(csv.DictReader(open(folder / "patches.csv")))
    scans, lungs = {}, {}
    for row in slices:
        vol = read_scan(folder / row["file"], spacing=CTED_SPACING)
        scans[row["file"]] = vol
        lungs[row["file"]] = segment_scan_lungs(vol)
    fns = {name: (lambda v, lung, n=name: METHODS[n](v, lung, checkpoint=ckpt[n])) for name in methods}
    if "density-mask" in methods:
        fns["density-mask-910"] = lambda v, seg: density_mask_labels(v.hu, seg.labels,
                                                                     emphysema_below=-910.0)
    out = {}
    for name, fn in fns.items():
        t = time.perf_counter()
        labels = {}
        for f, vol in scans.items():
            lab = fn(vol, lungs[f])
            if lab is None:
                break
            labels[f] = lab[0]
        if len(labels) != len(scans):
            continue
        frac, pos, inter, total = [], [], 0, 0
        none = {kind: [0, 0] for kind in CTED_PATCH_KINDS.values()}  # ROIs without emphysema, ROIs
        for p in patches:
            r, c = int(p["row"]), int(p["col"])
            roi = labels[p["slice"]][r:r + 61, c:c + 61]
            inside = roi > 0
            emph = roi == Tissue.EMPHYSEMA
            frac.append(emph.sum() / max(inside.sum(), 1))
            none[CTED_PATCH_KINDS[p["label"]]][0] += int(not emph.any())
            none[CTED_PATCH_KINDS[p["label"]]][1] += 1
            is_emph = p["label"] in ("2", "3")
            pos.append(int(is_emph))
            inter += int(emph.sum()) if is_emph else 0
            total += int(emph.sum()) + (int(inside.sum()) if is_emph else 0)
        shares = {s["file"]: {k: 100.0 * float((labels[s["file"]] == v).sum())
                              / max(int((labels[s["file"]] > 0).sum()), 1) for k, v in PATHOLOGIES.items()}
                  for s in slices}
        pct = [shares[s["file"]]["emphysema"] for s in slices]
        # on the slices of normal tissue every pathology label is a false positive
        normal = [shares[s["file"]] for s in slices if s["pattern"] == CTED_NORMAL_PATTERN]
        normal_pct = {k: float(np.mean([sh[k] for sh in normal])) for k in PATHOLOGIES} if normal else None
        rho = spearmanr(pct, [int(s["severity"]) for s in slices]).statistic
        out[name] = {"roi_auc": _auc(frac, pos), "roi_pixel_dice": 2 * inter / max(total, 1),
                     "spearman": float(rho), "rois_without_emphysema": none,
                     "normal_slice_percent": normal_pct, "normal_slices": len(normal),
                     "slice_pathology_percent": shares,
                     "slice_emphysema_percent": {s["file"]: float(v) for s, v in zip(slices, pct)},
                     "roi_emphysema_percent": {p["file"]: 100.0 * float(v) for p, v in zip(patches, frac)},
                     "seconds": time.perf_counter() - t}
        print(f"cted {name}: {out[name]}", flush=True)
    return out, len(slices), len(patches), len({s["subject"] for s in slices})


def _fmt(v, nd=3):
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "-"
    if isinstance(v, float) and np.isinf(v):
        return "inf"
    return f"{v:.{nd}f}"


def _cted_verdict(res) -> list:
    """One honest paragraph: does the engine beat the density mask on each figure?"""
    eng, dm = res.get("engine"), res.get("density-mask")
    if not eng or not dm:
        return []
    parts = []
    for key, name in (("roi_auc", "ROI AUC"), ("roi_pixel_dice", "ROI pixel Dice"),
                      ("spearman", "slice Spearman")):
        best = max(dm[key], res.get("density-mask-910", dm)[key])
        verdict = "beats" if eng[key] > best else "does NOT beat"
        parts.append(f"{name}: engine {eng[key]:.3f} {verdict} the density mask ({best:.3f})")
    return ["On this subset: " + "; ".join(parts) + ". The ROI pixel Dice counts every lung "
            "pixel of an emphysema ROI as emphysema, which no method reaches (emphysema ROIs "
            "also hold normal tissue); the density mask's low pixel Dice with a high AUC shows "
            "the two figures measure different things.", ""]


#: What the slices of covid-ny-sbu-open show (read on the slices, lung window).
COVID_SLICES = {
    "A002304_19001231-076.dcm": "perihilar ground glass and reticular opacities, more on the "
                                "right",
    "A002304_19010112-135.dcm": "right lung mostly ground glass and consolidation",
    "A027284_19000925-116.dcm": "upper abdomen, below the lungs",
    "A027284_19001231-131.dcm": "upper abdomen, below the lungs",
    "A056642_19001229-053.dcm": "bilateral consolidation; a consolidated band with a round "
                                "lesion cuts the right lung in two",
    "A056642_19010107-111.dcm": "patchy ground glass and consolidation of both lower lobes",
    "A067967_19001006-028.dcm": "lung bases: thin crescents over the liver and the stomach",
    "A067967_19001231-270.dcm": "lung bases: thin crescents over the liver and the stomach",
    "A098752_19001231-32.dcm": "the liver's dome in the right chest; mostly clear lungs, a "
                               "subpleural opacity of the right lower lobe",
    "A098752_19010127-128.dcm": "the liver's dome in the right chest; consolidation of the "
                                "posterior right lower lobe, ground glass in the left lung",
}


def _covid_section(paths: list) -> list:
    """What the engine labels on the COVID-19 slices: ``paths`` of bench_covid_slices.py runs,
    the current one first."""
    paths = [Path(p) for p in paths if Path(p).is_file()]
    if not paths:
        return []
    runs = [json.loads(p.read_text()) for p in paths]
    classes = ("ggo", "fibrosis", "emphysema", "consolidation")
    lines = ["## covid-ny-sbu-open (real COVID-19 slices, no pixel labels)", "",
             "From " + ", ".join(f"`{_shown(p)}`" for p in paths)
             + " (`python benchmarks/bench_covid_slices.py`; "
             + "; ".join(f"commit {r['commit']}, {r['date']}" + (f" ({r['note']})" if r.get("note") else "")
                         for r in runs)
             + "): one DICOM slice each, the default engine with its own lung mask. No pixel "
             "labels: each class's share of the lung (%), to be read with what the slice shows. "
             f"Cells give the run of commit {runs[0]['commit']} and, in brackets where it differs, "
             f"the oldest run's (commit {runs[-1]['commit']}); the runs between are in their JSON.", "",
             "| slice | what it shows | thickness | lung / body | " + " | ".join(classes) + " |",
             "| --- |" + " --- |" * (len(classes) + 3)]

    def now_and_then(values) -> str:
        now, then = values[0], values[-1]
        return now if then == now else f"{now} ({then})"

    for name, row in runs[0]["slices"].items():
        cells = [f"{row['thickness_mm']:g} mm"]
        rs = [r["slices"].get(name, {}) for r in runs]
        if "no_lung" in row:
            cells += [now_and_then(["no lung" if "no_lung" in r else "lung" for r in rs])]
            cells += ["-"] * len(classes)
        else:
            cells.append(now_and_then([_fmt(100 * r.get("lung_share_of_body", float("nan")), 1)
                                       for r in rs]))
            cells += [now_and_then([_fmt(r.get("percent_lung", {}).get(c, float("nan")), 1) for r in rs])
                      for c in classes]
        lines.append(f"| {name[:-4]} | {COVID_SLICES.get(name, '')} | " + " | ".join(cells) + " |")
    figure = ROOT / "docs" / "images" / "covid_labels.png"
    if figure.is_file():
        lines += ["", "The pathology labels of four of these slices with the sources of the run of "
                  f"{runs[0]['commit']} (`python docs/make_covid_figure.py`; yellow GGO, magenta fibrosis, "
                  "blue emphysema, red consolidation): "
                  "![COVID-19 slices and their labels](images/covid_labels.png)"]
    return lines + [""]


def _rerun_note(run: dict, cases) -> str:
    """'; METHODS run again on DATE at commit C [on CASES]' for a run merged into the test bed's JSON."""
    note = f"; {', '.join(run['methods'])} run again on {run['date']} at commit {run['commit'][:10]}"
    if set(run.get("cases", cases)) >= set(cases):
        return note
    burden = " and the A0001 burden" if any(c.startswith("a0001") for c in run["cases"]) else ""
    return note + f" on {', '.join(run['cases'])}{burden}"


def _testbed_section(path: Path) -> list:
    """Per-class Dice on the real-anatomy test bed and the A0001 false-positive burden."""
    if not path.is_file():
        return []
    path = Path(path).resolve()
    tb = json.loads(path.read_text())
    classes = ("healthy", "ggo", "fibrosis", "emphysema", "consolidation")
    cond = tb["conditions"]
    methods = list(cond["methods"])
    lines = ["## Real-anatomy test bed", "",
             f"From `{_shown(path)}` (`python benchmarks/bench_testbed.py`, "
             f"{cond.get('date', '')}, commit {cond.get('commit', '')[:10]}"
             + "".join(_rerun_note(r, tb["cases"]) for r in cond.get("merged", []))
             + "): lesions of known "
             "extent inserted into the real CT of `../shared/data` (see docs/testbed.md). Each "
             "method runs end to end with its own lung mask; Dice on the truth lung "
             f"({cond['dice_region']}). Mean Dice over the cases that hold the class:", "",
             "| method | " + " | ".join(classes) + " | pathology mean |",
             "| --- |" + " --- |" * 6]
    def holds(case, label):
        return label == 1 or any(les["label"] == label for les in case["lesions"])

    def class_means(m, key):
        means = {}
        for i, c in enumerate(classes):
            vals = [case["methods"][m][key][c] for case in tb["cases"].values()
                    if key in case["methods"].get(m, {}) and holds(case, i + 1)]
            means[c] = float(np.mean(vals)) if vals else float("nan")
        return means, float(np.nanmean([means[c] for c in classes[1:]]))

    for m in methods:
        means, path_mean = class_means(m, "dice")
        lines.append(f"| {m} | " + " | ".join(_fmt(means[c]) for c in classes)
                     + f" | {_fmt(path_mean)} |")
    off = [(m, *class_means(m, "dice_off_edges")) for m in methods
           if any("dice_off_edges" in case["methods"].get(m, {}) for case in tb["cases"].values())]
    if off:
        shares = [case["methods"][off[0][0]]["edge_band_share"] for case in tb["cases"].values()
                  if "edge_band_share" in case["methods"].get(off[0][0], {})]
        lines += ["", "The same off the truth's edges (the voxels within one voxel, in-plane, of a voxel "
                  "of another truth label or of the lung's border left out: "
                  f"`evaluate.metrics.edge_band`; {min(shares):.0%}-{max(shares):.0%} of the scored "
                  "voxels of a case): a class that scores far higher here loses its Dice at the "
                  "lesions' edges, where a voxel holds two tissues, one that does not loses whole "
                  "regions.", "",
                  "| method | " + " | ".join(classes) + " | pathology mean |", "| --- |" + " --- |" * 6]
        lines += [f"| {m} | " + " | ".join(_fmt(means[c]) for c in classes) + f" | {_fmt(pm)} |"
                  for m, means, pm in off]
    lines += ["", "Per case (Dice of the classes it holds):", "",
              "| case | " + " | ".join(methods) + " |", "| --- |" + " --- |" * len(methods)]
    for name, case in tb["cases"].items():
        held = sorted({les["label"] for les in case["lesions"]})
        cells = []
        for m in methods:
            d = case["methods"].get(m, {}).get("dice", {})
            cells.append(", ".join(f"{classes[i - 1]} {_fmt(d.get(classes[i - 1]), 2)}" for i in held))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    burden = tb.get("a0001_false_positive_burden", {}).get("methods", {})
    if burden:
        lines += ["", "False-positive burden on the native A0001 scan (no fibrosis, GGO or emphysema "
                  "known; a lung-cancer mass located by density and size):", "",
                  "| method | GGO % | fibrosis % | emphysema % | the three away from the mass % | "
                  "the three outside unknown tissue % | "
                  "thin vessel-like voxels called pathology (away from the mass; outside unknown tissue) | "
                  "mass called consolidation |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]

        def three(shares):
            return sum(shares[k] for k in ("ggo", "fibrosis", "emphysema")) if shares else None

        for m, b in burden.items():
            pct = b["percent_lung"]
            lines.append(f"| {m} | {_fmt(pct['ggo'], 2)} | {_fmt(pct['fibrosis'], 2)} | "
                         f"{_fmt(pct['emphysema'], 2)} | "
                         f"{_fmt(three(b['percent_lung_away_from_mass']), 2)} | "
                         f"{_fmt(three(b.get('percent_lung_outside_unknown')), 2)} | "
                         f"{_fmt(b['thin_dense_pathology_fraction'])} "
                         f"({_fmt(b.get('thin_dense_pathology_fraction_away_from_mass'))}; "
                         f"{_fmt(b.get('thin_dense_pathology_fraction_outside_unknown'))}) | "
                         f"{_fmt(b['mass_consolidation_fraction'])} |")
        if "unknown_ml" in tb["a0001_false_positive_burden"]:
            lines += ["", "Unknown tissue: the native tissue of unknown class that the test bed's scores "
                      "leave out (the tumour and its hazy halo, with 5 mm; "
                      f"{tb['a0001_false_positive_burden']['unknown_ml']:.0f} mL)."]
    return lines + [""]


def _phantom_cases_section(paths: list) -> list:
    """The engine end to end on the phantom's disease cases (white lung, effusions, masses).

    ``paths``: JSON files of ``bench_phantom_cases.py``, the current run first, earlier
    runs (other commits) after it for comparison.
    """
    paths = [Path(p).resolve() for p in paths if Path(p).is_file()]
    if not paths:
        return []
    runs = [json.loads(p.read_text()) for p in paths]
    cond = runs[0]["conditions"]
    classes = ("healthy", "ggo", "fibrosis", "emphysema", "consolidation")
    lines = ["## Phantom disease cases", "",
             "From " + ", ".join(f"`{_shown(p)}`" for p in paths)
             + f" (`python benchmarks/bench_phantom_cases.py`; phantom "
             f"{' x '.join(map(str, cond['shape']))}, seeds {', '.join(map(str, cond['seeds']))}): "
             f"{cond['method']}; mean Dice per class against the phantom's truth (- where the case "
             f"has none), and the lung mask's Dice, in the run of {_run_name(runs[0])}; earlier runs "
             "below. What each case puts in the lungs: `diffseglung_core.phantom.cases`.", "",
             "| case | " + " | ".join(classes) + " | lung mask |", "| --- |" + " --- |" * 6]
    for name, case in runs[0]["cases"].items():
        d = case["mean_dice"]
        cells = ["-" if not np.isfinite(d[c]) else _fmt(d[c]) for c in classes]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {_fmt(case['mean_lung_dice'])} |")
    for name, case in runs[0]["cases"].items():
        air = case.get("mean_free_air_labelled")
        if air:
            lines += ["", f"{name}: of the free pleural air (no lung, not scored above), "
                      f"{_fmt(air['outside'])} is left out of the lung, "
                      + ", ".join(f"{_fmt(v)} labelled {k}" for k, v in air.items()
                                  if k != "outside" and v > 0) + "."]
    lines += [""] + _edges_table(runs[0], classes)
    names = list(runs[0]["cases"])
    lines += ["Every run, newest first: the mean of each case's Dice over the classes it holds "
              "(healthy included).", "",
              "| run | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for run in runs:
        cells = []
        for name in names:
            case = run["cases"].get(name)
            vals = [] if case is None else [v for v in case["mean_dice"].values() if np.isfinite(v)]
            cells.append(_fmt(float(np.mean(vals))) if vals else "-")
        lines.append(f"| {_run_name(run)} | " + " | ".join(cells) + " |")
    return lines + [""]


def _run_name(run: dict) -> str:
    return f"{run['conditions']['commit'][:10]} ({run['conditions']['date']})"


def _edges_table(run: dict, classes) -> list:
    """Dice, Dice off the truth's edges and surface Dice of one ``bench_phantom_cases.py`` run
    (none in runs before they were recorded)."""
    cases = {k: v for k, v in run["cases"].items() if "mean_dice_off_edges" in v}
    if not cases:
        return []
    first = next(iter(cases.values()))
    lines = [f"What the Dice counts wrong, in the run of {_run_name(run)}: each cell "
             "gives the Dice / the Dice off the truth's edges / the surface Dice, means over the seeds. "
             "Off the edges: the voxels within one voxel (in-plane, diagonals included) of a voxel of "
             "another truth label, 0 (outside the lung) included, are left out "
             f"(`evaluate.metrics.edge_band`; {first['edge_band_share']:.0%} of the true lung of the "
             "first case): there a voxel of the phantom holds two tissues, so a class that scores far "
             "higher off the edges loses its Dice at its boundaries, one that does not loses whole "
             "regions. Surface Dice (Nikolov et al. 2021; `evaluate.metrics.surface_dice`): the share "
             "of the result's and the truth's boundaries within "
             f"{first['tolerance_mm']:.2f} mm (one in-plane voxel) of the other's. Last column: the "
             "lung mask's Dice / -, its surface Dice.", "",
             "| case | " + " | ".join(classes) + " | lung mask |", "| --- |" + " --- |" * 6]
    for name, case in cases.items():
        d, o, sd = case["mean_dice"], case["mean_dice_off_edges"], case["mean_surface_dice"]
        cells = ["-" if not np.isfinite(d[c]) else f"{_fmt(d[c])} / {_fmt(o[c])} / {_fmt(sd[c])}"
                 for c in classes]
        lines.append(f"| {name} | " + " | ".join(cells)
                     + f" | {_fmt(case['mean_lung_dice'])} / - / {_fmt(case['mean_lung_surface_dice'])} |")
    return lines + [""]


def _spread_section(path: Path) -> list:
    """How far the engine's figures move with the seed of its Gaussian mixture alone."""
    if not path.is_file():
        return []
    path = Path(path).resolve()
    sp = json.loads(path.read_text())
    cond, per_seed = sp["conditions"], sp["per_seed"]
    seeds = [str(s) for s in cond["gmm_seeds"]]

    def across(keys) -> tuple:
        # per GMM seed, the mean over ``keys``; then the seeds' mean, lowest and highest
        vals = [float(np.mean([per_seed[k][s] for k in keys])) for s in seeds]
        return float(np.mean(vals)), min(vals), max(vals)

    rows = []
    for prefix, name in (("phantom", "phantoms, {} Dice"),
                         ("test bed", "test bed, {} Dice (mean over the cases that hold it)")):
        for c in ("healthy", "ggo", "fibrosis", "emphysema", "consolidation"):
            keys = [k for k in per_seed if k.startswith(prefix) and k.endswith(f"/ {c}")]
            if keys:
                rows.append((name.format(c), across(keys)))
    rows += [(k, across([k])) for k in per_seed if k.startswith("A0001")]
    lines = ["## Spread over the seed of the Gaussian mixture", "",
             f"From `{_shown(path)}` (`python benchmarks/bench_seed_spread.py`, {cond['date']}, "
             f"commit {cond['commit']}): the default engine, its own lung mask, run with GMM seeds "
             f"{cond['gmm_seeds']} on the same scans (the seed draws the mixture's subsample and "
             f"starts, nothing else). Phantoms: seeds {cond['phantom_seeds']}, "
             f"{tuple(cond['shape'])}. The tables above use seed 0; a change smaller than the range "
             "below is within the noise of the clustering.", "",
             "| figure | mean | lowest | highest |", "| --- | --- | --- | --- |"]
    lines += [f"| {name} | {_fmt(m)} | {_fmt(lo)} | {_fmt(hi)} |" for name, (m, lo, hi) in rows]
    return lines + [""]


def _runs_line(args, table: str) -> str:
    """Which rows of ``table`` ("phantom" or "cted") were computed at which commit."""
    runs = [r for r in getattr(args, "runs", []) if r.get(table)]
    if not runs:
        return "Commit of the rows: not recorded."
    return "Rows computed " + "; ".join(
        ("in an earlier run (commit not recorded)" if r["commit"] == "not recorded"
         else f"at commit {r['commit']}") + (f" ({r['date']})" if r.get("date") else "")
        + (" with uncommitted changes to " + ", ".join(r["uncommitted_sources"])
           if r.get("uncommitted_sources") else "") + ": " + ", ".join(r[table])
        for r in runs) + "."


def write_markdown(path: Path, phantom, cted, args) -> None:
    names = {1: "healthy", 2: "GGO", 3: "fibrosis", 4: "emphysema", 5: "consolidation"}
    paper = {1: 89, 2: 84, 3: 86, 4: 76}
    lines = ["# Results", "",
             "Generated by `python benchmarks/make_results.py` (do not edit by hand). "
             "Timings were taken on a shared 2-core CPU under load.", ""]
    lines += ["## Methods", "",
              "| name | what |", "| --- | --- |",
              "| engine | default weight-free engine: density + radiomic voxel features, diagonal GMM "
              "(K=8, 3 starts), HU-guided assignment, structure evidence over cluster names "
              "(solid components, vessels, emphysema regions, walls), Sobel-Diffusion Fusion |",
              "| no-evidence | ablation: engine with cluster names and two density gates only "
              "(no structure evidence) |",
              "| engine (true lung mask) | the engine inside the phantom's true lung mask: not end "
              "to end, for comparison only |",
              "| density-only | engine on density features only (local HU mean/std at 3 and 9 mm) |",
              "| no-sdf | ablation: engine without Sobel-Diffusion Fusion (argmax of label posteriors) |",
              "| no-hu-preservation | not the paper's ablation: the lung HU of each scan are "
              "standardised (median to -850 HU, interquartile range to 100 HU) and then the "
              "absolute-HU naming rules are applied, so emphysema (< -950 HU) and consolidation "
              "are 0 by construction; the paper's ablation is diffusion-no-hu-preservation |",
              "| kmeans-radiomics | baseline: K-means (K=8) on radiomic + density features, same "
              "HU-guided naming, no refinement |",
              "| density-mask | baseline: fixed thresholds (< -950 emphysema, < -700 healthy, "
              "< -250 GGO, else consolidation; no fibrosis) |",
              "| density-mask-910 | the same with -910 HU for emphysema (cted-open only) |",
              "| diffusion / diffusion-one-timestep | density + radiomics + the trained model's "
              "diffusion features (student embedding at timesteps 50, 150, 300 / 150 only) |",
              "| diffusion-alone | density + the trained model's diffusion features (no radiomic "
              "maps), same GMM, naming and evidence |",
              "| diffusion-no-distillation | diffusion, with the model after stage 1 (raw "
              "bottleneck features, no radiomic distillation) |",
              "| diffusion-no-hu-preservation | the paper's ablation: diffusion-no-distillation "
              "with a stage-1 model trained on patches rescaled to [-1, 1] each "
              "(`DiffusionConfig(hu_preserving=False)`), same data and steps |", ""]
    models = {k: v for k, v in _checkpoint_names(args).items() if v}
    if models:
        lines += ["Models of the diffusion rows: " + ", ".join(f"{k.replace('_', ' ')} `{v}`"
                                                             for k, v in models.items())
                  + " (see docs/model_card.md).", ""]
    if phantom:
        lines += [f"## Phantoms (seeds {list(args.seeds)}, shape {tuple(args.shape)})", "",
                  "Dice (HD95 mm) per class, mean over seeds, over the whole scan: every method "
                  "uses the lung mask it computes itself (true lung it leaves out counts as "
                  "missed), except the row marked true lung mask. Paper (real scans, 190 slices): "
                  "healthy 89, GGO 84, fibrosis 86, emphysema 76 (Dice %).", ""]
        lines += [_runs_line(args, "phantom"), ""]
        lines += ["| method | " + " | ".join(names.values()) + " | s/scan |",
                  "| --- |" + " --- |" * 6]
        for m, row in phantom.items():
            cells = [f"{_fmt(row[c][0])} ({_fmt(row[c][1], 1)})" for c in range(1, 6)]
            lines.append(f"| {m} | " + " | ".join(cells) + f" | {row['seconds']:.1f} |")
        eng = phantom.get("engine")
        if eng:
            missed = [f"{names[c]} {100 * eng[c][0]:.0f} vs {paper[c]}" for c in paper
                      if 100 * eng[c][0] < paper[c]]
            lines += ["", "Engine below the paper's Dice: " + (", ".join(missed) if missed else "none") + "."]
        lines.append("")
    lines += _phantom_cases_section(args.phantom_cases)
    lines += _testbed_section(args.testbed)
    lines += _covid_section(args.covid_slices)
    lines += _spread_section(args.seed_spread)
    if cted:
        res, n_sl, n_p, n_sub = cted
        n_normal = max((r.get("normal_slices", 0) for r in res.values()), default=0)
        lines += [f"## cted-open ({n_sub} subjects, {n_sl} HRCT slices, {n_p} ROI patches)", "",
                  "Figures to beat (density mask on the FULL database, 39 subjects, 168 patches, "
                  "115 slices): ROI AUC 0.951 (-950 HU) / 0.981 (-910 HU); slice Spearman 0.569. "
                  "The density-mask rows below are the same rules on our 10-subject subset, "
                  "the fair comparison. Every method runs in the lung mask the engine computes "
                  "itself (`segment_scan_lungs`: parenchyma told from gas against the slice's own "
                  "air). The density-mask rows read the HU as stored; the engine calibrates them "
                  "by the air of each slice, outside the body and in the trachea, which reads about "
                  "75 HU above -1000 HU here (the offset `diffseglung segment` prints with LAA-950), "
                  "so the density mask's -950 / -910 HU lie near -1025 / -985 HU on calibrated "
                  "values.", "", _runs_line(args, "cted"), "",
                  f"The normal-slice column: over the {n_normal} slices whose dominant pattern is "
                  "normal tissue (this database reports no GGO, fibrosis or consolidation), the "
                  "mean % of the lung labelled GGO / fibrosis / emphysema / consolidation: false "
                  "positives on real normal lung (each slice's shares: `slice_pathology_percent`).",
                  "",
                  "| method | ROI AUC | ROI pixel Dice | slice Spearman | ROIs with no emphysema "
                  "(normal, centrilobular, paraseptal) | normal slices: % GGO / fib / emph / cons "
                  "| s (all slices) |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for m, r in res.items():
            lines.append(f"| {m} | {_fmt(r['roi_auc'])} | {_fmt(r['roi_pixel_dice'])} | "
                         f"{_fmt(r['spearman'])} | {_without(r)} | {_normal_slices(r)} | "
                         f"{r['seconds']:.1f} |")
        lines.append("")
        lines += _cted_verdict(res)
    lines += ["## Parameters", "",
              "* Features: voxel HU smoothed by a 1 mm Gaussian; masked local mean and standard "
              "deviation of the lung HU in boxes of 3 mm and 9 mm (at least 3 voxels in-plane); "
              "radiomic voxel maps (34 features, ~7 mm windows, grid stride grown until at most "
              "6000 windows, trilinear to voxels, PCA to 8 whitened components, weighted to half the "
              "density block).",
              "* GMM: diagonal covariance, K=8, 3 k-means++ starts, EM on at most 200,000 voxels, "
              "tol 1e-3 mean log-likelihood.",
              "* Assignment (calibrated HU = HU - offset measured on the air around the patient inside "
              "the field of view, padding excluded; applied only when the air clearly reads off "
              "-1000 HU by 6..100 HU): "
              "emphysema if mean < -880 and LAA-950 >= 25 %, or LAA-950 >= 60 %; healthy up to the "
              "healthy mode + 110 HU (kept in -725..-600); GGO up to -250; consolidation above; "
              "fibrosis for textured clusters (local std >= 130 HU and >= 2x healthy) between "
              "healthy boundary - 50 and -200. Mixed clusters (IQR > 250 HU) are labelled voxel by "
              "voxel.",
              "* Structure evidence (engine; `segment/evidence.py` with `solids.py`, `low_attenuation.py` "
              "and `parenchyma.py`, `assign.evidence_gates`): dense "
              "structures are smoothed HU > -500; thick ones survive an opening by a 3 mm ball (no smaller "
              "than the in-plane voxel); their airless parts are the regions above -300 HU that survive "
              "the same opening, with their edge (1.5 mm, and at least the next voxel along each axis: the "
              "next slice of a thick stack; since e3debff: before, a whole thick component at least half "
              "above -300 HU was airless, its ground-glass halo included); airless "
              "components of at least 0.3 mL (one through every slice of a thinner stack: none when no more "
              "than 12 mm thick in its slices and over 3 mm from the costal pleura, a vessel; none when no "
              "more than 20 mm thick and wholly 30 mm or more below the costal surface, a hilar artery cut "
              "across: since 0d15da8, or 20 mm or more below it and joining the soft tissue of the hilum, "
              "a lobar artery leaving it: since a12d708; in a volume, none when no more than 20 mm "
              "thick, wholly 30 mm or more below the costal surface and with mean tube measure >= 0.25, "
              "a hilar artery: since 5956349; over 12 mm "
              "thick and not joined to dense structure that reaches the tissue around the lung, as a ball "
              "as wide as its largest cross-section) that are "
              "not elongated tubes "
              "(principal axes >= 2.5, in their slices for one through every slice of a thinner stack "
              "since 345714f; core tube measure >= 0.6), not vessel trees (mean tube measure >= "
              "0.25 and less than 40 % of their convex hull; their parts surviving an opening by a 6 mm ball"
              " stay, but for pieces of it that are elongated tubes themselves or central arteries: "
              "principal axes >= 2.5, mean tube measure >= 0.25, no more than 20 mm thick, lying "
              "mostly (median) 30 mm or more below the costal surface: since 9b10a25), not vessels "
              "joining consolidation (in a component filling less than 40 % of its convex hull, the "
              "parts that do not survive that opening with mean tube measure > 0.25, and pieces of the "
              "opening that are elongated tubes, vessel trees (since 3871f60) or central arteries "
              "(since 9b10a25) themselves), not the thickest stretch "
              "of a vessel (a component that does not run through every slice of the stack, with mean "
              "tube measure >= 0.25, which tissue above -300 HU leaves in at least two branches whose "
              "second thickest, 5-10 mm from it, is at least half as thick (largest distance to its "
              "edge) as the component: a vessel cut across or obliquely: since 2b75711), not a "
              "one-slice sheet over tissue across the slice, not laced with walls (the "
              "median over their voxels of the 3 mm Gaussian share of thin structures below 0.2: a net "
              "that partial volume thickened) and not contrast-filled blood (at least half of their "
              "voxels above -100 HU reading 150 HU or more: vessels, since fd427f9) are solid "
              "(consolidation); thin"
              " dense voxels with tube measure > 0.25 (in a stack thinner than 6 mm, where a vessel lying in "
              "it reads as a plate, also those with a core above -300 HU more than 2 mm wide in their "
              "slice (in a thicker stack its contrast above the aerated lung scaled by 2 mm over the "
              "stack's thickness, partial volume, and at least -500 HU), and their edge within 1 mm) "
              "and vessel trees are vessels (healthy unless the "
              "parenchyma around is dense); parenchymal density is the 3 mm Gaussian mean of the lung with "
              "dense structures (but dense ground glass) and the edges of those above -400 HU (as far as "
              "the edge of an airless part: since e3debff, before only in-plane on a thick stack) left "
              "out, read one slice further into the lung where the slice below or above is tissue (partial "
              "volume with the diaphragm or the heart), against the healthy level (histogram peak, "
              "partial-volume rim left out) of the slice in 15 mm bands from the front, no band's level "
              "more than 60 HU plus 1 HU per mm (city-block, over bands and slices) above any other's "
              "(ground glass filling whole bands); GGO needs it 120 HU "
              "above that level (250 HU: GGO whatever the cluster; so is a voxel that itself reads "
              "120 HU above it in such parenchyma, in a volume whose in-plane voxels are at most "
              "1.5 mm: since 4088e31, outside the edges left out of the parenchyma: since 767496b); "
              "emphysema regions: share of parenchyma "
              "below -950 HU (image smoothed in-plane by 0.5 mm; the dark halo of a sharp kernel along the "
              "lung's edge left out: the 1 mm bands by in-plane distance from tissue outside the lung, up to "
              "4 mm, whose low-attenuation share is at least twice, and 0.05 above, that of the band from 4 "
              "to 8 mm, in a run from the first band past the border's own voxel (since 4294984: before, "
              "any such band, so a row of subpleural lucencies behind normal lung was a halo), and the air "
              "of bronchi cut across left out: per slice, regions below -950 HU at "
              "least 2 mm across, dense within 2.5 mm of at least 80 % of their edge, no other such region "
              "within 4 mm, more than 10 mm below the costal pleura) within a 4 mm Gaussian above max(noise "
              "baseline + max(4 sd, 0.15), 0.15) (sd: binomial over the Gaussian's voxels; in slices "
              "thicker than 1.5 mm also within a 2 mm Gaussian with its own sd: since 824fc1a), at least "
              "0.1 mL, bronchus-like tubes (at most 8 mm wide, "
              "3 times longer than wide, more than 10 mm below the costal pleura: since 4294984, a narrow "
              "row of lucencies along the pleura is paraseptal emphysema) out (a region through every "
              "slice of a thinner stack: its volume "
              "as a ball as wide as its largest cross-section, its width in its slices), each kept to its"
              " own low-attenuation voxels (in slices up to 1.5 mm thick, which resolve the holes: since "
              "5119d6c) or those and the voxels with a share above 0.3 (thicker slices, where partial "
              "volume blurs holes and lung together), and with either the voxels next to the region "
              "(in-plane; along z too in slices up to 1.5 mm) that read past halfway from the slice's "
              "healthy level to -1000 HU (its edge, partial volume: since e4ca88d); in slices up to 1.5 mm "
              "thick where the slice's "
              "healthy level is -910 HU or lighter, a lucency below -980 HU at least 2 mm across (an "
              "opening by a 1 mm disk; not a bronchus lumen, the kernel's halo or airway-shaped) is "
              "emphysema by itself with its voxels below -950 HU within 1 mm (since d3294d5); in slices "
              "up to 1.5 mm "
              "thick, a region lying mostly where the slice's healthy level is darker than -910 HU keeps "
              "all of it when at least 3 % of it reads below -980 HU in lucencies at least 2 mm across "
              "(an opening by a 1 mm disk), otherwise only where that share within a 4 mm Gaussian is at "
              "least 3 % and 4 binomial sd above the region's own; fibrosis needs a net of walls "
              "(share of thin non-tubular voxels, those within 3.5 mm of a bronchus lumen cut across "
              "or of the airway tree the lung mask tracked left out, "
              ">= 0.10 at the costal or diaphragmatic pleura, 0.20 from 30 mm deep, "
              "depth measured from the axial convex hull of both lungs and from the lung's lowest "
              "surface in each column, so the hila lie deep; or, on grids "
              "coarser than 1.5 mm in-plane that do not resolve the walls, thin share "
              ">= 1.5x that with texture (local sd over a Gaussian of 1.5 mm, at least half a voxel) "
              ">= 4x the noise, and on such grids walls and honeycomb cysts only within 30 mm of "
              "the pleura (deeper, towards the hila, bronchi and vessels crowd and read as a net: "
              "such lung is healthy); on grids "
              "coarser than 3 mm, which do not resolve the net's cells, "
              "its thin voxels but vessels are fibrosis too; the walls running in more than one direction: "
              "in-plane orientation coherence of their structure tensor over a 5 mm Gaussian below 0.6); "
              "parenchyma 120 HU above the healthy level "
              "within 10 mm of the lung's border in its slice, behind the lung's centre, and not in the "
              "opening of such parenchyma by a 4 mm ball (a band thinner than 8 mm under the posterior "
              "pleura) is dependent density, and a connected region of such parenchyma (anywhere) with "
              "at least "
              "half its voxels where the slice above or below is tissue outside the lung (over the dome of "
              "the heart or the diaphragm) is partial volume; both are healthy unless they hold a net of "
              "walls. Patterns of regions, last: ground glass where fibrosis is at least a third of the "
              "GGO and fibrosis within a 10 mm Gaussian is fibrosis, and so are the dense voxels of a "
              "connected part of the dependent band that is at least a third fibrosis; then a region of "
              "fibrosis smaller than a lobule takes the nearest other label and the cells of the "
              "remaining nets are fibrosis (below). Without evidence "
              "(the no-evidence row) the old "
              "voxel gates apply: emphysema needs smoothed HU < -910; GGO/fibrosis/consolidation voxels in a"
              " 9 mm neighbourhood lighter than the healthy boundary are healthy.",
              "* Sobel-Diffusion Fusion: Sobel of the 0.7 mm-smoothed HU in HU/mm; conductance "
              "1/(1+(G/kappa)^2), kappa = 3 x median lung gradient (>= 20 HU/mm); 4 explicit "
              "steps of 1/6, face weights (min spacing / spacing)^2, no flux out of the lung; "
              "with structure evidence, emphysema regions are kept as they are (neither eroded nor "
              "grown, nor removed when small); components under 20 mm^3 take the nearest other "
              "label (with structure evidence: those of the other classes, never emphysema).",
              "* Region patterns (with structure evidence; `segment/patterns.py`): a GGO voxel where "
              "fibrosis is at least a third of the GGO or fibrosis voxels within a 10 mm Gaussian (read "
              "on 2.5 mm blocks) is fibrosis; then a region of fibrosis (26-connected after a closing by "
              "a 2.5 mm ball) smaller than a 10 mm cube (the smallest secondary lobule; in a stack "
              "thinner than 10 mm, 100 mm^2 times its depth) takes the nearest other label; then healthy "
              "voxels within the closing of the fibrosis by a 10 mm box (the cells of a net, honeycomb "
              "cysts) are fibrosis.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def _checkpoint_names(args) -> dict:
    return {k: getattr(args, k) for k in ("checkpoint", *OTHER_CHECKPOINT.values())}


def _runs_kept(saved: dict, newer: dict) -> list:
    """The runs recorded in ``saved``, without the rows ``newer`` (table -> methods) replaces.

    A run is ``{"commit", "date", "uncommitted_sources", "phantom": [...], "cted": [...]}``; a
    file without runs, or with the older single ``methods`` list, counts as one earlier run.
    """
    tables = {"phantom": set(saved.get("phantom") or {}), "cted": set((saved.get("cted") or [{}])[0])}
    runs = saved.get("runs") or [{"commit": "not recorded", "date": ""}]
    kept = []
    for r in runs:
        listed = {t: r.get(t, r.get("methods", sorted(tables[t]))) for t in tables}
        rows = {t: [m for m in listed[t] if m in tables[t] and m not in newer[t]] for t in tables}
        if any(rows.values()):
            kept.append({**{k: v for k, v in r.items() if k != "methods"}, **rows})
    return kept


def merge(saved: dict, phantom, cted, args):
    """Rows of an earlier ``--json`` run, updated with the rows computed now (same seeds and shape)."""
    newer = {"phantom": set(phantom or {}), "cted": set(cted[0] if cted else {})}
    args.runs = _runs_kept(saved, newer) + list(getattr(args, "runs", []))
    if phantom is not None and (list(saved["seeds"]), list(saved["shape"])) != (list(args.seeds),
                                                                              list(args.shape)):
        raise SystemExit(f"--merge: {saved['seeds']} {saved['shape']} are other phantoms")
    args.seeds, args.shape = saved["seeds"], saved["shape"]
    for key, name in saved.get("checkpoints", {}).items():
        if getattr(args, key) is None:
            setattr(args, key, name)
    rows = {m: {(int(k) if k.isdigit() else k): v for k, v in r.items()}
            for m, r in saved["phantom"].items()}
    rows.update(phantom or {})
    old = saved.get("cted")
    if old and cted:
        cted = ({**old[0], **cted[0]}, *cted[1:])
    return rows or None, cted or (tuple(old) if old else None)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--seeds", type=int, nargs="+", default=[20, 21, 22])
    ap.add_argument("--shape", type=int, nargs=3, default=[48, 160, 160])
    ap.add_argument("--testbed", type=Path, default=ROOT / "benchmarks" / "results" / "testbed.json")
    ap.add_argument("--phantom-cases", type=Path, nargs="+",
                    default=[ROOT / "benchmarks" / "results" / "phantom_cases.json"],
                    help="bench_phantom_cases.py runs: the current one, then earlier ones")
    ap.add_argument("--covid-slices", type=Path, nargs="+",
                    default=[ROOT / "benchmarks" / "results" / "covid_slices.json"],
                    help="bench_covid_slices.py runs: the current one, then earlier ones")
    ap.add_argument("--seed-spread", type=Path,
                    default=ROOT / "benchmarks" / "results" / "seed_spread.json")
    ap.add_argument("--checkpoint", default=None, help="stage-2 model of the diffusion rows")
    ap.add_argument("--stage1-checkpoint", default=None,
                    help="its stage-1 model (row diffusion-no-distillation)")
    ap.add_argument("--no-hu-checkpoint", default=None,
                    help="a stage-1 model trained without HU preservation (row "
                         "diffusion-no-hu-preservation)")
    ap.add_argument("--methods", nargs="+", default=PHANTOM_METHODS, choices=PHANTOM_METHODS)
    ap.add_argument("--merge", type=Path, default=None,
                    help="a --json file of an earlier run: its rows are kept unless recomputed")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results.md")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--skip-phantoms", action="store_true")
    ap.add_argument("--from-json", type=Path, nargs="+", default=None,
                    help="write the page from --json files of earlier runs (rows of a later file "
                         "replace those of an earlier one) and --testbed, computing nothing")
    args = ap.parse_args(argv)
    if args.from_json is not None:
        phantom = cted = None
        for path in reversed(args.from_json):
            phantom, cted = merge(json.loads(path.read_text()), phantom, cted, args)
        write_markdown(args.out, phantom, cted, args)
        print(f"wrote {args.out}")
        return 0
    ckpt = checkpoints(args)
    run = {"commit": git_commit(), "date": time.strftime("%Y-%m-%d"),
           "uncommitted_sources": uncommitted_sources()}
    phantom = None if args.skip_phantoms else run_phantoms(args.seeds, tuple(args.shape), args.methods,
                                                           ckpt)
    cted = None
    if (args.data / "cted-open").is_dir():
        cted = run_cted(args.data / "cted-open", args.methods, ckpt)
    args.runs = [{**run, "phantom": sorted(phantom or {}), "cted": sorted(cted[0] if cted else {})}]
    if args.merge is not None:
        phantom, cted = merge(json.loads(args.merge.read_text()), phantom, cted, args)
    if args.json:  # first: a run is never lost to the page
        args.json.write_text(json.dumps({"seeds": list(args.seeds), "shape": list(args.shape),
                                         "phantom": {m: {str(k): v for k, v in r.items()}
                                                     for m, r in (phantom or {}).items()},
                                         "cted": list(cted) if cted else None,
                                         "checkpoints": _checkpoint_names(args),
                                         "runs": args.runs}, indent=2))
    write_markdown(args.out, phantom, cted, args)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
