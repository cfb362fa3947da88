"""Speed and memory of the Hessian structure features against scikit-image.

Usage::

    python benchmarks/bench_structure.py [--threads 2] [--repeats 3] [--no-scan]
                                         [--json benchmarks/results/structure.json]

Every method runs in its own Python process (so peak memory is its own), with
the thread count pinned before numpy and torch are imported
(``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
``torch.set_num_threads``): one warm-up run, then the median wall (and CPU)
time of ``--repeats`` runs; peak memory is the process's peak resident set
minus its resident set once the inputs are loaded.

``OMP_WAIT_POLICY=PASSIVE`` by default: on a machine whose cores other jobs
also use, OpenMP threads that spin at each barrier take the core from the
thread still working, and torch code of many short parallel regions slows
down several-fold (measured here: structure features of an 80-slice scan
36 s with 2 spinning threads, 5 s passive, 5 s on one thread). On an idle
machine the policy makes no difference. ``--omp-wait-policy ''`` leaves it
unset.

1. *Hessian eigenvalues at sigma 1, 2, 4 mm* on a 24 x 384 x 384 crop of the
   real scan A0001 (0.84 x 0.84 x 5 mm; a synthetic volume when
   ``../shared/data`` is absent), float32 in:

   * scikit-image: ``hessian_matrix(use_gaussian_derivatives=False,
     mode="nearest")`` with per-axis sigma in voxels, its elements scaled to
     mm and by sigma^2, then ``hessian_matrix_eigvals``. (Its
     Gaussian-derivative variant switches to 100-sigma kernels when any
     sigma is below a voxel, 1 mm across 5 mm slices, so it is not run.)
   * ours, ``derivatives="difference"``: the same operator (the largest
     difference from scikit-image is reported);
   * ours, default moment-corrected Gaussian derivatives;
   * ours, :func:`structure_maps` (the 3 scales on their grids, the measures).

2. *Features of the lung voxels*: :func:`structure_features` on the whole
   A0001 scan (64 x 512 x 512, lung mask from :func:`compute_lung_mask`,
   computed once, not timed).

3. *A 300 x 512 x 512 scan* (0.7 x 0.7 x 1 mm, synthetic: two ellipsoid lungs
   of noisy parenchyma in a soft-tissue body), :func:`structure_features` on
   its lung voxels: warm-up and ``--scan-repeats`` runs (default 1; ``--no-scan``
   skips it).

Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIGMAS_MM = (1.0, 2.0, 4.0)
SCAN_SHAPE, SCAN_SPACING = (300, 512, 512), (1.0, 0.7, 0.7)
METHODS = {
    "skimage": "skimage hessian_matrix (FD) + eigvals",
    "ours_difference": "ours hessian_eigenvalues (difference)",
    "ours_gaussian": "ours hessian_eigenvalues (gaussian)",
    "ours_maps": "ours structure_maps (3 scales, measures)",
    "features_a0001": "A0001 64 x 512 x 512, whole lung",
    "features_scan": "synthetic 300 x 512 x 512 at 0.7 x 0.7 x 1 mm",
}


def _parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-scan", action="store_true", help="skip the 300 x 512 x 512 scan")
    ap.add_argument("--scan-repeats", type=int, default=1)
    ap.add_argument("--data", type=Path, default=None, help="folder of real CT (../shared/data)")
    ap.add_argument("--omp-wait-policy", default="PASSIVE",
                    help="OMP_WAIT_POLICY ('' leaves it unset); see the notes above")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "structure.json")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--inputs", type=Path, default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def synthetic_chest(shape, spacing, seed=0):
    """A body of soft tissue with two ellipsoid lungs of noisy parenchyma (timing
    only: the work does not depend on the content)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    z, y, x = (np.arange(n, dtype=np.float32) * s for n, s in zip(shape, spacing))
    zc, yc, xc = (n * s / 2 for n, s in zip(shape, spacing))
    hu = np.full(shape, -1000.0, np.float32)
    lung = np.zeros(shape, bool)
    body = ((y[:, None] - yc) / (0.42 * shape[1] * spacing[1])) ** 2 + \
           ((x[None, :] - xc) / (0.47 * shape[2] * spacing[2])) ** 2 < 1
    for k in range(shape[0]):
        hu[k][body] = 40.0
        for side in (-1, 1):
            lung[k] |= (((z[k] - zc) / 125.0) ** 2 + ((y[:, None] - yc) / 95.0) ** 2
                        + ((x[None, :] - xc - side * 75.0) / 60.0) ** 2) < 1
    hu[lung] = rng.normal(-850.0, 40.0, int(lung.sum())).astype(np.float32)
    return hu, lung


# --------------------------------------------------------------------------- worker process

def worker(args) -> dict:
    import numpy as np
    import torch
    from skimage.feature import hessian_matrix, hessian_matrix_eigvals

    sys.path.insert(0, str(ROOT / "src"))
    from diffseglung_core.segment.structure import hessian_eigenvalues, structure_features, structure_maps

    torch.set_num_threads(args.threads)
    meta = json.loads((args.inputs / "meta.json").read_text())
    method = args.worker
    repeats, warm_up = args.repeats, True
    if method == "features_scan":
        hu, lung = synthetic_chest(SCAN_SHAPE, SCAN_SPACING)
        spacing = SCAN_SPACING
        repeats = args.scan_repeats
    elif method == "features_a0001":
        hu = np.load(args.inputs / "a0001_hu.npy")
        lung = np.load(args.inputs / "a0001_lung.npy")
        spacing = tuple(meta["a0001_spacing"])
    else:
        hu = np.load(args.inputs / "crop.npy")
        spacing = tuple(meta["crop_spacing"])

    def skimage_fd():
        out = []
        for s in SIGMAS_MM:
            h = hessian_matrix(hu, tuple(s / sp for sp in spacing), mode="nearest",
                               use_gaussian_derivatives=False)
            pairs = [(a, b) for a in range(3) for b in range(a, 3)]      # skimage's "rc" order
            h = [e * np.float32(s * s / (spacing[a] * spacing[b])) for e, (a, b) in zip(h, pairs)]
            out.append(hessian_matrix_eigvals(h))
        return out

    fns = {
        "skimage": skimage_fd,
        "ours_difference": lambda: [hessian_eigenvalues(hu, spacing, s, derivatives="difference",
                                                        truncate=4.0) for s in SIGMAS_MM],
        "ours_gaussian": lambda: [hessian_eigenvalues(hu, spacing, s, truncate=4.0)
                                  for s in SIGMAS_MM],
        "ours_maps": lambda: structure_maps(hu, spacing, sigmas_mm=SIGMAS_MM),
        "features_a0001": lambda: structure_features(hu, lung, spacing),
        "features_scan": lambda: structure_features(hu, lung, spacing),
    }
    fn = fns[method]
    base = _rss()
    if warm_up:
        result = fn()
        if method in ("skimage", "ours_difference"):     # for the agreement, in the parent
            np.save(args.inputs / f"{method}.npy", np.stack([np.asarray(r) for r in result]))
        del result
    walls, cpus = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
        del result
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    out = {"method": METHODS[method], "shape": list(hu.shape), "spacing_mm": list(spacing),
           "wall_s": float(np.median(walls)), "cpu_s": float(np.median(cpus)), "walls_s": walls,
           "peak_extra_mb": (peak - base) / 2 ** 20, "torch_threads": torch.get_num_threads()}
    if method.startswith("features"):
        out["lung_voxels"] = int(lung.sum())
        out["us_per_lung_voxel"] = 1e6 * out["wall_s"] / max(1, out["lung_voxels"])
    return out


# --------------------------------------------------------------------------- parent process

def run_worker(args, method: str, inputs: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", method, "--inputs",
           str(inputs), "--threads", str(args.threads), "--repeats", str(args.repeats),
           "--scan-repeats", str(args.scan_repeats), "--omp-wait-policy", args.omp_wait_policy]
    res = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def prepare_inputs(args, tmp: Path) -> dict:
    import numpy as np

    sys.path.insert(0, str(ROOT / "src"))
    data = args.data or ROOT.parent / "shared" / "data"
    path = data / "lung-pet-ct-dx-A0001" / "dicom"
    meta = {}
    if path.is_dir():
        from diffseglung_core.io import read_scan
        from diffseglung_core.lung import compute_lung_mask

        ct = read_scan(path)
        spacing = [float(s) for s in ct.spacing]
        np.save(tmp / "crop.npy", np.ascontiguousarray(ct.hu[20:44, 64:448, 64:448], np.float32))
        np.save(tmp / "a0001_hu.npy", np.asarray(ct.hu, np.float32))
        np.save(tmp / "a0001_lung.npy", compute_lung_mask(ct.hu, ct.spacing) > 0)
        meta.update(crop_spacing=spacing, a0001_spacing=spacing,
                    crop_source="A0001 slices 20-43, rows/cols 64-447", a0001=True)
    else:
        spacing = [5.0, 0.84, 0.84]
        hu, _ = synthetic_chest((24, 384, 384), spacing)
        np.save(tmp / "crop.npy", hu)
        meta.update(crop_spacing=spacing, crop_source="synthetic (A0001 absent)", a0001=False)
    (tmp / "meta.json").write_text(json.dumps(meta))
    return meta


def main() -> int:
    args = _parse()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    if args.omp_wait_policy:
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy
    else:
        os.environ.pop("OMP_WAIT_POLICY", None)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0

    import numpy as np
    import torch

    out = {"threads": args.threads, "repeats": args.repeats, "scan_repeats": args.scan_repeats,
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""), "torch": torch.__version__,
           "python": platform.python_version(), "cpu_count": os.cpu_count(),
           "load_average_start": list(os.getloadavg()),
           "note": "shared machine: other jobs ran at the same time; wall time is the median "
                   "of the repeats after one warm-up; each method in its own process"}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        meta = prepare_inputs(args, tmp)
        eig = {"source": meta["crop_source"], "spacing_mm": meta["crop_spacing"],
               "sigmas_mm": list(SIGMAS_MM), "rows": {}}
        for m in ("skimage", "ours_difference", "ours_gaussian", "ours_maps"):
            eig["rows"][METHODS[m]] = run_worker(args, m, tmp)
        ref = np.load(tmp / "skimage.npy")                  # (scales, 3, Z, Y, X), by value
        got = -np.sort(-np.load(tmp / "ours_difference.npy"), axis=1)
        eig["max_abs_diff_difference_vs_skimage_over_max"] = float(
            max(np.abs(g - r).max() / np.abs(r).max() for g, r in zip(got, ref)))
        eig["shape"] = eig["rows"][METHODS["skimage"]]["shape"]
        base = eig["rows"][METHODS["skimage"]]["wall_s"]
        for r in eig["rows"].values():
            r["speedup_vs_skimage"] = base / r["wall_s"]
        out["eigenvalues"] = eig
        feats = []
        if meta.get("a0001"):
            feats.append(run_worker(args, "features_a0001", tmp))
        if not args.no_scan:
            feats.append(run_worker(args, "features_scan", tmp))
        out["features"] = feats
    out["load_average_end"] = list(os.getloadavg())

    print(f"threads {args.threads}, OMP_WAIT_POLICY={out['omp_wait_policy'] or 'unset'}; "
          f"Hessian eigenvalues at sigma {SIGMAS_MM} mm on "
          f"{' x '.join(map(str, eig['shape']))} ({eig['source']}), median of {args.repeats}")
    print(f"{'method':44s} {'wall s':>8s} {'cpu s':>8s} {'peak MB':>8s} {'x skimage':>9s}")
    for name, r in eig["rows"].items():
        print(f"{name:44s} {r['wall_s']:8.2f} {r['cpu_s']:8.2f} {r['peak_extra_mb']:8.0f} "
              f"{r['speedup_vs_skimage']:9.1f}")
    print(f"max |ours (difference) - skimage| / max |skimage|: "
          f"{eig['max_abs_diff_difference_vs_skimage_over_max']:.1e}")
    print(f"\n{'structure_features':48s} {'lung vox':>10s} {'wall s':>8s} {'cpu s':>8s} "
          f"{'peak MB':>8s}")
    for r in feats:
        print(f"{r['method']:48s} {r['lung_voxels']:10d} {r['wall_s']:8.2f} {r['cpu_s']:8.2f} "
              f"{r['peak_extra_mb']:8.0f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
