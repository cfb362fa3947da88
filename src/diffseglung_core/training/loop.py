"""The training loop of both stages.

Stage 1 trains the U-Net to predict noise. Stage 2 starts from a stage-1
checkpoint and adds the radiomic distillation term ``lambda(step) * InfoNCE``.

Determinism and resuming: the data order (a :class:`DistributedSampler`
permutation per epoch), the timesteps and the noise of every step are drawn
from generators seeded by ``TrainConfig.seed`` whose states are checkpointed,
so a run resumed from a checkpoint repeats exactly what the uninterrupted run
would have done. Every process draws the timesteps and noise of the whole
global batch and keeps its own rows, so ``N`` processes with ``batch_size/N``
patches each take the same steps as one process with ``batch_size`` patches
(the InfoNCE negatives of stage 2 are the patches of each process's batch).
"""

from __future__ import annotations

import copy
import csv
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import nn
from torch.utils.data import DistributedSampler

from ..device import autocast, autocast_dtype
from ..errors import CheckpointError
from ..model.checkpoint import load_checkpoint, model_config_from_dict
from ..model.config import DistillConfig, ModelConfig
from ..model.diffusion import Diffusion
from ..model.distill import (
    StudentProjection,
    TeacherProjection,
    distill_weight,
    embedding_spread,
    info_nce,
    robust_normalize,
    robust_stats,
)
from ..model.sampling import sample_patches
from ..model.unet import UNet3D
from ..progress import ProgressCallback, report
from ..render import mid_slice_montage, save_png
from ..volume import denormalize_hu
from .checkpoint import make_payload, save_checkpoint
from .config import TrainConfig
from .data import PatchArrays
from .distributed import DistInfo

LOG_FIELDS = ("step", "loss", "mse", "infonce", "lambda", "lr", "grad_norm", "emb_std",
              "emb_mean_cos", "steps_per_s", "patches_per_s")


class _Objective(nn.Module):
    """U-Net plus (stage 2) projection heads; ``forward`` returns the loss."""

    def __init__(self, unet: UNet3D, diffusion: Diffusion,
                 student: Optional[StudentProjection], teacher: Optional[TeacherProjection],
                 temperature: float = 0.1):
        super().__init__()
        self.unet, self.student, self.teacher = unet, student, teacher
        self.diffusion = diffusion
        self.temperature = temperature

    def forward(self, ct, mask, t, noise, teacher_vec=None, lam: float = 0.0):
        if self.student is None:
            mse = self.diffusion.training_loss(self.unet, ct, mask, t, noise)
            return mse, {"mse": mse.detach()}
        mse, feats = self.diffusion.training_loss(self.unet, ct, mask, t, noise,
                                                  return_features=True)
        zs = self.student(feats["bottleneck"])
        zt = self.teacher(teacher_vec)
        nce = info_nce(zs, zt, self.temperature)
        return mse + lam * nce, {"mse": mse.detach(), "infonce": nce.detach(), "z": zs.detach()}


def _ema_update(ema: nn.Module, live: nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), live.parameters()):
            e.mul_(decay).add_(p.detach().float(), alpha=1 - decay)
        for e, b in zip(ema.buffers(), live.buffers()):
            e.copy_(b)


def _sd(module: Optional[nn.Module]):
    return None if module is None else {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


class Trainer:
    """One training stage over a :class:`PatchArrays`.

    Parameters
    ----------
    model_config : ModelConfig
        Network, forward process, (stage 2) distillation heads, patch size.
    train_config : TrainConfig
    data : PatchArrays
    out_dir : folder for ``checkpoint.pt``, ``model.pt``, ``log.csv``, ``tb/``, ``samples/``.
    dist : this process's rank, world size and device.
    teacher_vectors : (N, teacher_dim) raw radiomic vectors of the patches (stage 2).
    init_from : stage-1 checkpoint to start stage 2 from.
    resume : checkpoint of this stage to continue from.
    progress_bar : show a tqdm bar on rank 0.
    """

    def __init__(self, model_config: ModelConfig, train_config: TrainConfig, data: PatchArrays,
                 out_dir, *, dist: DistInfo = DistInfo(), teacher_vectors=None,
                 init_from=None, resume=None, progress_bar: bool = False):
        self.tc = train_config
        self.data = data
        self.out = Path(out_dir)
        self.dist = dist
        self.device = dist.device
        self.progress_bar = progress_bar
        stage2 = train_config.stage == 2
        if stage2 and model_config.distill is None:
            model_config = replace(model_config, distill=DistillConfig())
        if tuple(model_config.patch_size) != data.patch_size:
            model_config = replace(model_config, patch_size=data.patch_size)
        if train_config.batch_size % dist.world_size:
            raise ValueError(f"batch_size {train_config.batch_size} is not divisible by "
                             f"{dist.world_size} processes")
        self.local_batch = train_config.batch_size // dist.world_size
        self.batches_per_epoch = (len(data) // dist.world_size) // self.local_batch
        if self.batches_per_epoch < 1:
            raise ValueError(f"{len(data)} patches are fewer than one batch of {train_config.batch_size}")

        self.teacher_vec = None
        if stage2:
            if teacher_vectors is None:
                raise ValueError("stage 2 needs the radiomic teacher vectors of the patches")
            tv = torch.as_tensor(np.asarray(teacher_vectors), dtype=torch.float32)
            if model_config.teacher_stats is None:
                model_config = replace(model_config, teacher_stats=robust_stats(tv))
            st = model_config.teacher_stats
            self.teacher_vec = robust_normalize(tv, torch.tensor(st["median"]), torch.tensor(st["iqr"]))
        self.config = model_config

        torch.manual_seed(train_config.seed)
        self.diffusion = Diffusion(model_config.diffusion)
        self.unet = UNet3D(model_config.unet).to(self.device)
        self.student = self.teacher = None
        if stage2:
            d = model_config.distill
            self.student = StudentProjection(model_config.unet.bottleneck_channels, d).to(self.device)
            self.teacher = TeacherProjection(d).to(self.device)
        self.objective = _Objective(self.unet, self.diffusion, self.student, self.teacher,
                                    model_config.distill.temperature if stage2 else 0.1)
        self.ema = copy.deepcopy(self.objective).requires_grad_(False)
        self.optimizer = torch.optim.AdamW(self.objective.parameters(), lr=train_config.lr,
                                           betas=tuple(train_config.adam_betas),
                                           weight_decay=train_config.weight_decay)
        dtype = autocast_dtype(self.device, train_config.precision)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=(
            dtype == torch.float16 and self.device.type == "cuda"))
        self.generator = torch.Generator().manual_seed(train_config.seed + 1)
        self.sampler = DistributedSampler(range(len(data)), num_replicas=dist.world_size,
                                          rank=dist.rank, shuffle=True, seed=train_config.seed,
                                          drop_last=True)
        self.step = 0
        self.init_from = str(init_from) if init_from else None
        if init_from is not None:
            self._init_from_stage1(init_from)
        if resume is not None:
            self._resume(resume)
        self.module = self.objective
        if dist.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.module = nn.parallel.DistributedDataParallel(self.objective, device_ids=ids)

    # -- state ----------------------------------------------------------------
    def _init_from_stage1(self, path) -> None:
        ckpt = load_checkpoint(path)
        cfg = model_config_from_dict(ckpt["model_config"])
        if cfg.unet != self.config.unet:
            raise CheckpointError(f"{path}: its U-Net configuration differs from this run's")
        live = (ckpt.get("training") or {}).get("model")
        raw = ({k[len("unet."):]: v for k, v in live.items() if k.startswith("unet.")}
               if live else ckpt["weights"]["unet"])
        self.unet.load_state_dict({k: v.float() for k, v in raw.items()})
        self.ema.unet.load_state_dict({k: v.float() for k, v in ckpt["weights"]["unet"].items()})
        self.ema.student.load_state_dict(self.student.state_dict())
        self.ema.teacher.load_state_dict(self.teacher.state_dict())

    def _resume(self, path) -> None:
        ckpt = load_checkpoint(path)
        tr = ckpt.get("training")
        if not tr:
            raise CheckpointError(f"{path}: has no training state to resume from")
        if int(tr["train_config"]["stage"]) != self.tc.stage:
            raise CheckpointError(f"{path}: is a stage-{tr['train_config']['stage']} checkpoint, "
                                  f"this is stage {self.tc.stage}")
        self.objective.load_state_dict(tr["model"])
        self.ema.load_state_dict(tr["ema"])
        self.optimizer.load_state_dict(tr["optimizer"])
        if tr.get("scaler"):
            self.scaler.load_state_dict(tr["scaler"])
        self.generator.set_state(tr["generator"])
        torch.set_rng_state(tr["torch_rng"])
        if tr.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(tr["cuda_rng"], self.device)
        self.step = int(tr["step"])
        self.init_from = tr.get("init_from")

    def payload(self, with_training: bool = True, half: bool = False) -> dict[str, Any]:
        """The checkpoint of the current state (EMA weights for inference)."""
        cfg = replace(self.config, stage=self.tc.stage, step=self.step)
        training = None
        if with_training:
            training = {
                "train_config": self.tc.to_dict(),
                "step": self.step,
                "model": _sd(self.objective),
                "ema": _sd(self.ema),
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "generator": self.generator.get_state(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
                "scans": list(self.data.scans),
                "init_from": self.init_from,
                "world_size": self.dist.world_size,
            }
        return make_payload(cfg, _sd(self.ema.unet), _sd(self.ema.student), _sd(self.ema.teacher),
                            training=training, half=half)

    # -- one step ---------------------------------------------------------------
    def _batch_indices(self, step: int) -> list[int]:
        epoch, k = divmod(step, self.batches_per_epoch)
        if getattr(self, "_epoch", None) != epoch:
            self.sampler.set_epoch(epoch)
            self._order = list(self.sampler)
            self._epoch = epoch
        return self._order[k * self.local_batch:(k + 1) * self.local_batch]

    def train_step(self) -> dict[str, float]:
        """One optimiser step; returns the step's numbers."""
        tc, dist = self.tc, self.dist
        idx = self._batch_indices(self.step)
        ct, mask = self.data.batch(idx)
        ct, mask = ct.to(self.device, non_blocking=True), mask.to(self.device, non_blocking=True)
        t_all = self.diffusion.sample_timesteps(tc.batch_size, self.generator)
        noise_all = torch.randn((tc.batch_size, 1) + self.data.patch_size, generator=self.generator)
        t = t_all[dist.rank::dist.world_size].to(self.device)
        noise = noise_all[dist.rank::dist.world_size].to(self.device)
        lam, tvec = 0.0, None
        if self.student is not None:
            d = self.config.distill
            lam = distill_weight(self.step, d.warmup_start, d.warmup_end, d.lambda_max)
            tvec = self.teacher_vec[torch.as_tensor(idx)].to(self.device)
        self.module.train()
        with autocast(self.device, tc.precision):
            loss, parts = self.module(ct, mask, t, noise, tvec, lam)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.objective.parameters() if p.grad is not None]
        if tc.grad_clip > 0:
            gnorm = torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
        else:
            gnorm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        decay = min(tc.ema_decay, (1 + self.step) / (10 + self.step))
        _ema_update(self.ema, self.objective, decay)
        self.step += 1
        row = {"step": self.step, "loss": float(loss.detach()), "mse": float(parts["mse"]),
               "lambda": lam, "lr": self.optimizer.param_groups[0]["lr"], "grad_norm": float(gnorm)}
        if "infonce" in parts:
            row["infonce"] = float(parts["infonce"])
            spread = embedding_spread(parts["z"])
            row["emb_std"], row["emb_mean_cos"] = spread["std"], spread["mean_cos"]
        return row

    # -- the run -------------------------------------------------------------------
    def run(self, progress: Optional[ProgressCallback] = None,
            max_seconds: Optional[float] = None) -> dict[str, Any]:
        """Train until ``train_config.steps``, or until ``max_seconds`` have passed.

        Parameters
        ----------
        progress : callable, optional
            ``progress(step, steps, stage)`` after every step.
        max_seconds : float, optional
            Wall-clock budget of this call: no step starts after it is spent;
            the checkpoint and the model are written at the step reached. One
            process only (ranks could stop at different steps).

        Returns
        -------
        dict
            ``{"history", "checkpoint", "model"}``.
        """
        tc, main = self.tc, self.dist.is_main
        if max_seconds is not None and self.dist.distributed:
            raise ValueError("max_seconds stops a run of one process only")
        history: list[dict] = []
        writer = csv_file = bar = None
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            csv_path = self.out / "log.csv"
            new = not csv_path.exists() or self.step == 0
            if not new:  # drop rows logged after the checkpoint we resume from
                with open(csv_path, newline="") as f:
                    kept = [r for r in csv.DictReader(f) if int(r["step"]) <= self.step]
                with open(csv_path, "w", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=LOG_FIELDS, extrasaction="ignore")
                    w.writeheader()
                    w.writerows(kept)
            csv_file = open(csv_path, "w" if new else "a", newline="")
            csv_writer = csv.DictWriter(csv_file, fieldnames=LOG_FIELDS, extrasaction="ignore")
            if new:
                csv_writer.writeheader()
            try:
                from torch.utils.tensorboard import SummaryWriter
                writer = SummaryWriter(str(self.out / "tb"), purge_step=self.step or None)
            except ImportError:  # pragma: no cover - tensorboard is optional
                writer = None
            if self.progress_bar:
                from tqdm.auto import tqdm
                bar = tqdm(total=tc.steps, initial=self.step, desc=f"stage {tc.stage}",
                           unit="step", dynamic_ncols=True)
        ckpt_path = self.out / "checkpoint.pt"
        t0, s0 = time.perf_counter(), self.step
        try:
            while self.step < tc.steps and (max_seconds is None
                                            or time.perf_counter() - t0 < max_seconds):
                row = self.train_step()
                if not math.isfinite(row["loss"]):
                    raise FloatingPointError(f"loss became {row['loss']} at step {self.step}")
                if main:
                    el = max(time.perf_counter() - t0, 1e-9)
                    row["steps_per_s"] = (self.step - s0) / el
                    row["patches_per_s"] = row["steps_per_s"] * tc.batch_size
                    history.append(row)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{row['loss']:.4f}",
                                        patches_s=f"{row['patches_per_s']:.1f}", refresh=False)
                    if self.step % tc.log_every == 0 or self.step == tc.steps:
                        csv_writer.writerow(row)
                        csv_file.flush()
                        if writer is not None:
                            for k, v in row.items():
                                if k != "step":
                                    writer.add_scalar(f"train/{k}", v, self.step)
                    if tc.sample_every and self.step % tc.sample_every == 0:
                        self.save_samples(self.out / "samples" / f"step_{self.step:07d}.png")
                    if self.step % tc.checkpoint_every == 0 or self.step == tc.steps:
                        save_checkpoint(ckpt_path, self.payload())
                report(progress, self.step, tc.steps, f"training stage {tc.stage}")
            if main:
                if history and self.step < tc.steps and self.step % tc.log_every:
                    csv_writer.writerow(history[-1])  # stopped by max_seconds: log the last step
                save_checkpoint(ckpt_path, self.payload())
                save_checkpoint(self.out / "model.pt", self.payload(with_training=False))
        finally:
            if csv_file is not None:
                csv_file.close()
            if writer is not None:
                writer.close()
            if bar is not None:
                bar.close()
        return {"history": history, "checkpoint": ckpt_path, "model": self.out / "model.pt"}

    @torch.no_grad()
    def save_samples(self, path, n: int = 4) -> Path:
        """Generate ``n`` patches with the EMA model and save real | generated mid slices as PNG."""
        n = min(n, len(self.data))
        ct, mask = self.data.batch(list(range(n)))
        fake = sample_patches(self.ema.unet.eval(), self.diffusion.alphas_cumprod, mask,
                              steps=self.tc.sample_steps, seed=1234, precision=self.tc.precision,
                              batch_size=n)
        hu = denormalize_hu(np.concatenate([ct[:, 0].numpy(), fake]))
        return save_png(path, mid_slice_montage(hu, zoom=4, columns=n))
