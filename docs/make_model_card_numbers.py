"""Measure the figures of docs/model_card.md from the shipped checkpoint; write model_card_numbers.json.

Usage::

    python docs/make_model_card_numbers.py [--data ../shared/data] [--out docs/model_card_numbers.json]

- Parameter counts of the shipped network and heads (counted from the loaded
  modules), of ``UNetConfig.paper()`` and ``UNetConfig.small()``, and the
  checkpoint's file size.
- Generation metrics as ``diffseglung sample --n 8 --steps 10 --reference
  HELD_OUT`` measures them (8 samples conditioned on the masks of the first 8
  held-out patches; those 8 real patches noised to t = 250 and reconstructed in
  10 DPM-Solver++ steps; PSNR and SSIM in the HU window -1024..400; Frechet
  distance of median/IQR-scaled radiomic features, generated vs real), with the
  held-out patches cut exactly as the training recipe cuts them
  (:func:`diffseglung_core.training.default_model.build_data`: superior quarter
  of A0001, in-plane resolution halved, seed 2). For scale, the same distance
  between 32 training and 32 held-out real patches, and between 32 noise
  patches (standard normal on the model scale, clipped to -1..1, the lung
  masks of the held-out patches) and 32 held-out patches. The 8 samples are drawn
  into ``model_card_samples.png`` beside the JSON (mid axial slices, lung window).

Needs ``lung-pet-ct-dx-A0001/dicom`` from the shared data for the generation
metrics; the parameter counts need nothing. CPU, about a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "src" / "diffseglung_core" / "data" / "default_model.pt"


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
    }


def generation(dicom: Path, png: Path, n: int = 8, steps: int = 10, t_start: int = 250,
               seed: int = 0) -> dict:
    from diffseglung_core.model.checkpoint import load_model
    from diffseglung_core.model.diffusion import Diffusion
    from diffseglung_core.model.generation_metrics import (
        _standardise,
        compare_with_real,
        frechet_distance,
    )
    from diffseglung_core.model.sampling import sample_patches
    from diffseglung_core.radiomics.teacher import teacher_vectors
    from diffseglung_core.training.default_model import build_data

    torch.manual_seed(seed)
    train, held = build_data(dicom, 64, 256)
    model, _, cfg = load_model(None, "cpu")
    diffusion = Diffusion(cfg.diffusion)
    masks = held.batch([i % len(held) for i in range(n)])[1]
    samples = sample_patches(model, diffusion.alphas_cumprod, masks, shape=(n, *cfg.patch_size),
                             steps=steps, seed=seed, precision="auto", batch_size=8)
    from diffseglung_core.render import mid_slice_montage, save_png
    from diffseglung_core.volume import denormalize_hu

    save_png(png, mid_slice_montage(denormalize_hu(samples)))  # as `diffseglung sample` draws it
    ct, mask = held.batch(list(range(n)))
    metrics = compare_with_real(model, diffusion, ct, mask, samples, masks[:, 0].numpy(),
                                t_start=t_start, steps=steps, seed=seed)

    real_ct, real_mask = (a[:, 0].numpy() for a in held.batch(list(range(32))))
    scan_rows = [i for i, pid in enumerate(train.patient_ids) if pid == train.patient_ids[0]][:32]
    train_ct, train_mask = (a[:, 0].numpy() for a in train.batch(scan_rows))
    noise = np.clip(np.random.default_rng(seed).standard_normal(real_ct.shape), -1, 1).astype(np.float32)
    ref = teacher_vectors(real_ct, real_mask)

    def distance(x, m):
        return frechet_distance(_standardise(ref, ref), _standardise(teacher_vectors(x, m), ref))

    return {"n_generated": n, "n_real": n, "steps": steps, "reconstruct_t": t_start, "seed": seed,
            "held_out_patches": len(held), "patch_size": list(cfg.patch_size), **metrics,
            "frechet_train_vs_held_out_32": distance(train_ct, train_mask),
            "frechet_noise_vs_held_out_32": distance(noise, real_mask)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "model_card_numbers.json")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    torch.set_num_threads(args.threads)
    out = {"checkpoint": str(CHECKPOINT.relative_to(ROOT)), "torch": torch.__version__,
           "date": time.strftime("%Y-%m-%d"), "parameters": parameter_counts()}
    dicom = args.data / "lung-pet-ct-dx-A0001" / "dicom"
    if dicom.is_dir():
        t = time.perf_counter()
        out["generation"] = generation(dicom, args.out.parent / "model_card_samples.png")
        out["generation"]["seconds"] = round(time.perf_counter() - t, 1)
    else:
        print(f"{dicom} not found: parameter counts only", file=sys.stderr)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
