"""Speed of the radiomic teacher: numpy reference, torch (CPU, GPU) and pyradiomics; voxel maps.

Usage::

    python benchmarks/bench_radiomics.py --json out.json          # project venv
    .venv-pyrad/bin/python benchmarks/bench_radiomics.py --json o.json   # adds pyradiomics

Prints a table of patches per second on the same real patches (cted-open
61x61 slices and A0001 3x24x24 lung boxes from ``../shared/data``; random
texture patches when absent), the agreement of first-order and GLCM features
with pyradiomics when it is importable, and the time and peak memory of the
voxel-wise maps of a 512x512x300 phantom on CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "radiomics"))

from diffseglung_core.radiomics import (  # noqa: E402
    FEATURE_NAMES,
    PYRADIOMICS_NAMES,
    batched_features,
    feature_maps,
    patch_features,
    pyrad,  # noqa: E402
)


def real_patches(data: Path, n_a0001: int) -> dict[str, list]:
    from radiomics_realdata import a0001_patches, cted_patches

    sets = {}
    if (data / "cted-open").is_dir():
        sets["cted-open 1x61x61"] = cted_patches(data / "cted-open")
    a0001 = data / "lung-pet-ct-dx-A0001" / "dicom"
    if a0001.is_dir():
        sets["A0001 3x24x24"] = a0001_patches(a0001, n=n_a0001)
    if not sets:
        rng = np.random.default_rng(0)
        sets["random 3x24x24"] = [(rng.normal(-800, 150, (3, 24, 24)).round().astype(np.float32),
                                   rng.random((3, 24, 24)) > 0.2) for _ in range(n_a0001)]
    return sets


CLOCK = time.perf_counter  # --cpu-time switches to time.process_time


def timed(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = CLOCK()
        fn()
        best = min(best, CLOCK() - t)
    return best


def torch_rate(pairs, device: str, dtype, groups=("firstorder", "glcm", "lbp", "gabor")) -> float:
    x = torch.as_tensor(np.stack([p for p, _ in pairs])).to(device)
    m = torch.as_tensor(np.stack([mk for _, mk in pairs])).to(device)

    def run():
        batched_features(x, m, dtype=dtype, groups=groups)
        if device == "cuda":
            torch.cuda.synchronize()

    run()  # warm-up
    return len(pairs) / timed(run, repeat=3)


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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, required=True, help="where to write the results")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--a0001", type=int, default=64, help="A0001 patches (default 64)")
    ap.add_argument("--map-shape", type=int, nargs=3, default=(300, 512, 512), metavar=("Z", "Y", "X"))
    ap.add_argument("--map-window", type=int, default=9)
    ap.add_argument("--map-stride", type=int, default=8)
    ap.add_argument("--no-map", action="store_true", help="skip the voxel-map timing")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time patches by the process CPU time instead of the wall clock "
                         "(steadier on a shared machine)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    global CLOCK
    if args.cpu_time:
        CLOCK = time.process_time

    result = {"python": platform.python_version(), "torch": torch.__version__,
              "numpy": np.__version__, "threads": args.threads, "machine": platform.machine(),
              "pyradiomics": pyrad.available(), "clock": CLOCK.__name__, "sets": {}}
    print(f"torch {torch.__version__}, numpy {np.__version__}, {args.threads} threads, "
          f"pyradiomics {'yes' if pyrad.available() else 'not importable'}")
    header = f"{'patches':<20} {'n':>4} {'numpy ref':>10} {'torch cpu':>10} {'cpu f32':>10} " \
             f"{'cpu 22':>10} {'torch gpu':>10} {'pyradiomics':>11} {'cpu/pyrad':>9} {'22/pyrad':>9}"
    print(header + "\n" + "-" * len(header))
    for name, pairs in real_patches(args.data, args.a0001).items():
        row = {"n": len(pairs)}
        row["numpy_reference"] = len(pairs) / timed(
            lambda pairs=pairs: [patch_features(p, m) for p, m in pairs])
        row["torch_cpu"] = torch_rate(pairs, "cpu", torch.float64)
        row["torch_cpu_float32"] = torch_rate(pairs, "cpu", torch.float32)
        row["torch_cpu_shared22"] = torch_rate(pairs, "cpu", torch.float64, ("firstorder", "glcm"))
        row["torch_gpu"] = torch_rate(pairs, "cuda", torch.float32) if torch.cuda.is_available() else None
        if pyrad.available():
            ex = pyrad.make_extractor()
            row["pyradiomics"] = len(pairs) / timed(
                lambda pairs=pairs, ex=ex: [pyrad.pyradiomics_features(p, m, ex) for p, m in pairs])
            row["ratio_torch_cpu_vs_pyradiomics"] = row["torch_cpu"] / row["pyradiomics"]
            row["ratio_shared22_vs_pyradiomics"] = row["torch_cpu_shared22"] / row["pyradiomics"]
            row["agreement_max_rel"] = agreement(pairs)
        else:
            row["pyradiomics"] = row["ratio_torch_cpu_vs_pyradiomics"] = None
            row["ratio_shared22_vs_pyradiomics"] = None
        result["sets"][name] = row
        fmt = lambda v: f"{v:10.1f}" if v else f"{'-':>10}"  # noqa: E731
        print(f"{name:<20} {len(pairs):>4} {fmt(row['numpy_reference'])} {fmt(row['torch_cpu'])} "
              f"{fmt(row['torch_cpu_float32'])} {fmt(row['torch_cpu_shared22'])} "
              f"{fmt(row['torch_gpu'])} {fmt(row['pyradiomics']):>11} "
              f"{(row['ratio_torch_cpu_vs_pyradiomics'] or 0):8.1f}x "
              f"{(row['ratio_shared22_vs_pyradiomics'] or 0):8.1f}x")
    print(f"(patches/s by {CLOCK.__name__}, all patches of a set in one batch; 'torch cpu': all 34 "
          "features, float64; 'cpu f32': float32; 'cpu 22': the 22 first-order and GLCM features "
          "pyradiomics computes too, float64; pyradiomics computes those 22 only)")

    if pyrad.available():
        sets = list(result["sets"])
        print("\nmax relative difference to pyradiomics\n| feature | " + " | ".join(sets) + " |")
        print("| --- |" + " --- |" * len(sets))
        for n in PYRADIOMICS_NAMES:
            print(f"| {n} | " + " | ".join(f"{result['sets'][s]['agreement_max_rel'][n]:.1e}"
                                           for s in sets) + " |")

    if not args.no_map:
        shape = tuple(args.map_shape)
        hu, lung, source = phantom(shape)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t = time.perf_counter()
        fm = feature_maps(hu, lung, window=args.map_window, stride=args.map_stride)
        t_map = time.perf_counter() - t
        t = time.perf_counter()
        sampled = fm.at(lung)
        t_at = time.perf_counter() - t
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result["voxel_map"] = {"shape": shape, "source": source, "window": args.map_window,
                               "stride": args.map_stride, "lung_voxels": int(lung.sum()),
                               "windows": int(fm.valid.sum()), "seconds": t_map,
                               "seconds_at_all_lung_voxels": t_at, "peak_rss_mb": rss,
                               "rss_before_mb": rss0, "sampled_shape": list(sampled.shape)}
        print(f"\nvoxel map {shape} ({source}): window {args.map_window}, stride {args.map_stride}, "
              f"{int(fm.valid.sum())} windows in {t_map:.1f} s; at() on {int(lung.sum())} lung "
              f"voxels {t_at:.1f} s; peak RSS {rss:.0f} MB (before the map {rss0:.0f} MB)")
    args.json.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
