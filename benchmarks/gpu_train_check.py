"""Train, measure and use a diffusion model in minutes: the one-command check of a GPU.

    bash benchmarks/gpu_train_check.sh            # the paper's network on the first GPU (<= 8 min)
    python benchmarks/gpu_train_check.py --model tiny --device cpu --stage1-seconds 5 ...

1. Cuts the training corpus's patches (:mod:`diffseglung_core.training.recipe`).
2. Finds the largest batch that fits (doubling until out of memory, on CUDA;
   ``--batch`` fixes it).
3. Trains stage 1 (DDPM) and stage 2 (radiomic distillation, InfoNCE weight
   warmed up from 0 over the first third of the steps the budget allows), each
   for a wall-clock budget, under autocast (``--precision``, bf16 by default
   on CUDA). Per stage: steps, steps/s, patches/s, voxels/s, FLOPs of one step
   (``torch.utils.flop_counter``), achieved TFLOP/s and its share of the
   device's peak (model FLOP utilisation; the peaks of ``bench_train.py``),
   peak memory.
4. Writes the fp16 inference file, samples patches conditioned on real lung
   masks and measures them (radiomic Frechet distance, PSNR / SSIM of
   reconstructions).
5. Segments phantoms and test-bed cases (lesions inserted into real CT) end
   to end with the trained model's diffusion features (``features="both"``)
   and with the weight-free engine (``features="radiomics"``), each with its
   own lung mask; per-class Dice.
6. With ``--ablation``, the paper's HU-preservation ablation: stage 1 trained
   again for the same time with each patch rescaled by its own range
   (``DiffusionConfig(hu_preserving=False)``), and both stage-1 models'
   diffusion features segmented as in 5.

Prints a table and writes JSON (``--json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from bench_train import peak_tflops  # noqa: E402
from diffseglung_core.device import autocast, autocast_dtype, device_warning, get_device  # noqa: E402
from diffseglung_core.model.config import DistillConfig, ModelConfig, UNetConfig  # noqa: E402
from diffseglung_core.training.config import TrainConfig  # noqa: E402
from diffseglung_core.training.data import PatchArrays, cached_teacher_vectors  # noqa: E402
from diffseglung_core.training.distributed import DistInfo  # noqa: E402
from diffseglung_core.training.loop import Trainer  # noqa: E402

CLASSES = ("healthy", "ggo", "fibrosis", "emphysema", "consolidation")


def peak_memory_gib(device: torch.device) -> float:
    """Peak allocated memory of the device (CUDA), else the process's peak RSS, GiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def largest_batch(model_config: ModelConfig, patch, device: torch.device, precision: str,
                  start: int, limit: int) -> int:
    """Largest power-of-two multiple of ``start`` (<= ``limit``) whose training step fits in memory."""
    if device.type != "cuda":
        return start
    from diffseglung_core.model.diffusion import Diffusion
    from diffseglung_core.model.unet import UNet3D

    unet = UNet3D(model_config.unet).to(device)
    diffusion = Diffusion(model_config.diffusion)
    opt = torch.optim.AdamW(unet.parameters())
    best, b = 0, start
    while b <= limit:
        try:
            x = torch.zeros((b, 1, *patch), device=device)
            t = torch.randint(0, diffusion.config.timesteps, (b,), device=device)
            with autocast(device, precision):
                loss = diffusion.training_loss(unet, x, torch.ones_like(x), t, torch.randn_like(x))
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            best, b = b, 2 * b
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            torch.cuda.empty_cache()
    del unet, opt
    torch.cuda.empty_cache()
    if not best:
        raise RuntimeError(f"a batch of {start} patches of {patch} does not fit on {device}")
    # headroom for the stage-2 heads, the EMA copy and fragmentation
    return max(start, best // 2) if best > start else best


def train_stage(trainer: Trainer, seconds: float, device: torch.device) -> dict:
    """Run ``trainer`` for ``seconds``; throughput, FLOPs and utilisation of its steps."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:  # the first step: counted, not timed (warm-up)
        trainer.train_step()
    flops = fc.get_total_flops()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    s0, t0 = trainer.step, time.perf_counter()
    history = trainer.run(max_seconds=seconds)["history"]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    dt = time.perf_counter() - t0
    steps = trainer.step - s0
    batch = trainer.tc.batch_size
    voxels = batch * int(np.prod(trainer.data.patch_size))
    peak, peak_source = peak_tflops(device, torch.get_num_threads())
    achieved = flops * steps / dt / 1e12
    return {"steps": trainer.step, "timed_steps": steps, "seconds": dt, "batch": batch,
            "steps_per_s": steps / dt, "patches_per_s": steps * batch / dt,
            "voxels_per_s": steps * voxels / dt, "gflop_per_step": flops / 1e9,
            "achieved_tflops": achieved, "peak_tflops": peak, "peak_source": peak_source,
            "mfu": achieved / peak if peak == peak else None,
            "peak_memory_GiB": peak_memory_gib(device),
            "last_loss": history[-1]["loss"] if history else None,
            "last_infonce": history[-1].get("infonce") if history else None}


def segment_and_score(volume, truth, scored, models: dict, device: str) -> dict:
    """Per-class Dice of the engine with each model's diffusion features and without any.

    ``models`` maps a name to a model file (``features="both"``); ``"weight-free"`` is
    added (``features="radiomics"``).
    """
    from diffseglung_core.evaluate.metrics import evaluate_labels
    from diffseglung_core.segment.engine import segment_volume

    out = {}
    runs = [(name, {"features": "both", "checkpoint": str(path)}) for name, path in models.items()]
    for name, kw in runs + [("weight-free", {"features": "radiomics"})]:
        t = time.perf_counter()
        labels = segment_volume(volume, device=device, **kw).labels
        rows = evaluate_labels(np.asarray(labels), truth, volume.spacing, within=scored,
                               distances=False)
        out[name] = {"dice": {c: r["dice"] for c, r in zip(CLASSES, rows)},
                     "seconds": time.perf_counter() - t}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=HERE.parent / "runs" / "gpu_check")
    p.add_argument("--json", type=Path, default=None, help="default OUT/gpu_train_check.json")
    p.add_argument("--data", type=Path, default=None, help="shared real CT (default ../shared/data)")
    p.add_argument("--model", default="paper", choices=("paper", "small", "tiny"))
    p.add_argument("--patch", type=int, nargs=3, default=(32, 64, 64), metavar=("D", "H", "W"))
    p.add_argument("--batch", type=int, default=None, help="default: the largest that fits (CUDA), 8 (CPU)")
    p.add_argument("--max-batch", type=int, default=256)
    p.add_argument("--stage1-seconds", type=float, default=150.0)
    p.add_argument("--stage2-seconds", type=float, default=90.0)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--patches-per-source", type=int, default=64)
    p.add_argument("--kinds", nargs="+", default=None, help="corpus kinds (default all)")
    p.add_argument("--phantom-shape", type=int, nargs=3, default=(48, 160, 160))
    p.add_argument("--eval-phantoms", type=int, default=2, help="phantoms segmented (seeds 20, 21, ...)")
    p.add_argument("--eval-shape", type=int, nargs=3, default=(48, 160, 160))
    p.add_argument("--testbed-cases", nargs="*", default=["a0001-mixed", "cip64-mixed", "cipcrop-mixed"])
    p.add_argument("--samples", type=int, default=96,
                   help="patches sampled and reconstructed (the radiomic Frechet distance needs well "
                        "more than its 34 features)")
    p.add_argument("--ablation", action="store_true",
                   help="also train stage 1 without HU preservation for --stage1-seconds and compare "
                        "both stage-1 models' diffusion features (the paper's ablation)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp16", "fp32"))
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: its default)")
    args = p.parse_args(argv)

    from diffseglung_core.training.recipe import KINDS, corpus_summary, precompute_corpus

    if args.threads:
        torch.set_num_threads(args.threads)
    t_all = time.perf_counter()
    why = device_warning(args.device) if args.device not in ("auto", "cpu") else ""
    if why:  # a check of an accelerator that is not there would train the network on the CPU
        print(f"error: --device {args.device}: {why}", file=sys.stderr)
        return 2
    device = get_device(args.device)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    report: dict = {"conditions": {
        "device": str(device), "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                                               else platform.processor() or platform.machine()),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "model": args.model,
        "patch": list(args.patch), "precision": str(autocast_dtype(device, args.precision) or "fp32"),
        "date": time.strftime("%Y-%m-%d")}}

    t = time.perf_counter()
    folder = precompute_corpus(out / "patches", args.data, patch_size=args.patch,
                               patches_per_source=args.patches_per_source, kinds=args.kinds or KINDS,
                               phantom_shape=args.phantom_shape, workers=args.workers, overwrite=True)
    report["patches"] = dict(corpus_summary(folder), seconds=time.perf_counter() - t)
    data = PatchArrays.from_folder(folder)
    print(f"{len(data)} patches in {report['patches']['seconds']:.0f} s", flush=True)

    cfg = ModelConfig(unet=UNetConfig.preset(args.model), patch_size=tuple(args.patch))
    batch = args.batch or (largest_batch(cfg, args.patch, device, args.precision, 8, args.max_batch)
                           if device.type == "cuda" else 8)
    batch = min(batch, len(data))
    common = dict(batch_size=batch, lr=args.lr, ema_decay=0.995, precision=args.precision,
                  checkpoint_every=10 ** 9, log_every=10)

    s1 = Trainer(cfg, TrainConfig(steps=10 ** 9, stage=1, **common), data, out / "stage1",
                 dist=DistInfo(device=device))
    report["stage1"] = train_stage(s1, args.stage1_seconds, device)
    print(f"stage 1: {json.dumps(_short(report['stage1']))}", flush=True)

    t = time.perf_counter()
    tv = cached_teacher_vectors(data, out / "teacher_vectors.npy", device=device)
    teacher_s = time.perf_counter() - t
    expected = max(3, int(report["stage1"]["steps_per_s"] * args.stage2_seconds))
    cfg2 = replace(cfg, stage=2, distill=DistillConfig(warmup_start=0, warmup_end=max(1, expected // 3)))
    s2 = Trainer(cfg2, TrainConfig(steps=10 ** 9, stage=2, **common), data, out / "stage2",
                 dist=DistInfo(device=device), teacher_vectors=tv, init_from=out / "stage1" / "checkpoint.pt")
    report["stage2"] = dict(train_stage(s2, args.stage2_seconds, device), teacher_seconds=teacher_s,
                            warmup_end=cfg2.distill.warmup_end)
    print(f"stage 2: {json.dumps(_short(report['stage2']))}", flush=True)

    from diffseglung_core.training.checkpoint import export_model

    model_path = export_model(out / "stage2" / "checkpoint.pt", out / "model.pt",
                              {"recipe": "benchmarks/gpu_train_check.py", "patches": report["patches"]})
    report["model_file_MB"] = model_path.stat().st_size / 1e6
    report["generation"] = generation(model_path, data, args.samples, device)
    print(f"generation: {json.dumps(report['generation'])}", flush=True)
    models = {"diffusion": model_path}
    if args.ablation:
        # the paper's ablation: stage 1 again for the same time, each patch rescaled to [-1, 1]
        # by its own range instead of the HU-preserving scale; both stage-1 models compared
        cfg_ab = replace(cfg, diffusion=replace(cfg.diffusion, hu_preserving=False))
        ab = Trainer(cfg_ab, TrainConfig(steps=10 ** 9, stage=1, **common), data, out / "ablation",
                     dist=DistInfo(device=device))
        report["ablation_stage1"] = train_stage(ab, args.stage1_seconds, device)
        print(f"stage 1 without HU preservation: {json.dumps(_short(report['ablation_stage1']))}",
              flush=True)
        for name, folder in (("stage1", "stage1"), ("stage1-no-hu-preservation", "ablation")):
            models[name] = export_model(out / folder / "checkpoint.pt", out / f"model_{folder}.pt",
                                        {"recipe": "benchmarks/gpu_train_check.py --ablation"})
    report["segmentation"] = evaluate(models, args, str(device))
    report["conditions"]["total_seconds"] = time.perf_counter() - t_all
    print_table(report)
    path = args.json or out / "gpu_train_check.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, default=float))
    print(f"wrote {path}")
    return 0


def _short(stage: dict) -> dict:
    keys = ("steps", "batch", "steps_per_s", "voxels_per_s", "mfu", "peak_memory_GiB", "last_loss")
    return {k: round(stage[k], 4) if isinstance(stage[k], float) else stage[k] for k in keys}


def generation(model_path: Path, data: PatchArrays, n: int, device: torch.device) -> dict:
    """Samples conditioned on the first ``n`` patches' lung masks, measured against those patches."""
    from diffseglung_core.model.checkpoint import load_model
    from diffseglung_core.model.diffusion import Diffusion
    from diffseglung_core.model.generation_metrics import compare_with_real
    from diffseglung_core.model.sampling import sample_patches

    t = time.perf_counter()
    model, _, cfg = load_model(model_path, device)
    diffusion = Diffusion(cfg.diffusion)
    n = max(2, min(n, len(data)))
    ct, mask = data.batch(list(range(n)))
    samples = sample_patches(model, diffusion.alphas_cumprod, mask, steps=20, batch_size=min(n, 32))
    metrics = compare_with_real(model, diffusion, ct, mask, samples, mask[:, 0].numpy(), steps=20)
    return dict(metrics, n=n, seconds=time.perf_counter() - t)


def evaluate(models: dict, args, device: str) -> dict:
    """Dice of each model's features and the weight-free ones on ``--eval-phantoms`` phantoms
    and the ``--testbed-cases``."""
    from diffseglung_core.evaluate import testbed as tb
    from diffseglung_core.phantom import make_phantom

    res: dict = {"phantoms": {}, "testbed": {}}
    for i in range(args.eval_phantoms):
        ph = make_phantom(tuple(args.eval_shape), seed=20 + i)
        res["phantoms"][f"chest-s{20 + i}"] = segment_and_score(
            ph.volume, np.asarray(ph.labels), None, models, device)
    if args.testbed_cases:
        for name, case in tb.standard_cases(args.data, args.testbed_cases).items():
            res["testbed"][name] = segment_and_score(case.volume, case.truth, case.scored,
                                                     models, device)
    for where in ("phantoms", "testbed"):
        cases = res[where]
        if cases:
            res[f"{where}_mean"] = {m: {c: float(np.nanmean([v[m]["dice"][c] for v in cases.values()]))
                                        for c in CLASSES} for m in [*models, "weight-free"]}
    return res


def print_table(report: dict) -> None:
    print(f"\n{'stage':<15} {'steps':>6} {'batch':>5} {'steps/s':>8} {'Mvox/s':>8} {'GFLOP/step':>10} "
          f"{'TFLOP/s':>8} {'MFU':>7} {'peak GiB':>8}")
    for st in ("stage1", "stage2", "ablation_stage1"):
        if st not in report:
            continue
        r = report[st]
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "-"
        print(f"{st:<15} {r['steps']:>6} {r['batch']:>5} {r['steps_per_s']:8.2f} "
              f"{r['voxels_per_s'] / 1e6:8.2f} {r['gflop_per_step']:10.1f} {r['achieved_tflops']:8.3f} "
              f"{mfu:>7} {r['peak_memory_GiB']:8.2f}")
    print(f"peak: {report['stage1']['peak_source']}")
    seg = report["segmentation"]
    print(f"\n{'Dice':<40}" + "".join(f"{c[:7]:>8}" for c in CLASSES))
    for where in ("phantoms", "testbed"):
        for name, r in seg[where].items():
            for m, row in r.items():
                print(f"{(name + ' ' + m)[:40]:<40}" + "".join(f"{row['dice'][c]:8.3f}" for c in CLASSES))


if __name__ == "__main__":
    raise SystemExit(main())
