"""Recipe of the small model shipped in the package (``data/default_model.pt``).

``python -m diffseglung_core.training.default_model --dicom DIR --out DIR``
reads one chest CT DICOM series, halves its in-plane resolution, finds the
lungs, cuts lung patches (plus patches of synthetic phantoms), trains stage 1 and a short
stage 2 on one CPU thread and writes the fp16 checkpoint. The upper quarter of
the scan (superior slices) is held out for the generation metrics.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..io import read_scan
from ..model.config import DiffusionConfig, DistillConfig, ModelConfig, UNetConfig
from ..phantom import make_phantom
from .checkpoint import export_model
from .config import TrainConfig
from .data import PatchArrays, cached_teacher_vectors
from .loop import Trainer

PATCH = (16, 32, 32)

log = logging.getLogger(__name__)


def _downsample_xy(hu: np.ndarray) -> np.ndarray:
    z, y, x = hu.shape
    return hu[:, : y // 2 * 2, : x // 2 * 2].reshape(z, y // 2, 2, x // 2, 2).mean(axis=(2, 4))


def _rough_lung(hu: np.ndarray) -> np.ndarray:
    """The lung mask the shipped checkpoint was trained with: air below -400 HU
    not connected to the in-plane border, components under 5 % of the largest
    dropped. Kept as it was so that the recipe reproduces the shipped weights;
    new training runs use :func:`diffseglung_core.lung.compute_lung_mask`.
    """
    from scipy import ndimage as ndi

    air = hu < -400
    lab, _ = ndi.label(air)
    border = np.unique(np.concatenate([lab[:, [0, -1]].ravel(), lab[:, :, [0, -1]].ravel()]))
    inside = air & ~np.isin(lab, border)
    lab, n = ndi.label(inside)
    if n == 0:
        return inside
    sizes = ndi.sum(inside, lab, index=np.arange(1, n + 1))
    return np.isin(lab, np.flatnonzero(sizes >= max(0.05 * sizes.max(), 1)) + 1)


def build_data(dicom: Path, n_train: int, n_heldout: int, seed: int = 0):
    """Training and held-out :class:`PatchArrays` from the series (and phantoms)."""
    hu = _downsample_xy(read_scan(dicom).hu).astype(np.float32)
    lung = _rough_lung(hu)
    cut = int(hu.shape[0] * 0.75)
    vols = [(f"{dicom}", hu[:cut], lung[:cut])]
    for s in range(2):
        ph = make_phantom((48, 128, 128), seed=s)
        vols.append((f"phantom-seed{s}", ph.volume.hu, ph.lung))
    n_scan = n_train // 2
    train = PatchArrays.from_volumes(vols[:1], PATCH, n_scan, seed=seed)
    if len(vols) > 1:
        extra = PatchArrays.from_volumes(vols[1:], PATCH, (n_train - n_scan) // (len(vols) - 1),
                                         seed=seed + 1)
        train = PatchArrays(np.concatenate([train.ct, extra.ct]),
                            np.concatenate([train.mask, extra.mask]),
                            np.concatenate([train.patient_ids, extra.patient_ids]),
                            train.scans + extra.scans)
    held = PatchArrays.from_volumes([(f"{dicom} (superior quarter)", hu[cut:], lung[cut:])], PATCH,
                                    n_heldout, seed=seed + 2)
    return train, held


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dicom", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--stage1-steps", type=int, default=3000)
    p.add_argument("--stage2-steps", type=int, default=600)
    p.add_argument("--stage2-batch", type=int, default=16)
    p.add_argument("--patches", type=int, default=2048)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    t0 = time.time()
    train, held = build_data(args.dicom, args.patches, 256)
    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / "heldout_ct.npy", held.ct)
    np.save(args.out / "heldout_mask.npy", held.mask)
    log.info("%d training patches %s from %s", len(train), PATCH, train.scans)
    mc = ModelConfig(unet=UNetConfig.small(), diffusion=DiffusionConfig(), patch_size=PATCH)
    tc1 = TrainConfig(steps=args.stage1_steps, batch_size=8, lr=2e-4, ema_decay=0.998,
                      checkpoint_every=250, log_every=10, sample_every=1000, sample_steps=20, stage=1)
    s1 = args.out / "stage1"
    resume1 = s1 / "checkpoint.pt" if (s1 / "checkpoint.pt").is_file() else None
    Trainer(mc, tc1, train, s1, resume=resume1).run()
    log.info("stage 1 done in %.0f s", time.time() - t0)

    tv = cached_teacher_vectors(train)
    d = DistillConfig(warmup_start=0, warmup_end=args.stage2_steps // 3, lambda_max=0.5,
                      temperature=0.1, student_hidden=128)
    tc2 = replace(tc1, steps=args.stage2_steps, batch_size=args.stage2_batch, stage=2, sample_every=0,
                  checkpoint_every=100)
    s2 = args.out / "stage2"
    resume2 = s2 / "checkpoint.pt" if (s2 / "checkpoint.pt").is_file() else None
    Trainer(replace(mc, distill=d), tc2, train, s2, teacher_vectors=tv,
            init_from=s1 / "checkpoint.pt", resume=resume2).run()
    export_model(s2 / "checkpoint.pt", args.out / "default_model.pt",
                 {"data": [str(s) for s in train.scans], "patch_size": list(PATCH),
                  "stage1_steps": args.stage1_steps, "stage2_steps": args.stage2_steps,
                  "stage2_batch": args.stage2_batch,
                  "recipe": "diffseglung_core.training.default_model"})
    log.info(json.dumps({"seconds": round(time.time() - t0)}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
