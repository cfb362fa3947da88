"""The weight-free lung mask on real CT and on the phantom's lung-mask cases.

Usage::

    python benchmarks/bench_lungmask.py [--data ../shared/data] [--shape 48 160 160]
                                        [--seeds 0 1 2] [--json benchmarks/results/lungmask.json]

Measures, with the mask computed by :func:`diffseglung_core.lung.segment_lungs`
from the scan alone:

* CIP chests: Dice against CIP's own lung maps (``ct-64`` whole lung; the two
  full-resolution slices of ``crop_ct_2slices``).
* Lung-PET-CT-Dx A0001: right/left volumes, dense tissue (> -300 HU) inside the
  mask in the slices of the left upper-lobe mass (upper third of the scan) and in
  all, soft tissue (> -100 HU) inside the mask in the 8 lowest lung slices
  (liver under the dome), time.
* A0001 with the back 30 mm of each lung in the lower half of its slices painted
  as dependent consolidation (35 HU, air bronchograms kept) and, apart, as a
  layering pleural effusion (8 HU, all of it; no compressed lung along it, which
  the phantom's effusion cases have): the share of the band inside the mask and
  reported as effusion, the mask outside the unpainted scan's (chest wall), and
  for the fluid the Dice against the unpainted scan's lung without the band.
* COVID-19 slices (covid-ny-sbu-open): "no lung" for the slices below the lungs;
  for the others the lung's share of the body's cross-section, and its ratio to
  a plain air-threshold mask (air below -400 HU inside the body, components of at
  least 5 cm², holes filled).
* cted-open: the same slice with its padding (-3024) replaced by -1024, -2000 and
  -2048 gives the same mask; on every slice, the share of the lung that the rays
  against the ribs add (the mask against ``costal=False``). These HRCT slices show
  emphysema, no dense lung against the chest wall: what the rays add there is
  chest wall, an upper bound of their error on a single slice.
* A field of view that cuts the lung: A0001 cropped 30 mm into the right lung
  (the image's edge through it), 20 mm into both lungs and 20 mm into the front
  of the lungs: the Dice of the crop's mask against the whole scan's mask on the
  same voxels, and the share of the whole scan's lung kept; the phantom's chest
  case (``--seeds``) cut 30 mm into the right lung by the image's edge: lung Dice
  against its true lung on the crop.
* With ``--time-shape Z Y X``: the time of the mask on a chest phantom of that
  shape (seed 0; numpy and scipy), with and without the rays towards the back
  (``dependent_passes=0``): one warm-up, then the two alternately, median of 2.
* Phantom cases (``--shape``, ``--seeds``): lung Dice against the true lungs, the
  share of each tissue class inside the mask (also off the truth's edges, the
  voxels within one voxel in-plane of another truth label left out: there a
  voxel holds two tissues), false positives (mL), and for the
  effusion and mass cases the share of fluid kept out / reported and of the mass
  kept in, for the pneumothorax case the share of the free air kept out /
  reported and the true lung reported with it, and for every other case any
  pneumothorax reported (there is none); ``abdomen`` must give "no lung".

Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from _provenance import git_commit, uncommitted_sources  # noqa: E402
from diffseglung_core.errors import NoLungFoundError  # noqa: E402
from diffseglung_core.evaluate.metrics import edge_band  # noqa: E402
from diffseglung_core.gravity import dependent_side  # noqa: E402
from diffseglung_core.io import read_mask, read_scan  # noqa: E402
from diffseglung_core.lung import segment_lungs  # noqa: E402
from diffseglung_core.phantom import CASES, make_phantom  # noqa: E402


def dice(a, b) -> float:
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    return float(2.0 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1))


def threshold_lung(hu: np.ndarray, spacing, min_area_mm2: float = 500.0) -> np.ndarray:
    """Air below -400 HU inside the body, components of lung size, holes filled per slice."""
    air = hu < -400
    inside = np.stack([ndi.binary_fill_holes(~a) for a in air]) & air
    lab, n = ndi.label(inside)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    areas = np.array([0] + [np.max(np.count_nonzero(lab[sl] == i, axis=(1, 2)))
                            for i, sl in enumerate(ndi.find_objects(lab), start=1)])
    keep = np.flatnonzero((areas * spacing[1] * spacing[2] >= min_area_mm2) & (sizes > 0))
    lungs = np.isin(lab, keep[keep > 0])
    return np.stack([ndi.binary_fill_holes(m) for m in lungs])


def timed(hu, spacing, **options):
    t = time.perf_counter()
    seg = segment_lungs(hu, spacing, **options)
    return seg, time.perf_counter() - t


def cip(data: Path) -> dict:
    import nrrd

    out = {}
    ct = read_scan(data / "cip-chest" / "ct-64.nrrd")
    ref = read_mask(data / "cip-chest" / "wholeLung-64.nrrd", ct)
    seg, s = timed(ct.hu, ct.spacing)
    out["ct64"] = {"dice": dice(seg.labels, ref), "seconds": s,
                   "pneumothorax_voxels": int(np.count_nonzero(seg.pneumothorax))}
    ct = read_scan(data / "cip-chest" / "crop_ct_2slices.nrrd")
    labels, _ = nrrd.read(str(data / "cip-chest" / "crop_ct_partialLungLabelMap.nrrd"))
    ref = (labels.transpose(2, 1, 0)[60:62] & 0xFF) > 0
    seg, s = timed(ct.hu, ct.spacing)
    out["crop_ct_2slices"] = {"dice": dice(seg.labels, ref), "seconds": s,
                              "pneumothorax_voxels": int(np.count_nonzero(seg.pneumothorax))}
    return out


def a0001(data: Path) -> dict:
    ct = read_scan(data / "lung-pet-ct-dx-A0001" / "dicom")
    seg, s = timed(ct.hu, ct.spacing)
    m = seg.labels
    voxel_ml = float(np.prod(ct.spacing)) / 1000.0
    zs = np.flatnonzero(m.any(axis=(1, 2)))
    upper = slice(int(zs[0] + 0.65 * (zs[-1] - zs[0])), int(zs[-1]) + 1)
    low = slice(int(zs[0]), int(zs[0]) + 8)
    dense = ct.hu > -300
    return {
        "volumes_ml": seg.volumes_ml(),
        "dense_left_upper_ml": float(np.count_nonzero(dense[upper] & (m[upper] == 2)) * voxel_ml),
        "dense_right_upper_ml": float(np.count_nonzero(dense[upper] & (m[upper] == 1)) * voxel_ml),
        "dense_in_mask_ml": float(np.count_nonzero(dense & (m > 0)) * voxel_ml),
        "soft_tissue_lowest_slices_ml": float(np.count_nonzero((ct.hu[low] > -100) & (m[low] > 0))
                                              * voxel_ml),
        "notes": seg.notes,
        "pneumothorax_voxels": int(np.count_nonzero(seg.pneumothorax)),
        "seconds": s,
        "dependent_band": dependent_band(ct.hu, ct.spacing, m),
        "dependent_fluid": dependent_band(ct.hu, ct.spacing, m, fluid=True),
    }


def dependent_band(hu: np.ndarray, spacing, lung: np.ndarray, depth_mm: float = 30.0,
                   seed: int = 0, fluid: bool = False) -> dict:
    """Dependent consolidation or pleural fluid painted into a real scan: what the mask does with it.

    In the lower half of the lung's slices, the posterior ``depth_mm`` of each lung (label
    1 or 2 of ``lung``) becomes soft tissue (35 HU, noise of 15 HU); its voxels below -930 HU
    (the bronchi) stay air, as air bronchograms. With ``fluid``, the whole band becomes
    fluid (8 HU, noise of 10 HU).
    """
    zs = np.flatnonzero(lung.any(axis=(1, 2)))
    rows = np.arange(lung.shape[1])[:, None]
    band = np.zeros(lung.shape, bool)
    for z in range(int(zs[0]), int(zs[0] + zs[-1]) // 2 + 1):
        for value in (1, 2):
            side = lung[z] == value
            if side.any():
                band[z] |= side & (rows > np.nonzero(side)[0].max() - depth_mm / spacing[1])
    fill = band if fluid else band & (hu >= -930)
    mean, sd = (8.0, 10.0) if fluid else (35.0, 15.0)
    painted = np.array(hu, np.float32)
    painted[fill] = mean + np.random.default_rng(seed).normal(0.0, sd, np.count_nonzero(fill))
    seg = segment_lungs(painted, spacing)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    out = {"band_ml": float(np.count_nonzero(band) * voxel_ml),
           "inside": float(np.mean(seg.labels[band] > 0)),
           "reported_as_effusion": float(np.mean(seg.effusion[band])),
           "outside_the_unpainted_mask_ml": float(np.count_nonzero((seg.labels > 0) & (lung == 0))
                                                  * voxel_ml)}
    if fluid:
        out["dice_against_the_lung_without_it"] = dice(seg.labels, (lung > 0) & ~band)
    return out


def covid(data: Path) -> dict:
    from diffseglung_core.lung.body import filled_body, outside_air

    out = {}
    for path in sorted((data / "covid-ny-sbu-open").glob("*.dcm")):
        ct = read_scan(path)
        body = filled_body(~outside_air(ct.hu < -400))
        row: dict = {}
        try:
            seg, row["seconds"] = timed(ct.hu, ct.spacing)
        except NoLungFoundError as err:
            row["no_lung"] = str(err)
            out[path.name] = row
            continue
        plain = threshold_lung(ct.hu, ct.spacing)
        row["lung_share_of_body"] = float(np.count_nonzero(seg.labels) / np.count_nonzero(body))
        row["plain_threshold_share_of_body"] = float(np.count_nonzero(plain) / np.count_nonzero(body))
        row["ratio_to_plain_threshold"] = float(np.count_nonzero(seg.labels) / max(plain.sum(), 1))
        row["notes"] = seg.notes
        row["pneumothorax_voxels"] = int(np.count_nonzero(seg.pneumothorax))
        out[path.name] = row
    return out


def padding(data: Path) -> dict:
    path = sorted((data / "cted-open" / "slices").glob("*.tiff"))[0]
    ct = read_scan(path, spacing=(1.25, 0.78, 0.78))
    pad = ct.hu == ct.hu.min()
    ref = segment_lungs(ct.hu, ct.spacing).labels
    return {str(v): bool(np.array_equal(
        segment_lungs(np.where(pad, v, ct.hu).astype(np.float32), ct.spacing).labels, ref))
        for v in (-1024.0, -2000.0, -2048.0)} | {"slice": path.name, "padding": float(ct.hu.min())}


def cted_rays(data: Path) -> dict:
    rows = {}
    for path in sorted((data / "cted-open" / "slices").glob("*.tiff")):
        ct = read_scan(path, spacing=(1.25, 0.78, 0.78))
        seg = segment_lungs(ct.hu, ct.spacing)
        lung = seg.labels > 0
        plain = segment_lungs(ct.hu, ct.spacing, costal=False).labels > 0
        rows[path.name] = {"lung": int(np.count_nonzero(lung)),
                           "added_by_rays": int(np.count_nonzero(lung & ~plain)),
                           "pneumothorax_voxels": int(np.count_nonzero(seg.pneumothorax))}
    added = sum(r["added_by_rays"] for r in rows.values())
    return {"slices": rows, "share_of_lung": added / max(sum(r["lung"] for r in rows.values()), 1),
            "max_share_of_a_slice": max(r["added_by_rays"] / max(r["lung"], 1) for r in rows.values())}


def field_of_view(data: Path, shape, seeds) -> dict:
    """Lungs that a field of view smaller than the patient cuts (see the module notes)."""
    out = {}
    ct = read_scan(data / "lung-pet-ct-dx-A0001" / "dicom")
    whole = segment_lungs(ct.hu, ct.spacing).labels > 0
    cols = np.flatnonzero(whole.any(axis=(0, 1)))
    rows = np.flatnonzero(whole.any(axis=(0, 2)))
    mm = lambda d, axis: int(round(d / ct.spacing[axis]))  # noqa: E731
    crops = {"right_30mm": (slice(None), slice(cols[0] + mm(30, 2), None)),
             "both_sides_20mm": (slice(None), slice(cols[0] + mm(20, 2), cols[-1] + 1 - mm(20, 2))),
             "front_20mm": (slice(rows[0] + mm(20, 1), None), slice(None))}
    for name, (ys, xs) in crops.items():
        mask = segment_lungs(ct.hu[:, ys, xs], ct.spacing).labels > 0
        ref = whole[:, ys, xs]
        out[f"a0001_{name}"] = {"dice_against_whole_scan": dice(mask, ref),
                                "kept": float(np.mean(mask[ref]))}
    rows_ph = []
    for seed in seeds:
        ph = make_phantom(shape, seed=seed)
        truth = ph.lung > 0
        x0 = np.flatnonzero(truth.any(axis=(0, 1)))[0] + int(round(30.0 / ph.volume.spacing[2]))
        mask = segment_lungs(ph.volume.hu[:, :, x0:], ph.volume.spacing).labels > 0
        rows_ph.append(dice(mask, truth[:, :, x0:]))
    out["phantom_chest_right_30mm"] = {"dice": float(np.mean(rows_ph)), "per_seed": rows_ph}
    return out


def phantoms(shape, seeds) -> dict:
    out = {}
    for case in CASES:
        rows = []
        for seed in seeds:
            ph = make_phantom(shape, seed=seed, case=case)
            row: dict = {"seed": seed}
            try:
                # (the position the scan says: the prone case's fluid collects in front)
                side = dependent_side(ph.volume.source.metadata["patient_position"])
                seg, row["seconds"] = timed(ph.volume.hu, ph.volume.spacing, dependent_side=side)
            except NoLungFoundError as err:
                row["no_lung"] = str(err)
                rows.append(row)
                continue
            m = seg.labels
            voxel_ml = float(np.prod(ph.volume.spacing)) / 1000.0
            row["dice"] = dice(m, ph.lung)
            row["false_positive_ml"] = float(np.count_nonzero((m > 0) & (ph.lung == 0)) * voxel_ml)
            row["inside"] = {str(c): float(np.mean(m[ph.labels == c] > 0))
                             for c in range(1, 6) if np.any(ph.labels == c)}
            # off the truth's edges: whole regions left out, not voxels that hold two tissues
            off = ~edge_band(ph.labels)
            row["inside_off_edges"] = {str(c): float(np.mean(m[(ph.labels == c) & off] > 0))
                                       for c in range(1, 6) if np.any((ph.labels == c) & off)}
            if ph.effusion is not None and np.any(ph.effusion):
                fluid = ph.effusion > 0
                row["effusion_in_mask"] = float(np.mean(m[fluid] > 0))
                row["effusion_reported"] = float(np.mean(seg.effusion[fluid]))
                row["reported_that_is_fluid"] = float(np.mean(fluid[seg.effusion])) \
                    if seg.effusion.any() else float("nan")
            if ph.mass is not None and np.any(ph.mass):
                row["mass_inside"] = float(np.mean(m[ph.mass > 0] > 0))
            free = ph.pneumothorax if ph.pneumothorax is not None else np.zeros(m.shape, bool)
            row["pneumothorax_reported_ml"] = float(np.count_nonzero(seg.pneumothorax) * voxel_ml)
            if free.any():
                row["pneumothorax_in_mask"] = float(np.mean(m[free] > 0))
                row["pneumothorax_reported"] = float(np.mean(seg.pneumothorax[free]))
                row["reported_that_is_lung_ml"] = float(np.count_nonzero(seg.pneumothorax & (ph.lung > 0))
                                                        * voxel_ml)
            if side != "back" and ph.effusion is not None:  # position unknown: supine assumed
                seg, _ = timed(ph.volume.hu, ph.volume.spacing)
                row["assumed_supine"] = {"dice": dice(seg.labels, ph.lung),
                                         "effusion_in_mask": float(np.mean(seg.labels[fluid] > 0)),
                                         "effusion_reported": float(np.mean(seg.effusion[fluid]))}
            rows.append(row)
        out[case] = rows
    return out


def _mean(rows, key, sub=None):
    vals = [r[key][sub] if sub else r[key] for r in rows
            if key in r and (sub is None or sub in r[key])]
    return float(np.mean(vals)) if vals else float("nan")


#: The mask timed whole and without each of its ray passes towards the back and the middle.
TIMED = {"with": {}, "without": {"dependent_passes": 0}, "without_mediastinal": {"mediastinal_passes": 0}}


def timing(shape) -> dict:
    from diffseglung_core.lung import compute_lung_mask

    ph = make_phantom(shape, seed=0)
    hu, spacing = ph.volume.hu, ph.volume.spacing
    compute_lung_mask(hu, spacing)  # warm-up
    runs = {name: [] for name in TIMED}
    for _ in range(2):
        for name, options in TIMED.items():
            t = time.perf_counter()
            compute_lung_mask(hu, spacing, **options)
            runs[name].append(time.perf_counter() - t)
    return {"shape": list(shape), "spacing": list(spacing), "seconds": runs,
            **{f"median_{name}_s": float(np.median(r)) for name, r in runs.items()}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--shape", type=int, nargs=3, default=(48, 160, 160))
    parser.add_argument("--seeds", type=int, nargs="+", default=(0, 1, 2))
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "lungmask.json")
    parser.add_argument("--time-shape", type=int, nargs=3, default=None,
                        help="also time the mask on a chest phantom of this shape")
    parser.add_argument("--timing-only", action="store_true",
                        help="with --time-shape: the timing alone (no real CT, no phantom cases)")
    args = parser.parse_args(argv)

    result = {"machine": {"python": platform.python_version(), "cpu": platform.processor(),
                          "system": platform.platform()},
              "commit": git_commit(), "uncommitted_sources": uncommitted_sources(),
              "shape": list(args.shape), "seeds": list(args.seeds)}
    if args.timing_only and args.time_shape:
        result["timing"] = timing(tuple(args.time_shape))
        print(json.dumps(result["timing"], indent=1))
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=float))
        return 0
    if args.data.is_dir():
        result["cip"] = cip(args.data)
        result["a0001"] = a0001(args.data)
        result["covid"] = covid(args.data)
        result["padding"] = padding(args.data)
        result["cted_rays"] = cted_rays(args.data)
        result["field_of_view"] = field_of_view(args.data, tuple(args.shape), args.seeds)
    result["phantoms"] = phantoms(tuple(args.shape), args.seeds)
    if args.time_shape:
        result["timing"] = timing(tuple(args.time_shape))

    print("real CT")
    if "cip" in result:
        print(f"  CIP ct-64 Dice {result['cip']['ct64']['dice']:.4f}, crop_ct_2slices Dice "
              f"{result['cip']['crop_ct_2slices']['dice']:.4f}")
        a = result["a0001"]
        print(f"  A0001 right {a['volumes_ml']['right']:.0f} mL, left {a['volumes_ml']['left']:.0f} mL; "
              f"dense tissue in the mask: left upper {a['dense_left_upper_ml']:.0f} mL, right upper "
              f"{a['dense_right_upper_ml']:.0f} mL, all {a['dense_in_mask_ml']:.0f} mL; soft tissue "
              f"in the 8 lowest slices {a['soft_tissue_lowest_slices_ml']:.1f} mL ({a['seconds']:.1f} s)")
        b = a["dependent_band"]
        print(f"  A0001 with a dependent band painted in ({b['band_ml']:.0f} mL): {100 * b['inside']:.1f} % "
              f"inside the mask, {100 * b['reported_as_effusion']:.1f} % reported as effusion, "
              f"{b['outside_the_unpainted_mask_ml']:.1f} mL outside the mask of the unpainted scan")
        b = a["dependent_fluid"]
        print(f"  A0001 with a layering effusion painted in ({b['band_ml']:.0f} mL): {100 * b['inside']:.1f} "
              f"% inside the mask, {100 * b['reported_as_effusion']:.1f} % reported as effusion, "
              f"{b['outside_the_unpainted_mask_ml']:.1f} mL outside the mask of the unpainted scan, "
              f"Dice {b['dice_against_the_lung_without_it']:.4f} against its lung without the fluid")
        for name, row in result["covid"].items():
            if "no_lung" in row:
                print(f"  {name}: {row['no_lung']}")
            else:
                print(f"  {name}: lung {100 * row['lung_share_of_body']:.1f} % of the body "
                      f"(plain threshold {100 * row['plain_threshold_share_of_body']:.1f} %)")
        same = [result["padding"][k] for k in ("-1024.0", "-2000.0", "-2048.0")]
        print(f"  padding replaced: same mask {same}")
        r = result["cted_rays"]
        print(f"  cted-open, lung added by the rays against the ribs: {100 * r['share_of_lung']:.2f} % "
              f"of all, at most {100 * r['max_share_of_a_slice']:.2f} % of a slice")
        ptx = {"CIP ct-64": result["cip"]["ct64"]["pneumothorax_voxels"],
               "CIP crop_ct_2slices": result["cip"]["crop_ct_2slices"]["pneumothorax_voxels"],
               "A0001": a["pneumothorax_voxels"],
               "COVID-19 slices": sum(row.get("pneumothorax_voxels", 0) for row in result["covid"].values()),
               "cted-open slices": sum(row["pneumothorax_voxels"] for row in r["slices"].values())}
        print("  pneumothorax reported (none there), voxels: "
              + ", ".join(f"{k} {v}" for k, v in ptx.items()))
        for name, row in result["field_of_view"].items():
            print(f"  field of view cutting the lung, {name}: " + ", ".join(
                f"{k} {v:.3f}" for k, v in row.items() if not isinstance(v, list)))
    print(f"phantom cases {tuple(args.shape)}, seeds {list(args.seeds)} (means)")
    print("| case | Dice | FP mL | healthy | GGO | fibrosis | emphysema | consolidation | extra |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for case, rows in result["phantoms"].items():
        if any("no_lung" in r for r in rows):
            print(f"| {case} | no lung ({sum('no_lung' in r for r in rows)}/{len(rows)}) | | | | | | | |")
            continue
        extra = ""
        if any("mass_inside" in r for r in rows):
            extra = f"mass inside {_mean(rows, 'mass_inside'):.3f}"
        if any("effusion_in_mask" in r for r in rows):
            extra = (f"fluid in mask {_mean(rows, 'effusion_in_mask'):.2f}, reported "
                     f"{_mean(rows, 'effusion_reported'):.2f}")
        if any("pneumothorax_in_mask" in r for r in rows):
            extra = (f"free air in mask {_mean(rows, 'pneumothorax_in_mask'):.2f}, reported "
                     f"{_mean(rows, 'pneumothorax_reported'):.2f}, lung reported as such "
                     f"{_mean(rows, 'reported_that_is_lung_ml'):.1f} mL")
        elif _mean(rows, "pneumothorax_reported_ml") > 0:
            extra += f"; pneumothorax reported {_mean(rows, 'pneumothorax_reported_ml'):.1f} mL (none there)"
        if any("assumed_supine" in r for r in rows):
            extra += (f"; position unknown (supine assumed): Dice "
                      f"{_mean(rows, 'assumed_supine', 'dice'):.4f}, fluid in mask "
                      f"{_mean(rows, 'assumed_supine', 'effusion_in_mask'):.2f}, reported "
                      f"{_mean(rows, 'assumed_supine', 'effusion_reported'):.2f}")
        cls = " | ".join(f"{_mean(rows, 'inside', c):.3f} ({_mean(rows, 'inside_off_edges', c):.3f})"
                         for c in map(str, range(1, 6)))
        print(f"| {case} | {_mean(rows, 'dice'):.4f} | {_mean(rows, 'false_positive_ml'):.0f} "
              f"| {cls} | {extra} |")
    if "timing" in result:
        t = result["timing"]
        print(f"time on the chest phantom {tuple(t['shape'])}: {t['median_with_s']:.1f} s, "
              f"{t['median_without_s']:.1f} s without the rays towards the back, "
              f"{t['median_without_mediastinal_s']:.1f} s without the rays to the aorta")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1, default=float))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
