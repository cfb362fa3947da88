"""Speed and memory of the Hessian structure features against scikit-image.

Usage::

    python benchmarks/bench_structure.py [--threads 2] [--repeats 3] [--no-scan]
                                         [--json benchmarks/results/structure.json]

Thread count is pinned before numpy and torch are imported (``OMP_NUM_THREADS``,
``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``torch.set_num_threads``); every
method gets one warm-up run, then the median of ``--repeats`` runs (wall time)
and the peak resident memory above the baseline during those runs (sampled
every 20 ms from /proc).

``OMP_WAIT_POLICY=PASSIVE`` by default: on a machine whose cores other jobs
also use, OpenMP threads that spin at each barrier take the core from the
thread still working, and torch code of many short parallel regions slows
down several-fold (measured here: structure features of an 80-slice scan
36 s with 2 spinning threads, 5 s passive, 5 s on one thread). On an idle
machine the policy makes no difference.

1. *Hessian eigenvalues at sigma 1, 2, 4 mm* on a 24 x 384 x 384 crop of the
   real scan A0001 (0.84 x 0.84 x 5 mm; a synthetic volume when
   ``../shared/data`` is absent), float32 in:

   * scikit-image: ``hessian_matrix(use_gaussian_derivatives=False,
     mode="nearest")`` (per-axis sigma in voxels) + ``hessian_matrix_eigvals``;
     its Gaussian-derivative variant switches to 100-sigma kernels when any
     sigma is below a voxel (1 mm across 5 mm slices), so it is not run;
   * ours, ``derivatives="difference"``: the same operator (agreement reported);
   * ours, default moment-corrected Gaussian derivatives;
   * ours, :func:`structure_maps` (3 scales on their grids, the measures).

2. *Features of the lung voxels*: :func:`structure_features` on the whole
   A0001 scan (64 x 512 x 512, lung mask from :func:`compute_lung_mask`,
   not timed).

3. *A 300 x 512 x 512 scan* (0.7 x 0.7 x 1 mm, synthetic: two ellipsoid lungs
   of noisy parenchyma in a soft-tissue body), :func:`structure_features` on
   its lung voxels: ``--scan-repeats`` runs (default 1, the code is already
   warm from 2.; ``--no-scan`` skips it).

Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-scan", action="store_true", help="skip the 300 x 512 x 512 scan")
    ap.add_argument("--scan-repeats", type=int, default=1,
                    help="timed runs of the 300 x 512 x 512 scan (no warm-up: the code is warm)")
    ap.add_argument("--data", type=Path, default=None, help="folder of real CT (../shared/data)")
    ap.add_argument("--omp-wait-policy", default="PASSIVE",
                    help="OMP_WAIT_POLICY ('' leaves it unset); see the notes above")
    ap.add_argument("--json", type=Path,
                    default=Path(__file__).resolve().parent / "results" / "structure.json")
    return ap.parse_args(argv)


ARGS = _parse() if __name__ == "__main__" else None
if ARGS is not None:   # pin the threads before numpy / torch load their runtimes
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)
    if ARGS.omp_wait_policy:
        os.environ["OMP_WAIT_POLICY"] = ARGS.omp_wait_policy

import json  # noqa: E402
import platform  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SIGMAS_MM = (1.0, 2.0, 4.0)


class PeakRSS:
    """Peak resident set size (bytes) of this process while in the ``with`` block."""

    def __init__(self, interval: float = 0.02):
        self.interval = interval
        self.peak = self.base = 0
        self._stop = threading.Event()

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __enter__(self):
        self.base = self.peak = self.rss()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.rss())


def measure(fn, repeats: int, warm_up: bool = True) -> dict:
    """Warm-up, then the median wall and CPU time of ``repeats`` runs and their peak memory."""
    if warm_up:
        result = fn()
        del result
    walls, cpus = [], []
    with PeakRSS() as mem:
        for _ in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            result = fn()
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
            del result
    return {"wall_s": float(np.median(walls)), "cpu_s": float(np.median(cpus)),
            "walls_s": walls, "peak_extra_mb": (mem.peak - mem.base) / 2 ** 20}


def real_scan(data: Path):
    from diffseglung_core.io import read_scan

    path = data / "lung-pet-ct-dx-A0001" / "dicom"
    if not path.is_dir():
        return None
    ct = read_scan(path)
    return ct.hu, tuple(float(s) for s in ct.spacing)


def synthetic_chest(shape, spacing, seed=0):
    """A body of soft tissue with two ellipsoid lungs of noisy parenchyma (timing
    only: the work does not depend on the content)."""
    rng = np.random.default_rng(seed)
    z, y, x = (np.arange(n, dtype=np.float32) * s for n, s in zip(shape, spacing))
    zc, yc, xc = (n * s / 2 for n, s in zip(shape, spacing))
    hu = np.full(shape, -1000.0, np.float32)
    lung = np.zeros(shape, bool)
    for k in range(shape[0]):
        body = ((y[:, None] - yc) / (0.42 * shape[1] * spacing[1])) ** 2 + \
               ((x[None, :] - xc) / (0.47 * shape[2] * spacing[2])) ** 2 < 1
        hu[k][body] = 40.0
        for side in (-1, 1):
            ell = (((z[k] - zc) / 125.0) ** 2 + ((y[:, None] - yc) / 95.0) ** 2
                   + ((x[None, :] - xc - side * 75.0) / 60.0) ** 2) < 1
            lung[k] |= ell
    n = int(lung.sum())
    hu[lung] = rng.normal(-850.0, 40.0, n).astype(np.float32)
    return hu, lung


def bench_eigen(hu, spacing, repeats) -> dict:
    from skimage.feature import hessian_matrix, hessian_matrix_eigvals

    from diffseglung_core.segment.structure import hessian_eigenvalues, structure_maps

    def skimage_fd():
        out = []
        for s in SIGMAS_MM:
            sig = tuple(s / sp for sp in spacing)
            h = hessian_matrix(hu, sig, mode="nearest", use_gaussian_derivatives=False)
            out.append(hessian_matrix_eigvals(h) * s * s)
        return out

    def ours(derivatives):
        return lambda: [hessian_eigenvalues(hu, spacing, s, derivatives=derivatives, truncate=4.0)
                        for s in SIGMAS_MM]

    rows = {"skimage hessian_matrix (FD) + eigvals": measure(skimage_fd, repeats),
            "ours hessian_eigenvalues (difference)": measure(ours("difference"), repeats),
            "ours hessian_eigenvalues (gaussian)": measure(ours("gaussian"), repeats),
            "ours structure_maps (3 scales, measures)":
                measure(lambda: structure_maps(hu, spacing, sigmas_mm=SIGMAS_MM), repeats)}
    # agreement of the same operator, in the same run
    ref = skimage_fd()
    got = ours("difference")()
    err = max(float(np.abs(-np.sort(-g, axis=0) - r).max() / np.abs(r).max())
              for g, r in zip(got, ref))
    base = rows["skimage hessian_matrix (FD) + eigvals"]["wall_s"]
    for r in rows.values():
        r["speedup_vs_skimage"] = base / r["wall_s"]
    return {"shape": list(hu.shape), "spacing_mm": list(spacing), "sigmas_mm": list(SIGMAS_MM),
            "voxels": int(hu.size), "max_rel_diff_difference_vs_skimage": err, "rows": rows}


def bench_features(hu, lung, spacing, repeats, what, warm_up=True) -> dict:
    from diffseglung_core.segment.structure import structure_features

    r = measure(lambda: structure_features(hu, lung, spacing), repeats, warm_up)
    return {"what": what, "shape": list(hu.shape), "spacing_mm": list(spacing),
            "lung_voxels": int(lung.sum()), **r,
            "us_per_lung_voxel": 1e6 * r["wall_s"] / max(1, int(lung.sum()))}


def main() -> int:
    args = ARGS or _parse([])
    import torch

    torch.set_num_threads(args.threads)
    data = args.data or ROOT.parent / "shared" / "data"
    out = {"threads": args.threads, "repeats": args.repeats,
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""), "torch": torch.__version__,
           "python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
           "cpu_count": os.cpu_count(),
           "note": "shared machine: other jobs ran at the same time; wall time, median of the "
                   "repeats after one warm-up; peak memory above the baseline during the repeats"}
    try:
        out["load_average_start"] = list(os.getloadavg())
    except OSError:
        pass

    scan = real_scan(data)
    if scan is not None:
        hu, spacing = scan
        crop = np.ascontiguousarray(hu[20:44, 64:448, 64:448], np.float32)
        source = "A0001 slices 20-43, rows/cols 64-447"
    else:
        spacing = (5.0, 0.84, 0.84)
        crop, _ = synthetic_chest((24, 384, 384), spacing)
        source = "synthetic (A0001 absent)"
    eig = bench_eigen(crop, spacing, args.repeats)
    eig["source"] = source
    out["eigenvalues"] = eig

    print(f"threads {args.threads}; Hessian eigenvalues at sigma {SIGMAS_MM} mm on "
          f"{' x '.join(map(str, crop.shape))} ({source}), median of {args.repeats}")
    print(f"{'method':44s} {'wall s':>8s} {'cpu s':>8s} {'peak MB':>8s} {'x skimage':>9s}")
    for name, r in eig["rows"].items():
        print(f"{name:44s} {r['wall_s']:8.2f} {r['cpu_s']:8.2f} {r['peak_extra_mb']:8.0f} "
              f"{r['speedup_vs_skimage']:9.1f}")
    print(f"max |ours (difference) - skimage| / max |skimage|: "
          f"{eig['max_rel_diff_difference_vs_skimage']:.1e}")

    feats = []
    if scan is not None:
        from diffseglung_core.lung import compute_lung_mask

        lung = compute_lung_mask(scan[0], scan[1]) > 0
        feats.append(bench_features(scan[0], lung, scan[1], args.repeats,
                                    "A0001 64 x 512 x 512, whole lung"))
    if not args.no_scan:
        shape, spacing = (300, 512, 512), (1.0, 0.7, 0.7)
        hu, lung = synthetic_chest(shape, spacing)
        feats.append(bench_features(hu, lung, spacing, args.scan_repeats,
                                    "synthetic 300 x 512 x 512 at 0.7 x 0.7 x 1 mm",
                                    warm_up=False))
        del hu, lung
    out["features"] = feats
    print(f"\n{'structure_features':48s} {'lung vox':>10s} {'wall s':>8s} {'cpu s':>8s} "
          f"{'peak MB':>8s}")
    for r in feats:
        print(f"{r['what']:48s} {r['lung_voxels']:10d} {r['wall_s']:8.2f} {r['cpu_s']:8.2f} "
              f"{r['peak_extra_mb']:8.0f}")
    try:
        out["load_average_end"] = list(os.getloadavg())
    except OSError:
        pass
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
