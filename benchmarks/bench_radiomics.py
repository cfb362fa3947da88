"""Speed of the radiomic features at equal work: numpy reference, torch (CPU, GPU) and pyradiomics.

Usage::

    python benchmarks/bench_radiomics.py                       # project venv: no pyradiomics
    .venv-pyrad/bin/python benchmarks/bench_radiomics.py       # adds pyradiomics (old numpy)

Every side describes the same patches with the same masks (cted-open 61x61
slices and A0001 lung boxes from ``../shared/data``; random texture when
absent) and is timed the same way: one warm-up, then the median of
``--repeats`` runs (``benchmarks/_timing.py``), with torch, BLAS/OpenMP and
SimpleITK pinned to ``--threads`` threads. Each timed run includes the side's
own conversions (numpy to torch tensors and back; numpy to SimpleITK images);
the pyradiomics extractor is built once, before the warm-up, as a user
describing many patches would. Work is equal where a ratio is given:
pyradiomics computes its 19 first-order and GLCM features, and the "torch 22"
column computes our first-order and GLCM groups: the same 19 and three HU
fractions, a little more work (the "torch 34" column adds LBP and Gabor).
Ratios are computed from medians of the same run. The agreement of the 19
features with pyradiomics, and the time and peak memory of the voxel-wise maps
of a phantom (``--map-shape``, median of ``--map-repeats`` after a warm-up) are
written too. With pyradiomics, voxel-wise maps are compared at equal work as
well (``--voxel-boxes``): every lung voxel of A0001 lung boxes described by its
9^3 neighbourhood (its lung voxels only), by :func:`feature_maps` at stride 1
(float64; the first-order and GLCM groups, 22 features, from box sums and, as a
reference of the same run, window by window; and all 34) and by pyradiomics'
voxel-based extraction (``kernelRadius`` 4, masked kernel, its 19).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "radiomics"))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))  # this checkout's sources, whatever the venv installed

from _provenance import git_commit, uncommitted_sources, write_json  # noqa: E402
from _timing import conditions, measure, pin_threads  # noqa: E402
from diffseglung_core.radiomics import (  # noqa: E402
    FEATURE_NAMES,
    PYRADIOMICS_NAMES,
    batched_features,
    feature_maps,
    patch_features,
    pyrad,
)

SHARED = ("firstorder", "glcm")  # the groups pyradiomics computes too
ALL = ("firstorder", "glcm", "lbp", "gabor")


def real_patches(data: Path, n_a0001: int, size) -> dict[str, list]:
    from radiomics_realdata import a0001_patches, cted_patches

    sets = {}
    if (data / "cted-open").is_dir():
        sets["cted-open 1x61x61"] = cted_patches(data / "cted-open")
    a0001 = data / "lung-pet-ct-dx-A0001" / "dicom"
    name = "x".join(str(v) for v in size)
    if a0001.is_dir():
        sets[f"A0001 {name}"] = a0001_patches(a0001, n=n_a0001, size=tuple(size))
    if not sets:
        rng = np.random.default_rng(0)
        sets[f"random {name}"] = [(rng.normal(-800, 150, size).round().astype(np.float32),
                                   rng.random(size) > 0.2) for _ in range(n_a0001)]
    return sets


def torch_side(pairs, device: str, dtype, groups):
    """One call: stack the patches, compute on ``device``, bring the features back as numpy."""
    def run():
        x = torch.as_tensor(np.stack([p for p, _ in pairs])).to(device)
        m = torch.as_tensor(np.stack([mk for _, mk in pairs])).to(device)
        return batched_features(x, m, dtype=dtype, groups=groups).cpu().numpy()
    return run


def agreement(pairs) -> dict[str, float]:
    extractor = pyrad.make_extractor()
    cols = [FEATURE_NAMES.index(n) for n in PYRADIOMICS_NAMES]
    ours = np.stack([patch_features(p, m)[cols] for p, m in pairs])
    theirs = np.stack([[pyrad.pyradiomics_features(p, m, extractor)[n] for n in PYRADIOMICS_NAMES]
                       for p, m in pairs])
    rel = np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-300)
    return {n: float(rel[:, j].max()) for j, n in enumerate(PYRADIOMICS_NAMES)}


def phantom(shape, seed=0):
    try:
        from diffseglung_core.phantom import make_phantom

        ph = make_phantom(shape, seed=seed)
        return np.asarray(ph.volume.hu if hasattr(ph.volume, "hu") else ph.volume, np.float32), \
            np.asarray(ph.lung, bool), "diffseglung_core.phantom.make_phantom"
    except ImportError:
        pass
    rng = np.random.default_rng(seed)
    z, y, x = (np.linspace(-1, 1, s, dtype=np.float32) for s in shape)
    zz, yy, xx = z[:, None, None], y[None, :, None], x[None, None, :]
    lung = ((zz / 0.9) ** 2 + (yy / 0.75) ** 2 + ((np.abs(xx) - 0.42) / 0.33) ** 2) < 1
    hu = np.where(lung, np.float32(-850), np.float32(40))
    hu += rng.normal(0, 60, shape).astype(np.float32)
    return hu, lung, "random texture in two ellipsoid lungs"


def bench_map(shape, window: int, stride: int, repeats: int) -> dict:
    hu, lung, source = phantom(shape)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    last = {}
    timed = measure(lambda: last.update(fm=feature_maps(hu, lung, window=window, stride=stride)),
                    max(repeats, 3))
    fm = last["fm"]
    t = time.perf_counter()
    fm.at(lung)
    t_at = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"shape": list(shape), "source": source, "window": window, "stride": stride,
           "lung_voxels": int(lung.sum()), "windows": int(fm.valid.sum()), "map": timed,
           "seconds_at_all_lung_voxels": t_at, "peak_rss_mb": rss, "rss_before_mb": rss0}
    if torch.cuda.is_available():  # the same map on the GPU (the volume starts in host memory)
        gpu = measure(lambda: last.update(fm=feature_maps(hu, lung, window=window, stride=stride,
                                                          device="cuda")), max(repeats, 3))
        diff = np.nanmax(np.abs(last["fm"].values - fm.values) / (np.nanmax(np.abs(fm.values), axis=(1, 2, 3),
                                                                              keepdims=True) + 1e-6))
        out.update(map_gpu=gpu, ratio_cpu_over_gpu=timed["median_s"] / gpu["median_s"],
                   gpu_max_rel_difference=float(diff))
    return out


def bench_voxel_maps(data: Path, n: int, size, repeats: int, window: int = 9) -> dict:
    """Voxel-wise maps of A0001 lung boxes at equal work: ours at stride 1 against pyradiomics."""
    import SimpleITK as sitk

    from radiomics_realdata import a0001_patches

    boxes = a0001_patches(data / "lung-pet-ct-dx-A0001" / "dicom", n=n, size=tuple(size))
    ex = pyrad.make_extractor()
    ex.settings.update(kernelRadius=window // 2, maskedKernel=True, initValue=np.nan, voxelBatch=-1)
    # pyradiomics needs background in the mask: one unmasked voxel around each box
    padded = [(np.pad(p.astype(np.float64), 1, mode="edge"), np.pad(m, 1).astype(np.uint8))
              for p, m in boxes]

    def ours(groups=ALL, box_sums=True):
        return [feature_maps(p, m, window=window, stride=1, dtype=torch.float64, groups=groups,
                             box_sums=box_sums).at(m) for p, m in boxes]

    def theirs():
        out = []
        for p, m in padded:
            res = ex.execute(sitk.GetImageFromArray(p), sitk.GetImageFromArray(m), label=1,
                             voxelBased=True)
            out.append(res)
        return out

    timings = {"torch_cpu_34": measure(ours, repeats),
               "torch_cpu_22": measure(lambda: ours(SHARED), repeats),
               "torch_cpu_22_window_by_window": measure(lambda: ours(SHARED, False), repeats),
               "pyradiomics_19": measure(theirs, repeats)}
    # the same neighbourhoods: the mean HU of every voxel's masked window agrees
    mean_col = FEATURE_NAMES.index("firstorder_Mean")
    diffs = []
    for (_, m), ours_rows, res in zip(boxes, ours(), theirs()):
        img = res["original_firstorder_Mean"]
        full = np.full(np.array(m.shape) + 2, np.nan)
        origin = [int(round(v)) for v in img.GetOrigin()][::-1]  # (x, y, z) in voxels, spacing 1
        arr = sitk.GetArrayFromImage(img)
        full[tuple(slice(o, o + s) for o, s in zip(origin, arr.shape))] = arr
        theirs_rows = full[1:-1, 1:-1, 1:-1][m]
        diffs.append(np.nanmax(np.abs(ours_rows[:, mean_col] - theirs_rows)))
    voxels = int(sum(int(m.sum()) for _, m in boxes))
    per = {side: t["median_s"] / voxels for side, t in timings.items()}
    return {"boxes": len(boxes), "size": list(size), "window": window, "voxels": voxels,
            "timings": timings, "seconds_per_voxel": per,
            "ratio_pyradiomics_19_over_torch_cpu_22": per["pyradiomics_19"] / per["torch_cpu_22"],
            "ratio_pyradiomics_19_over_torch_cpu_34": per["pyradiomics_19"] / per["torch_cpu_34"],
            "ratio_window_by_window_over_box_sums_22": (per["torch_cpu_22_window_by_window"]
                                                        / per["torch_cpu_22"]),
            "max_abs_difference_mean_hu": float(max(diffs))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, default=None,
                    help="where to write the results (default: benchmarks/results/radiomics.json, "
                         "or radiomics_pyradiomics.json when pyradiomics is importable)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--threads", type=int, default=1, help="threads of every library (default 1)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs after the warm-up (>= 3)")
    ap.add_argument("--a0001", type=int, default=64, help="A0001 patches (default 64)")
    ap.add_argument("--a0001-size", type=int, nargs=3, default=(8, 32, 32), metavar=("Z", "Y", "X"))
    ap.add_argument("--map-shape", type=int, nargs=3, default=(64, 256, 256), metavar=("Z", "Y", "X"))
    ap.add_argument("--map-window", type=int, default=9)
    ap.add_argument("--map-stride", type=int, default=8)
    ap.add_argument("--map-repeats", type=int, default=3)
    ap.add_argument("--no-map", action="store_true", help="skip the voxel-map timing")
    ap.add_argument("--voxel-boxes", type=int, default=2,
                    help="A0001 boxes of the voxel-map comparison with pyradiomics (0: none)")
    ap.add_argument("--voxel-size", type=int, nargs=3, default=(6, 24, 24), metavar=("Z", "Y", "X"))
    ap.add_argument("--no-patches", action="store_true", help="time the voxel maps only")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    has_pyrad = pyrad.available()
    if args.json is None:
        name = "radiomics_pyradiomics.json" if has_pyrad else "radiomics.json"
        args.json = ROOT / "benchmarks" / "results" / name
    result = {"conditions": conditions(), "commit": git_commit(),
              "uncommitted_sources": uncommitted_sources(), "threads": pin_threads(args.threads),
              "repeats": args.repeats, "pyradiomics": has_pyrad, "sets": {},
              "units": "seconds per patch (median of the runs / patches); ratios: time / torch time"}
    if has_pyrad:
        import radiomics

        result["pyradiomics_version"] = radiomics.__version__
    cuda = torch.cuda.is_available()
    print(f"torch {torch.__version__}, numpy {np.__version__}, {args.threads} thread(s), "
          f"pyradiomics {'yes' if has_pyrad else 'not importable'}, GPU {'yes' if cuda else 'no'}; "
          f"median of {args.repeats} after a warm-up")
    cols = ["numpy ref 34", "torch 34", "torch 22", "torch f32 34", "gpu 34", "gpu 22", "pyradiomics 19",
            "pyrad / torch 22"]
    print(f"{'patches':<22} {'n':>3} " + " ".join(f"{c:>14}" for c in cols) + "  (ms per patch)")
    patch_sets = {} if args.no_patches else real_patches(args.data, args.a0001, args.a0001_size)
    for name, pairs in patch_sets.items():
        n = len(pairs)
        row = {"n": n, "shape": list(pairs[0][0].shape), "mask_fraction": float(np.mean(
            [m.mean() for _, m in pairs]))}
        sides = {
            "numpy_reference_34": lambda pairs=pairs: [patch_features(p, m) for p, m in pairs],
            "torch_cpu_34": torch_side(pairs, "cpu", torch.float64, ALL),
            "torch_cpu_22": torch_side(pairs, "cpu", torch.float64, SHARED),
            "torch_cpu_float32_34": torch_side(pairs, "cpu", torch.float32, ALL),
        }
        if cuda:
            for groups, label in ((ALL, "34"), (SHARED, "22")):
                run = torch_side(pairs, "cuda", torch.float32, groups)
                sides[f"torch_gpu_{label}"] = lambda run=run: (run(), torch.cuda.synchronize())
        if has_pyrad:
            ex = pyrad.make_extractor()
            sides["pyradiomics_19"] = lambda pairs=pairs, ex=ex: [pyrad.pyradiomics_features(p, m, ex)
                                                                  for p, m in pairs]
        timings = {side: measure(fn, args.repeats) for side, fn in sides.items()}
        row["timings"] = timings
        per = {side: t["median_s"] / n for side, t in timings.items()}
        row["seconds_per_patch"] = per
        ratios = {"numpy_reference_34_over_torch_cpu_34": per["numpy_reference_34"] / per["torch_cpu_34"]}
        if has_pyrad:
            ratios["pyradiomics_19_over_torch_cpu_22"] = per["pyradiomics_19"] / per["torch_cpu_22"]
            ratios["pyradiomics_19_over_torch_cpu_34"] = per["pyradiomics_19"] / per["torch_cpu_34"]
            if cuda:
                ratios["pyradiomics_19_over_torch_gpu_22"] = per["pyradiomics_19"] / per["torch_gpu_22"]
            row["agreement_max_rel"] = agreement(pairs)
        row["ratios"] = ratios
        result["sets"][name] = row
        ms = lambda key, per=per: f"{1e3 * per[key]:14.2f}" if key in per else f"{'-':>14}"
        ratio = ratios.get("pyradiomics_19_over_torch_cpu_22")
        print(f"{name:<22} {n:>3} {ms('numpy_reference_34')} {ms('torch_cpu_34')} {ms('torch_cpu_22')} "
              f"{ms('torch_cpu_float32_34')} {ms('torch_gpu_34')} {ms('torch_gpu_22')} "
              f"{ms('pyradiomics_19')} " + (f"{ratio:13.2f}x" if ratio else f"{'-':>14}"))

    if has_pyrad and result["sets"]:
        sets = list(result["sets"])
        print("\nmax relative difference to pyradiomics\n| feature | " + " | ".join(sets) + " |")
        print("| --- |" + " --- |" * len(sets))
        for n in PYRADIOMICS_NAMES:
            print(f"| {n} | " + " | ".join(f"{result['sets'][s]['agreement_max_rel'][n]:.1e}"
                                           for s in sets) + " |")

    if has_pyrad and args.voxel_boxes > 0 and (args.data / "lung-pet-ct-dx-A0001" / "dicom").is_dir():
        vx = bench_voxel_maps(args.data, args.voxel_boxes, args.voxel_size, args.repeats)
        result["voxel_maps_equal_work"] = vx
        per = vx["seconds_per_voxel"]
        print(f"\nvoxel maps, {vx['boxes']} A0001 boxes {tuple(vx['size'])}, {vx['voxels']} voxels, "
              f"window {vx['window']}, ms per voxel: torch (22) {1e3 * per['torch_cpu_22']:.3f}, "
              f"torch (22) window by window {1e3 * per['torch_cpu_22_window_by_window']:.3f}, "
              f"torch (34) {1e3 * per['torch_cpu_34']:.3f}, pyradiomics voxel-based (19) "
              f"{1e3 * per['pyradiomics_19']:.3f}: pyradiomics / torch (22) "
              f"{vx['ratio_pyradiomics_19_over_torch_cpu_22']:.1f}x; mean HU agrees to "
              f"{vx['max_abs_difference_mean_hu']:.1e} HU")

    if not args.no_map:
        vm = bench_map(tuple(args.map_shape), args.map_window, args.map_stride, args.map_repeats)
        result["voxel_map"] = vm
        print(f"\nvoxel map {tuple(vm['shape'])} ({vm['source']}): window {vm['window']}, stride "
              f"{vm['stride']}, {vm['windows']} windows: median {vm['map']['median_s']:.1f} s wall, "
              f"{vm['map']['cpu_median_s']:.1f} s CPU; at() on {vm['lung_voxels']} lung voxels "
              f"{vm['seconds_at_all_lung_voxels']:.1f} s; peak RSS {vm['peak_rss_mb']:.0f} MB "
              f"(before the maps {vm['rss_before_mb']:.0f} MB)")
        if "map_gpu" in vm:
            print(f"  on the GPU: median {vm['map_gpu']['median_s']:.2f} s, {vm['ratio_cpu_over_gpu']:.1f}x "
                  f"the CPU; largest difference {vm['gpu_max_rel_difference']:.1e} of each feature's range")
    result["conditions"]["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
