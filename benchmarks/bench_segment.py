"""Speed and memory of the segmentation engine, and the torch GMM against scikit-learn.

Usage::

    python benchmarks/bench_segment.py [--shape 300 512 512] [--threads 2]
                                       [--gmm-rows 1000000] [--gmm-dims 384]
                                       [--features density] [--diffusion-checkpoint CKPT]
                                       [--json bench_segment.json]

1. A phantom of ``--shape`` (default 300 x 512 x 512) segmented by the
   weight-free engine on ``--threads`` CPU threads: wall time of
   :func:`segment_volume` (lung mask given, so the engine alone is timed) and the
   peak resident memory above the baseline (sampled every 50 ms from /proc).
   Targets: <= 180 s and <= 6 GB. With ``--diffusion-checkpoint`` and a GPU,
   the diffusion path too (target <= 60 s).
2. The same ``--gmm-rows x --gmm-dims`` float32 data (5 Gaussian blobs) fitted
   by :func:`~diffseglung_core.segment.gmm.fit_gmm` (diag, 1 start, EM on a
   200,000-row subsample, then posteriors of every row) and by
   ``sklearn.mixture.GaussianMixture`` (diag, 1 start, k-means++ init, all
   rows), both at most 20 EM iterations. Target: torch >= 5x faster on CPU.

Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


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


def bench_engine(shape, features, checkpoint=None, device="cpu"):
    from diffseglung_core.phantom import make_phantom
    from diffseglung_core.segment import segment_volume

    t = time.perf_counter()
    ph = make_phantom(shape, seed=0)
    t_phantom = time.perf_counter() - t
    with PeakRSS() as mem:
        t = time.perf_counter()
        res = segment_volume(ph.volume, lung_mask=ph.lung, features=features, checkpoint=checkpoint,
                             device=device)
        wall = time.perf_counter() - t
    return {"shape": list(shape), "features": features, "device": device,
            "lung_voxels": int((ph.lung > 0).sum()), "phantom_s": t_phantom, "segment_s": wall,
            "peak_extra_gb": (mem.peak - mem.base) / 1e9, "peak_rss_gb": mem.peak / 1e9,
            "stages_s": res.timings}


def bench_gmm(rows, dims, k=5, max_iter=20, seed=0):
    import torch
    from sklearn.mixture import GaussianMixture

    from diffseglung_core.segment.gmm import fit_gmm

    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (k, dims)).astype(np.float32)
    scales = rng.uniform(0.5, 2.0, (k, dims)).astype(np.float32)
    lab = rng.integers(0, k, rows)
    x = np.empty((rows, dims), np.float32)
    for s in range(0, rows, 100_000):
        n = min(100_000, rows - s)
        x[s:s + n] = centres[lab[s:s + n]] + scales[lab[s:s + n]] * rng.standard_normal((n, dims),
                                                                                         np.float32)
    out = {"rows": rows, "dims": dims, "k": k, "max_iter": max_iter,
           "torch_threads": torch.get_num_threads()}
    t = time.perf_counter()
    g = fit_gmm(x, k, covariance_type="diag", n_init=1, max_iter=max_iter, subsample=200_000,
                seed=seed, device="cpu")
    post = g.predict_proba(x)
    out["torch_s"] = time.perf_counter() - t
    out["torch_mean_loglik"] = g.score(x[:200_000])
    del post
    t = time.perf_counter()
    sk = GaussianMixture(k, covariance_type="diag", n_init=1, max_iter=max_iter,
                         init_params="k-means++", random_state=seed).fit(x)
    sk.predict_proba(x)
    out["sklearn_s"] = time.perf_counter() - t
    out["sklearn_mean_loglik"] = float(sk.score(x[:200_000]))
    out["speedup"] = out["sklearn_s"] / out["torch_s"]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", type=int, nargs=3, default=[300, 512, 512])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--features", default="density")
    ap.add_argument("--gmm-rows", type=int, default=1_000_000)
    ap.add_argument("--gmm-dims", type=int, default=384)
    ap.add_argument("--skip-engine", action="store_true")
    ap.add_argument("--skip-gmm", action="store_true")
    ap.add_argument("--diffusion-checkpoint", default=None)
    ap.add_argument("--json", type=Path, default=Path("bench_segment.json"))
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    out = {"threads": args.threads, "note": "shared machine: timings taken under load"}
    if not args.skip_engine:
        out["engine"] = bench_engine(tuple(args.shape), args.features)
        e = out["engine"]
        print(f"engine {e['features']} {tuple(e['shape'])}: {e['segment_s']:.1f} s (target 180), "
              f"peak +{e['peak_extra_gb']:.2f} GB (target 6), lung voxels {e['lung_voxels']:,}")
        print("  stages: " + ", ".join(f"{k} {v:.1f}s" for k, v in e["stages_s"].items()))
        if args.diffusion_checkpoint and torch.cuda.is_available():
            out["diffusion"] = bench_engine(tuple(args.shape), "both", args.diffusion_checkpoint,
                                            device="cuda")
            print(f"diffusion (GPU): {out['diffusion']['segment_s']:.1f} s (target 60)")
    if not args.skip_gmm:
        g = bench_gmm(args.gmm_rows, args.gmm_dims)
        out["gmm"] = g
        print(f"GMM {g['rows']:,} x {g['dims']}: torch {g['torch_s']:.1f} s, "
              f"sklearn {g['sklearn_s']:.1f} s, speedup {g['speedup']:.1f}x (target 5x); "
              f"mean log-lik torch {g['torch_mean_loglik']:.2f} sklearn {g['sklearn_mean_loglik']:.2f}")
    args.json.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
