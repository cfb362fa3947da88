"""Learning from corrections on phantoms: Dice per class after correcting 1, 3 and 10 slices.

Usage::

    python benchmarks/bench_correction.py [--checkpoint CKPT] [--seeds 0 1] [--json PATH]

For each synthetic phantom (:func:`diffseglung_core.phantom.make_phantom`,
known ground truth) the unsupervised segmentation
(:func:`diffseglung_core.segment.engine.segment_volume`, density features) is
computed; a radiologist correcting ``n`` axial slices is simulated by taking
the ground truth on ``n`` evenly spaced lung slices as confirmed voxels; a
correction head (:mod:`diffseglung_core.segment.head`) is trained on them and
labels the scan. Dice per class is measured on all the other slices, for the
unsupervised result and each head. Three heads are trained: on the normalised
CT alone (a 3x3x3 context of HU only), on the CT plus the multi-timestep
diffusion features (what the diffusion features add), and on the same
features with the unsupervised labels of the uncorrected voxels as weak labels
(weight 0.2, ``train_head(prior=...)``).

Without ``--checkpoint`` the shipped model is used when it exists, else a
randomly initialised tiny U-Net (said so in the output: random features).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from diffseglung_core.labels import TISSUE_NAMES
from diffseglung_core.phantom import make_phantom
from diffseglung_core.segment.head import extract_head_features, predict_head, train_head

ROOT = Path(__file__).resolve().parents[1]
CLASSES = (1, 2, 3, 4, 5)


def dice(pred: np.ndarray, truth: np.ndarray, c: int) -> float:
    a, b = pred == c, truth == c
    denom = float(a.sum() + b.sum())
    return float("nan") if denom == 0 else 2.0 * float((a & b).sum()) / denom


def corrected_slices(lung: np.ndarray, n: int) -> list[int]:
    """``n`` axial slices evenly spread over the lung's extent (its first and last 10 % left out)."""
    zs = np.flatnonzero(lung.any(axis=(1, 2)))
    lo, hi = zs[0] + 0.1 * (zs[-1] - zs[0]), zs[-1] - 0.1 * (zs[-1] - zs[0])
    return sorted({int(round(z)) for z in np.linspace(lo, hi, n)}) if n > 1 else [int(round((lo + hi) / 2))]


def model_for(checkpoint):
    from diffseglung_core.model.checkpoint import LoadedModel, default_checkpoint_path, load_model

    if checkpoint:
        return load_model(checkpoint, device="cpu"), str(checkpoint)
    if default_checkpoint_path().is_file():
        return load_model(None, device="cpu"), "default (shipped)"
    from diffseglung_core.model import DiffusionConfig, ModelConfig, UNet3D, UNetConfig

    torch.manual_seed(0)
    cfg = ModelConfig(unet=UNetConfig.tiny(), diffusion=DiffusionConfig(), patch_size=(16, 16, 16))
    return (LoadedModel(UNet3D(cfg.unet).eval(), None, cfg),
            "RANDOM-INIT tiny U-Net (no trained checkpoint available): random conv features")


def run_phantom(seed: int, shape, loaded, args) -> dict:
    from diffseglung_core.segment.engine import segment_volume

    ph = make_phantom(shape, seed=seed)
    truth, lung = ph.labels, ph.lung > 0
    t0 = time.perf_counter()
    unsup = segment_volume(ph.volume, lung_mask=ph.lung, features="density", seed=seed).labels
    t_unsup = time.perf_counter() - t0
    t0 = time.perf_counter()
    feats = extract_head_features(ph.volume, loaded, timesteps=tuple(args.timesteps), lung_mask=ph.lung,
                                  overlap=args.overlap, seed=seed, device=args.device)
    t_feat = time.perf_counter() - t0
    rows = []
    for n in args.slices:
        zs = corrected_slices(lung, n)
        confirmed = np.zeros(truth.shape, bool)
        confirmed[zs] = lung[zs]
        others = np.ones(truth.shape[0], bool)
        others[zs] = False
        rows.append({"method": "unsupervised (density)", "n_slices": n,
                     "dice": {c: dice(unsup[others], truth[others], c) for c in CLASSES}})
        heads = (("head on HU only", feats[:1], None), ("head on HU + diffusion features", feats, None),
                 ("head on HU + diffusion + unsupervised prior", feats, unsup))
        for name, f, prior in heads:
            t0 = time.perf_counter()
            head = train_head(f, truth, confirmed, prior=prior, steps=args.steps, hidden=args.hidden,
                              seed=seed, device=args.device)
            pred = predict_head(head, f, ph.lung, device=args.device)
            rows.append({"method": name, "n_slices": n, "train_s": time.perf_counter() - t0,
                         "dice": {c: dice(pred[others], truth[others], c) for c in CLASSES}})
    return {"seed": seed, "shape": list(shape), "spacing_mm": list(ph.volume.spacing),
            "feature_channels": int(feats.shape[0]), "unsupervised_s": t_unsup, "features_s": t_feat,
            "rows": rows}


def summarise(phantoms: list[dict]) -> list[dict]:
    """Mean Dice over phantoms per (method, n_slices)."""
    keys = [(r["method"], r["n_slices"]) for r in phantoms[0]["rows"]]
    out = []
    for method, n in keys:
        ds = [r["dice"] for p in phantoms for r in p["rows"] if (r["method"], r["n_slices"]) == (method, n)]
        mean = {c: float(np.nanmean([d[c] for d in ds])) for c in CLASSES}
        out.append({"method": method, "n_slices": n, "dice": mean,
                    "mean_dice": float(np.nanmean(list(mean.values())))})
    return out


def table(summary: list[dict]) -> str:
    head = "| corrected slices | method | " + " | ".join(TISSUE_NAMES[c] for c in CLASSES) + " | mean |"
    lines = [head, "|" + " --- |" * (len(CLASSES) + 3)]
    for r in summary:
        vals = " | ".join(f"{r['dice'][c]:.3f}" for c in CLASSES)
        lines.append(f"| {r['n_slices']} | {r['method']} | {vals} | {r['mean_dice']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint",
                   help="diffusion model checkpoint (default: shipped model, else random init)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--shape", type=int, nargs=3, default=[32, 96, 96], metavar=("Z", "Y", "X"))
    p.add_argument("--slices", type=int, nargs="+", default=[1, 3, 10])
    p.add_argument("--timesteps", type=int, nargs="+", default=[25, 100, 250])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--overlap", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "correction.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    loaded, model_name = model_for(args.checkpoint)
    print(f"features from: {model_name}")
    t0 = time.perf_counter()
    phantoms = []
    for seed in args.seeds:
        phantoms.append(run_phantom(seed, tuple(args.shape), loaded, args))
        print(f"phantom seed {seed}: features {phantoms[-1]['features_s']:.0f} s, "
              f"{phantoms[-1]['feature_channels']} channels")
    summary = summarise(phantoms)
    print(table(summary))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": "correction", "features_from": model_name,
              "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "machine": {"platform": platform.platform(), "torch": torch.__version__,
                          "threads": torch.get_num_threads()},
              "total_s": time.perf_counter() - t0, "summary": summary, "phantoms": phantoms,
              "table_markdown": table(summary)}
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
