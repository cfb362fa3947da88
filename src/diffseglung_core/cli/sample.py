"""``diffseglung sample``: generate CT patches with DPM-Solver++ and measure them."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_device_argument, add_overwrite_argument

HELP = "generate CT patches with the diffusion model (DPM-Solver++), save NIfTI, a PNG montage and metrics"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, help="checkpoint (default: the model shipped in the package)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--n", type=int, default=8, help="patches to generate (default 8)")
    p.add_argument("--steps", type=int, default=25, help="DPM-Solver++ steps (default 25)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--patch-size", type=int, nargs=3, metavar=("D", "H", "W"),
                   help="default: the size the model was trained on")
    p.add_argument("--reference", type=Path, metavar="DIR",
                   help="precomputed patch folder of real patches: their lung masks condition the "
                        "samples, and generation metrics (radiomic Frechet distance, PSNR/SSIM of "
                        "reconstructions) are written to metrics.json")
    p.add_argument("--reconstruct-t", type=int, default=250,
                   help="timestep real patches are noised to before reconstruction (default 250)")
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp16", "fp32"))
    add_device_argument(p)
    add_overwrite_argument(p)


def run(args) -> int:
    import json

    import nibabel as nib
    import numpy as np
    import torch

    from ..device import autocast, get_device
    from ..errors import OutputExistsError
    from ..model.diffusion import Diffusion
    from ..model.samplers import dpm_solver_pp_sample
    from ..render import montage, save_png, window
    from ..model.checkpoint import load_model
    from ..training.data import PatchArrays
    from ..volume import canonical_affine, denormalize_hu
    from ._common import progress_bar

    out = args.out
    if (out / "montage.png").exists() and not args.overwrite:
        raise OutputExistsError(out / "montage.png")
    device = get_device(args.device)
    model, _, cfg = load_model(args.model, device)
    diffusion = Diffusion(cfg.diffusion)
    size = tuple(args.patch_size or cfg.patch_size)
    ref = PatchArrays.from_folder(args.reference) if args.reference else None
    if ref is not None:
        size = ref.patch_size
    f = cfg.unet.downsampling
    if any(s % f for s in size):
        from ..errors import DiffSegLungError
        raise DiffSegLungError(f"patch size {size} is not divisible by {f}, the model's downsampling")

    gen = torch.Generator().manual_seed(args.seed)
    samples, masks = [], []
    with progress_bar("sampling") as bar:
        for start in range(0, args.n, args.batch_size):
            b = min(args.batch_size, args.n - start)
            if ref is not None:
                idx = [(start + i) % len(ref) for i in range(b)]
                mask = ref.batch(idx)[1].to(device)
            else:
                mask = torch.ones((b, 1) + size, device=device)

            def eps_fn(x, t, mask=mask):
                with autocast(device, args.precision):
                    return model(torch.cat([x, mask], 1), t).float()

            x = dpm_solver_pp_sample(eps_fn, (b, 1) + size, diffusion.alphas_cumprod,
                                     steps=args.steps, generator=gen, device=device)
            samples.append(x[:, 0].cpu().numpy())
            masks.append(mask[:, 0].cpu().numpy())
            bar(start + b, args.n, "sampling")
    samples = np.concatenate(samples)
    masks = np.concatenate(masks)

    out.mkdir(parents=True, exist_ok=True)
    affine = canonical_affine((1.0, 1.0, 1.0))
    for i, s in enumerate(samples):
        nib.save(nib.Nifti1Image(denormalize_hu(s).astype(np.float32), affine),
                 str(out / f"sample_{i:03d}.nii.gz"))
    tiles = []
    for s in samples:
        g = (window(denormalize_hu(s[s.shape[0] // 2])) * 255).astype(np.uint8)
        g = np.kron(g, np.ones((max(1, 128 // g.shape[0]),) * 2, np.uint8))
        tiles.append(np.repeat(g[..., None], 3, axis=-1))
    save_png(out / "montage.png", montage(tiles, columns=min(8, len(tiles))))

    if ref is not None:
        from ..model.generation_metrics import generation_report, reconstruct

        n = min(len(ref), max(args.n, 2))
        ct, mask = ref.batch(list(range(n)))
        recon = reconstruct(model, diffusion, torch.cat([ct, mask], 1), t_start=args.reconstruct_t,
                            steps=args.steps, seed=args.seed)[:, 0].cpu().numpy()
        metrics = generation_report(ct[:, 0].numpy(), mask[:, 0].numpy(), samples, masks, recon)
        metrics.update(n_real=n, n_generated=len(samples), steps=args.steps,
                       reconstruct_t=args.reconstruct_t)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        print(json.dumps(metrics))
    print(f"{len(samples)} patches of {size} voxels written to {out}")
    return 0
