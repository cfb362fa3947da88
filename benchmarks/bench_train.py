"""Training throughput of the diffusion U-Net: steps/s, patches/s, FLOPs and TFLOP/s.

    python benchmarks/bench_train.py                    # paper config on CUDA if present, tiny on CPU
    python benchmarks/bench_train.py --config small --patch 16 32 32 --batch 8 --json out.json

FLOPs of one optimiser step (forward + backward of the U-Net) are counted with
``torch.utils.flop_counter.FlopCounterMode``; achieved TFLOP/s is that count
over the measured step time, compared with a stated peak: the dense bf16
tensor-core peak from NVIDIA's data sheets for known GPUs, and for a CPU
``cores x clock x 32`` fp32 FLOP/cycle (two AVX2 FMA units), or ``--peak-tflops``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from diffseglung_core.device import autocast, get_device
from diffseglung_core.model.config import DiffusionConfig, UNetConfig
from diffseglung_core.model.diffusion import Diffusion
from diffseglung_core.model.unet import UNet3D

GPU_PEAK_TFLOPS = {  # dense bf16, no sparsity
    "H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "V100": 125.0,
    "RTX 4090": 165.0,
}


def cpu_peak_tflops(threads: int) -> float:
    mhz = 0.0
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("cpu MHz"):
                mhz = max(mhz, float(line.split(":")[1]))
    except OSError:
        pass
    return threads * (mhz or 2500.0) * 1e6 * 32 / 1e12


def peak_tflops(device: torch.device, threads: int) -> tuple[float, str]:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, val in GPU_PEAK_TFLOPS.items():
            if key in name:
                return val, f"{name} dense bf16 data sheet"
        return float("nan"), f"{name} (unknown peak)"
    return cpu_peak_tflops(threads), f"{threads} CPU threads x clock x 32 fp32 FLOP/cycle"


def bench(config: str, patch, batch: int, steps: int, warmup: int, device: torch.device,
          precision: str) -> dict:
    cfg = UNetConfig.preset(config)
    model = UNet3D(cfg).to(device)
    diff = Diffusion(DiffusionConfig())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    ct = (torch.rand((batch, 1) + tuple(patch), generator=g) * 2 - 1).to(device)
    mask = torch.ones_like(ct)

    def step():
        t = diff.sample_timesteps(batch, g).to(device)
        noise = torch.randn(ct.shape, generator=g).to(device)
        with autocast(device, precision):
            loss = diff.training_loss(model, ct, mask, t, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        step()
    flops = fc.get_total_flops()
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    threads = torch.get_num_threads()
    peak, peak_src = peak_tflops(device, threads)
    achieved = flops / dt / 1e12
    return {
        "config": config, "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
        "patch": list(patch), "batch": batch, "device": str(device),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else platform.processor() or "cpu"),
        "threads": threads, "precision": precision, "step_s": dt, "steps_per_s": 1 / dt,
        "patches_per_s": batch / dt, "gflop_per_step": flops / 1e9, "achieved_tflops": achieved,
        "peak_tflops": peak, "peak_source": peak_src,
        "fraction_of_peak": achieved / peak if peak == peak else None,
        "peak_memory_GiB": (torch.cuda.max_memory_allocated(device) / 2 ** 30
                            if device.type == "cuda" else None),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", choices=("paper", "small", "tiny"))
    p.add_argument("--patch", type=int, nargs=3)
    p.add_argument("--batch", type=int)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--peak-tflops", type=float)
    p.add_argument("--json", default="bench_train.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = get_device(args.device)
    runs = []
    if args.config:
        runs.append((args.config, args.patch or (16, 16, 16), args.batch or 4))
    elif device.type == "cuda":
        runs += [("paper", args.patch or (64, 64, 64), args.batch or 8),
                 ("small", args.patch or (16, 32, 32), args.batch or 64)]
    else:
        runs += [("tiny", args.patch or (16, 16, 16), args.batch or 8),
                 ("small", args.patch or (16, 32, 32), args.batch or 8)]
    rows = []
    for cfg, patch, batch in runs:
        r = bench(cfg, patch, batch, args.steps, args.warmup, device, args.precision)
        if args.peak_tflops:
            r["peak_tflops"], r["peak_source"] = args.peak_tflops, "--peak-tflops"
            r["fraction_of_peak"] = r["achieved_tflops"] / args.peak_tflops
        rows.append(r)
    head = (f"{'config':7} {'patch':>12} {'batch':>5} {'steps/s':>8} {'patches/s':>9} "
            f"{'GFLOP/step':>10} {'TFLOP/s':>8} {'peak':>8} {'of peak':>8}")
    print(head)
    for r in rows:
        frac = f"{100 * r['fraction_of_peak']:.1f}%" if r["fraction_of_peak"] is not None else "-"
        print(f"{r['config']:7} {'x'.join(map(str, r['patch'])):>12} {r['batch']:>5} "
              f"{r['steps_per_s']:8.3f} {r['patches_per_s']:9.2f} {r['gflop_per_step']:10.2f} "
              f"{r['achieved_tflops']:8.4f} {r['peak_tflops']:8.3f} {frac:>8}")
    print(f"device: {rows[0]['device_name']} ({rows[0]['device']}); peak: {rows[0]['peak_source']}")
    with open(args.json, "w") as f:
        json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
