"""Measure the figures of docs/model_card.md from the shipped checkpoint and its training logs.

Usage::

    python docs/make_model_card_numbers.py [--data ../shared/data] [--out docs/model_card_numbers.json]

- Parameter counts of the shipped network and heads (counted from the loaded
  modules), of ``UNetConfig.paper()`` and ``UNetConfig.small()``, the file's
  size and dtypes, and the provenance the recipe stored in it (corpus, both
  stages' settings and steps).
- Training: mean losses over ranges of steps from the logs of the run that
  made the shipped file (``docs/model_card_logs/stage1.csv`` and
  ``stage2.csv``, copies of ``OUT/stage1/log.csv`` and ``OUT/stage2/log.csv``
  of ``scripts/train_default.sh``), drawn into ``model_card_loss.png``, and
  the minutes each stage trained.
- Generation as ``diffseglung sample --steps 10 --reference`` measures it, on
  two sets of 8 patches cut by :func:`~diffseglung_core.training.patches.precompute`
  (seed 7, not the training seed): A0001 (a scan the model was trained on;
  other patches than the training ones, overlapping them) and phantoms of
  seeds 20-21 (never seen). For scale, the radiomic Frechet distance to the
  same 8 real patches of 8 other real patches of the set, and of 8 noise
  patches (standard normal on the model scale, clipped to -1..1, the same
  lung masks). The A0001 samples are drawn into
  ``model_card_samples.png`` (mid axial slices, lung window).

Needs ``lung-pet-ct-dx-A0001/dicom`` from the shared data for the A0001 set.
CPU, about a minute.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "src" / "diffseglung_core" / "data" / "default_model.pt"
LOGS = ROOT / "docs" / "model_card_logs"


def count(module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def parameter_counts() -> dict:
    from diffseglung_core.model.checkpoint import load_model
    from diffseglung_core.model.config import UNetConfig
    from diffseglung_core.model.unet import UNet3D

    model, projection, _ = load_model(None, "cpu")
    ck = torch.load(CHECKPOINT, weights_only=True, map_location="cpu")
    teacher = ck["weights"].get("teacher")
    return {
        "shipped_unet": count(model),
        "shipped_student_head": count(projection) if projection is not None else 0,
        "shipped_teacher_head": int(sum(v.numel() for v in teacher.values())) if teacher else 0,
        "unet_small_config": count(UNet3D(UNetConfig.small())),
        "unet_paper_config": count(UNet3D(UNetConfig.paper())),
        "checkpoint_bytes": CHECKPOINT.stat().st_size,
        "checkpoint_dtypes": sorted({str(v.dtype) for sd in ck["weights"].values() if sd
                                     for v in sd.values()}),
    }, ck.get("provenance")


def read_log(path: Path) -> list[dict]:
    return [{k: float(v) if v else None for k, v in row.items()} for row in csv.DictReader(open(path))]


def loss_table(rows: list[dict], columns, bins: int = 6) -> list[dict]:
    """Means of ``columns`` over ``bins`` equal ranges of steps."""
    steps = np.array([r["step"] for r in rows])
    edges = np.linspace(0, steps.max(), bins + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = [r for r, s in zip(rows, steps) if lo < s <= hi]
        entry = {"steps": f"{int(lo) + 1}-{int(hi)}", "rows": len(sel)}
        for c in columns:
            vals = [r[c] for r in sel if r.get(c) is not None]
            entry[c] = float(np.mean(vals)) if vals else None
        out.append(entry)
    return out


def loss_curve(stage1: list[dict], stage2: list[dict], path: Path, size=(640, 240)) -> None:
    """Noise MSE (white) and InfoNCE (orange), log scale 1e-3..10, stage 2 right of the blue line."""
    from PIL import Image, ImageDraw

    w, h = size
    img = Image.new("RGB", size, (20, 20, 20))
    d = ImageDraw.Draw(img)
    for dec in range(-3, 2):
        y = h - 1 - (dec + 3) / 4 * (h - 1)
        d.line([(0, y), (w, y)], fill=(70, 70, 70))
    n1 = stage1[-1]["step"] if stage1 else 0
    total = n1 + (stage2[-1]["step"] if stage2 else 0)

    def pts(rows, key, offset):
        return [((offset + r["step"]) / total * (w - 1),
                 h - 1 - (np.log10(max(r[key], 1e-3)) + 3) / 4 * (h - 1))
                for r in rows if r.get(key) is not None]

    d.line([(n1 / total * (w - 1), 0), (n1 / total * (w - 1), h)], fill=(80, 120, 255))
    d.line(pts(stage1, "mse", 0) + pts(stage2, "mse", n1), fill=(240, 240, 240))
    if stage2 and pts(stage2, "infonce", n1):
        d.line(pts(stage2, "infonce", n1), fill=(255, 150, 40))
    img.save(path)


def _phantom(seed: int):
    from diffseglung_core.phantom import make_phantom

    ph = make_phantom((48, 160, 160), seed=seed)
    return ph.volume, np.asarray(ph.lung) != 0, None


def generation(data: Path, png: Path, n: int = 8, steps: int = 10, t_start: int = 250,
               seed: int = 0) -> dict:
    from diffseglung_core.model.checkpoint import load_model
    from diffseglung_core.model.diffusion import Diffusion
    from diffseglung_core.model.generation_metrics import compare_with_real, generation_report
    from diffseglung_core.model.sampling import sample_patches
    from diffseglung_core.render import mid_slice_montage, save_png
    from diffseglung_core.training.data import PatchArrays
    from diffseglung_core.training.patches import PatchSource, precompute
    from diffseglung_core.training.recipe import corpus_sources
    from diffseglung_core.volume import denormalize_hu

    model, _, cfg = load_model(None, "cpu")
    diffusion = Diffusion(cfg.diffusion)
    sets = {"phantom_unseen_seeds": [PatchSource(f"phantom/chest-s{s}", partial(_phantom, s))
                                     for s in (20, 21)]}
    a0001 = [s for s in corpus_sources(data, patch_depth=cfg.patch_size[0], kinds=("scan",))
             if "A0001" in s.name]
    if a0001:
        sets["a0001_seen_scan"] = a0001
    out = {"n_generated": n, "n_real": n, "steps": steps, "reconstruct_t": t_start, "seed": seed,
           "patch_size": list(cfg.patch_size)}
    for name, sources in sets.items():
        with tempfile.TemporaryDirectory() as tmp:
            folder = precompute(sources, Path(tmp) / "p", patches_per_scan=32 // len(sources),
                                patch_size=cfg.patch_size, workers=1, seed=7)
            ref = PatchArrays.from_folder(folder)
            ct, mask = ref.batch(list(range(len(ref))))
        torch.manual_seed(seed)
        masks = mask[:n]
        samples = sample_patches(model, diffusion.alphas_cumprod, masks, steps=steps, seed=seed,
                                 batch_size=8)
        if name == "a0001_seen_scan":
            save_png(png, mid_slice_montage(denormalize_hu(samples)))
        metrics = compare_with_real(model, diffusion, ct[:n], masks, samples, masks[:, 0].numpy(),
                                    t_start=t_start, steps=steps, seed=seed)
        real, real_mask = ct[:, 0].numpy(), mask[:, 0].numpy()
        noise = np.clip(np.random.default_rng(seed).standard_normal(real[:n].shape), -1, 1)
        metrics["frechet_other_real_vs_real"] = generation_report(
            real[:n], real_mask[:n], real[n:2 * n], real_mask[n:2 * n])["frechet_radiomic"]
        metrics["frechet_noise_vs_real"] = generation_report(
            real[:n], real_mask[:n], noise.astype(np.float32), real_mask[:n])["frechet_radiomic"]
        out[name] = metrics
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "model_card_numbers.json")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    torch.set_num_threads(args.threads)
    params, provenance = parameter_counts()
    out = {"checkpoint": str(CHECKPOINT.relative_to(ROOT)), "torch": torch.__version__,
           "date": time.strftime("%Y-%m-%d"), "parameters": params, "provenance": provenance}
    if (LOGS / "stage1.csv").is_file():
        s1, s2 = read_log(LOGS / "stage1.csv"), read_log(LOGS / "stage2.csv")
        out["training"] = {
            # the logged rate is steps since the start over seconds since the start
            "stage1_minutes": s1[-1]["step"] / s1[-1]["steps_per_s"] / 60,
            "stage2_minutes": s2[-1]["step"] / s2[-1]["steps_per_s"] / 60,
            "stage1": loss_table(s1, ("mse", "steps_per_s")),
            "stage2": loss_table(s2, ("mse", "infonce", "lambda", "emb_std", "emb_mean_cos",
                                      "steps_per_s"), bins=5)}
        loss_curve(s1, s2, args.out.parent / "model_card_loss.png")
    else:
        print(f"{LOGS} not found: no training figures", file=sys.stderr)
    t = time.perf_counter()
    out["generation"] = generation(args.data, args.out.parent / "model_card_samples.png")
    out["generation"]["seconds"] = round(time.perf_counter() - t, 1)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
