"""Speed and memory of the segmentation engine, and the torch GMM against scikit-learn at equal work.

Usage::

    python benchmarks/bench_segment.py --skip-engine                 # the GMM comparison only
    python benchmarks/bench_segment.py [--shape 300 512 512] [--threads 2] [--own-lung-mask]
                                       [--src CHECKOUT] [--scan PATH]
                                       [--gmm-rows 400000] [--gmm-dims 64] [--gmm-k 8]
                                       [--gmm-iters 10] [--gmm-long-iters 30] [--repeats 3]
                                       [--json benchmarks/results/gmm.json]

1. A phantom of ``--shape`` (default 300 x 512 x 512) segmented by the
   weight-free engine on ``--threads`` CPU threads: wall time of
   :func:`segment_volume` (the phantom's true lung mask given, so the engine alone is
   timed; with ``--own-lung-mask`` the engine computes the mask itself, end to end, and
   its Dice against the true lung is printed) and the peak resident memory above the
   baseline (sampled every 50 ms from /proc).
   ``--device cuda`` runs the engine's torch stages on the GPU (the lung mask stays
   on the CPU). With ``--diffusion-checkpoint`` and a GPU, the diffusion path too. ``--src CHECKOUT``
   times the sources of another checkout with this script (``bench_segment_pair.py``).
   ``--scan PATH`` segments a real scan instead (any file or DICOM folder ``read_scan``
   opens; always with its own lung mask): the JSON keeps a digest of the labels, so two
   runs can be checked to give the same labels.
2. The same ``--gmm-rows x --gmm-dims`` float32 rows (``--gmm-k`` Gaussian
   blobs) fitted by :func:`~diffseglung_core.segment.gmm.fit_gmm` and by
   ``sklearn.mixture.GaussianMixture`` doing the same work: every row (no
   subsample), diagonal covariances, one start, a fixed number of EM iterations
   (``tol=0``, so neither stops early), the same threads. Each library starts
   its own way (torch: k-means++ and 10 Lloyd iterations; scikit-learn:
   k-means++ seeding), so each side is fitted with ``--gmm-iters`` and with
   ``--gmm-long-iters`` iterations: the difference divided by the extra
   iterations is the cost of one EM iteration, and the rest is the start. The posteriors of
   every row (``predict_proba``) are timed too. Where CUDA is available, ``fit_gmm`` on
   the GPU is a third side (``torch_gpu``: the rows start in host memory, as in the
   engine, so their copy to the GPU is part of its time). Every figure is the median of
   ``--repeats`` runs after a warm-up (``benchmarks/_timing.py``), and the
   ratios come from the same run.

Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _provenance import git_commit, uncommitted_sources, write_json  # noqa: E402


class PeakRSS:
    """Peak resident set size (bytes) of this process while in the ``with`` block."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak = 0
        self.base = 0
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
        self.base = self.rss()
        self.peak = self.base
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.rss())


def _process_cpu_s() -> float:
    """CPU seconds (user and system) of this process so far, all of its threads."""
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def _set_allocator(mode: str) -> str:
    """Set the process's malloc as ``mode`` asks; return what is in force (for the JSON)."""
    if mode == "default":
        return "default"
    try:
        from diffseglung_core.allocator import keep_freed_memory
    except ImportError:
        return "default (these sources have no diffseglung_core.allocator)"
    return "keep" if keep_freed_memory() else "default (not glibc)"


def bench_engine(shape, features, checkpoint=None, device="cpu", own_lung_mask=False, scan=None):
    import hashlib

    import torch

    from diffseglung_core.device import get_device
    from diffseglung_core.io import read_scan
    from diffseglung_core.phantom import make_phantom
    from diffseglung_core.segment import segment_volume

    device = str(get_device(device))  # what runs: an absent accelerator falls back to the CPU
    cuda = device.startswith("cuda")
    t = time.perf_counter()
    if scan is None:
        ph = make_phantom(shape, seed=0)
        volume, true_lung = ph.volume, ph.lung > 0
    else:
        volume, true_lung, own_lung_mask = read_scan(scan), None, True
        shape = volume.shape
    t_load = time.perf_counter() - t
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    with PeakRSS() as mem:
        t, cpu = time.perf_counter(), _process_cpu_s()
        res = segment_volume(volume, lung_mask=None if own_lung_mask else true_lung,
                             features=features, checkpoint=checkpoint, device=device)
        wall, cpu = time.perf_counter() - t, _process_cpu_s() - cpu
    found = np.asarray(res.lung) > 0
    dice = None if true_lung is None else 2.0 * np.count_nonzero(true_lung & found) / max(
        np.count_nonzero(true_lung) + np.count_nonzero(found), 1)
    return {"shape": list(shape), "scan": None if scan is None else str(scan), "features": features,
            "device": device, "own_lung_mask": bool(own_lung_mask), "lung_mask_dice": dice,
            "labels_sha1": hashlib.sha1(np.ascontiguousarray(res.labels, np.uint8)).hexdigest(),
            # the true lung's voxels on a phantom, the mask's on a scan; phantom_s: making or reading it
            "lung_voxels": int((found if true_lung is None else true_lung).sum()), "phantom_s": t_load,
            "segment_s": wall, "cpu_s": cpu,
            "peak_extra_gb": (mem.peak - mem.base) / 1e9, "peak_rss_gb": mem.peak / 1e9,
            "gpu_peak_gb": torch.cuda.max_memory_allocated(device) / 1e9 if cuda else None,
            "stages_s": res.timings}


def make_blobs(rows: int, dims: int, k: int, seed: int = 0) -> np.ndarray:
    """``rows x dims`` float32 rows from ``k`` Gaussian blobs (axis-aligned, unequal scales)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (k, dims)).astype(np.float32)
    scales = rng.uniform(0.5, 2.0, (k, dims)).astype(np.float32)
    lab = rng.integers(0, k, rows)
    x = np.empty((rows, dims), np.float32)
    for s in range(0, rows, 100_000):
        n = min(100_000, rows - s)
        x[s:s + n] = centres[lab[s:s + n]] + scales[lab[s:s + n]] * rng.standard_normal((n, dims),
                                                                                         np.float32)
    return x


def bench_gmm(rows, dims, k=8, iters=10, long_iters=30, repeats=3, seed=0):
    """fit_gmm against scikit-learn at equal work; medians of ``repeats`` runs after a warm-up."""
    import warnings

    import torch
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    from _timing import measure
    from diffseglung_core.segment.gmm import fit_gmm

    x = make_blobs(rows, dims, k, seed)
    fitted = {}

    def torch_fit(n_iter, device="cpu", side="torch"):
        def run():  # rows start in host memory on every side (copied to the GPU inside the fit)
            fitted[side] = fit_gmm(x, k, covariance_type="diag", n_init=1, max_iter=n_iter, tol=0.0,
                                   subsample=None, seed=seed, device=device)
        return run

    def sklearn_fit(n_iter):
        def run():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0 never "converges"
                fitted["sklearn"] = GaussianMixture(k, covariance_type="diag", n_init=1, max_iter=n_iter,
                                                    tol=0.0, init_params="k-means++",
                                                    random_state=seed).fit(x)
        return run

    out = {"rows": rows, "dims": dims, "k": k, "dtype": "float32", "covariance": "diag", "n_init": 1,
           "tol": 0.0, "subsample": None, "iterations": [iters, long_iters], "repeats": repeats}
    sides = [("torch", torch_fit), ("sklearn", sklearn_fit)]
    if torch.cuda.is_available():
        sides.append(("torch_gpu", functools.partial(torch_fit, device="cuda", side="torch_gpu")))
        out["gpu"] = torch.cuda.get_device_name(0)
    for side, fit in sides:
        short, long_ = measure(fit(iters), repeats), measure(fit(long_iters), repeats)
        model = fitted[side]
        n_iter = model.n_iter_ if side == "sklearn" else model.n_iter
        assert n_iter == long_iters, f"{side} ran {n_iter} EM iterations, not {long_iters}"
        per_iter = (long_["median_s"] - short["median_s"]) / (long_iters - iters)
        score = float(model.score(x[:200_000]))
        out[side] = {"fit_s": {str(iters): short, str(long_iters): long_}, "em_iteration_s": per_iter,
                     "start_s": short["median_s"] - iters * per_iter, "mean_loglik": float(score)}
    tm, sk = fitted["torch"], fitted["sklearn"]
    out["torch"]["posteriors_s"] = measure(lambda: tm.predict_proba(x), repeats)
    out["sklearn"]["posteriors_s"] = measure(lambda: sk.predict_proba(x), repeats)
    if "torch_gpu" in fitted:
        out["torch_gpu"]["posteriors_s"] = measure(
            lambda: fitted["torch_gpu"].predict_proba(x, device="cuda"), repeats)
    s = out["sklearn"]
    for side in ("torch", "torch_gpu"):
        if side in out:
            t = out[side]
            key = "ratios_sklearn_over_torch" + side[len("torch"):]
            fit = str(iters)
            out[key] = {
                "em_iteration": s["em_iteration_s"] / t["em_iteration_s"],
                f"fit_{iters}_iterations": s["fit_s"][fit]["median_s"] / t["fit_s"][fit]["median_s"],
                "posteriors": s["posteriors_s"]["median_s"] / t["posteriors_s"]["median_s"],
            }
    t = out["torch"]
    out["roofline"] = em_roofline(rows, dims, k, t["em_iteration_s"], s["em_iteration_s"], repeats)
    return out


def em_roofline(rows, dims, k, torch_s, sklearn_s, repeats) -> dict:
    """How far one EM iteration (diagonal covariances) is from what the machine can do.

    ``fit_gmm`` reads ``[x, x**2]`` (float32, ``rows x 2 dims``) twice per
    iteration: once for the E step's matrix product, once for the M step's.
    An iteration that fused both steps block by block would read it once; no
    iteration can read less than that. The two products (``2 rows 2 dims k``
    flops each) are also timed alone, as ``fit_gmm`` runs them: narrow products
    (``k`` columns) run far below the peak of square ones.
    """
    import torch

    from _timing import machine_limits, measure
    from diffseglung_core.segment.gmm import _column_sums

    lim = machine_limits(repeats)
    data = 2 * rows * dims * 4  # x and x**2, float32
    flops = 2 * 2.0 * rows * 2 * dims * k
    fused_s = data / (lim["read_gb_s"] * 1e9)
    # the E step: (rows, 2 dims) by the (k, 2 dims) coefficients transposed; the M step:
    # the posteriors (rows, k) transposed by (rows, 2 dims), in batches of rows
    xx, coef, r = torch.randn(rows, 2 * dims), torch.randn(k, 2 * dims), torch.rand(rows, k)
    products = measure(lambda: (xx @ coef.T, _column_sums(r, xx)), repeats)
    return {**lim, "data_bytes": data, "read_per_iteration_bytes": 2 * data, "flops_per_iteration": flops,
            "torch_read_gb_s": 2 * data / torch_s / 1e9,
            "torch_share_of_bandwidth": 2 * data / torch_s / 1e9 / lim["read_gb_s"],
            "torch_share_of_matmul_peak": flops / torch_s / 1e9 / lim["matmul_gflop_s"],
            "products_s": products, "products_gflop_s": flops / products["median_s"] / 1e9,
            "single_pass_bound_s": fused_s,
            "sklearn_over_single_pass_bound": sklearn_s / fused_s}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", type=int, nargs=3, default=[300, 512, 512])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--features", default="density")
    ap.add_argument("--gmm-rows", type=int, default=400_000)
    ap.add_argument("--gmm-dims", type=int, default=64)
    ap.add_argument("--gmm-k", type=int, default=8)
    ap.add_argument("--gmm-iters", type=int, default=10)
    ap.add_argument("--gmm-long-iters", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-engine", action="store_true")
    ap.add_argument("--skip-gmm", action="store_true")
    ap.add_argument("--own-lung-mask", action="store_true",
                    help="the engine computes the lung mask (end to end) instead of taking the true one")
    ap.add_argument("--scan", type=Path, default=None,
                    help="segment this real scan (its own lung mask) instead of a phantom of --shape")
    ap.add_argument("--device", default="cpu", help="the engine's device (cpu, cuda, mps)")
    ap.add_argument("--diffusion-checkpoint", default=None)
    ap.add_argument("--src", type=Path, default=ROOT,
                    help="the checkout whose src/ to time (default: this one; another one: a git "
                         "worktree of an earlier commit, as bench_segment_pair.py does)")
    ap.add_argument("--allocator", choices=("keep", "default"), default="keep",
                    help="keep: freed memory stays in the process for reuse, as the command line "
                         "runs (diffseglung_core.allocator; sources without it run with glibc's "
                         "default); default: glibc's default malloc")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "gmm.json")
    args = ap.parse_args(argv)
    checkout = args.src.resolve()
    sys.path.insert(0, str(checkout / "src"))
    allocator = _set_allocator(args.allocator)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import sklearn.mixture  # noqa: F401  (its thread pools exist before they are pinned)
    import torch

    from _timing import conditions, pin_threads

    out = {"conditions": conditions(), "threads": pin_threads(args.threads),
           "commit": git_commit(checkout), "uncommitted_sources": uncommitted_sources(checkout),
           "src": str(checkout / "src"), "allocator": allocator}
    if not args.skip_engine:
        out["engine"] = bench_engine(tuple(args.shape), args.features, device=args.device,
                                     own_lung_mask=args.own_lung_mask, scan=args.scan)
        e = out["engine"]
        mask = ("own lung mask" + (f" (Dice {e['lung_mask_dice']:.3f})" if e["lung_mask_dice"] is not None
                                   else "") if e["own_lung_mask"] else "true lung mask")
        print(f"engine {e['features']} {tuple(e['shape'])} on {e['device']}, {mask}, allocator {allocator}: "
              f"{e['segment_s']:.1f} s, peak of the process {e['peak_rss_gb']:.2f} GB "
              f"(+{e['peak_extra_gb']:.2f} GB above its start), lung voxels {e['lung_voxels']:,}"
              + (f", GPU memory peak {e['gpu_peak_gb']:.2f} GB" if e.get("gpu_peak_gb") is not None else ""))
        print("  stages: " + ", ".join(f"{k} {v:.1f}s" for k, v in e["stages_s"].items()))
        if args.diffusion_checkpoint and torch.cuda.is_available():
            out["diffusion"] = bench_engine(tuple(args.shape), "both", args.diffusion_checkpoint,
                                            device="cuda")
            print(f"diffusion (GPU): {out['diffusion']['segment_s']:.1f} s")
    if not args.skip_gmm:
        g = bench_gmm(args.gmm_rows, args.gmm_dims, args.gmm_k, args.gmm_iters, args.gmm_long_iters,
                      args.repeats)
        out["gmm"] = g
        it, it2 = args.gmm_iters, args.gmm_long_iters
        print(f"GMM {g['rows']:,} x {g['dims']}, K={g['k']}, diag, float32, tol 0, "
              f"{args.threads} threads, median of {args.repeats} after a warm-up")
        print(f"{'':<10} {'fit ' + str(it) + ' it':>10} {'fit ' + str(it2) + ' it':>10} "
              f"{'EM iter':>9} {'start':>8} {'posteriors':>10} {'mean loglik':>12}")
        for side in ("torch", "sklearn", "torch_gpu"):
            if side not in g:
                continue
            r = g[side]
            print(f"{side:<10} {r['fit_s'][str(it)]['median_s']:9.2f}s "
                  f"{r['fit_s'][str(it2)]['median_s']:9.2f}s {r['em_iteration_s']:8.3f}s "
                  f"{r['start_s']:7.2f}s {r['posteriors_s']['median_s']:9.2f}s {r['mean_loglik']:12.3f}")
        for key in ("ratios_sklearn_over_torch", "ratios_sklearn_over_torch_gpu"):
            if key in g:
                print(f"scikit-learn time / {key[len('ratios_sklearn_over_'):]} time: " + ", ".join(
                    f"{k} {v:.2f}x" for k, v in g[key].items()))
        r = g["roofline"]
        print(f"machine: read {r['read_gb_s']:.1f} GB/s, float32 matmul {r['matmul_gflop_s']:.0f} GFLOP/s; "
              f"torch EM iteration reads {r['read_per_iteration_bytes'] / 1e6:.0f} MB at "
              f"{r['torch_read_gb_s']:.1f} GB/s ({100 * r['torch_share_of_bandwidth']:.0f} % of the read "
              f"bandwidth, {100 * r['torch_share_of_matmul_peak']:.1f} % of the matmul peak); its two "
              f"products alone {1000 * r['products_s']['median_s']:.1f} ms ({r['products_gflop_s']:.0f} "
              f"GFLOP/s); one read of the data: {1000 * r['single_pass_bound_s']:.1f} ms, scikit-learn's "
              f"iteration / that bound: {r['sklearn_over_single_pass_bound']:.1f}x")
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
