"""``diffseglung sample``: generate CT patches with DPM-Solver++ and measure them."""

from __future__ import annotations

import argparse
import json
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
    from ..device import get_device
    from ..errors import OutputExistsError
    from ..io import write_scan
    from ..model.checkpoint import load_model
    from ..model.diffusion import Diffusion
    from ..model.sampling import sample_patches
    from ..render import mid_slice_montage, save_png
    from ..training.data import PatchArrays
    from ..volume import CTVolume, denormalize_hu
    from ._common import progress_bar

    out = args.out
    if (out / "montage.png").exists() and not args.overwrite:
        raise OutputExistsError(out / "montage.png")
    device = get_device(args.device)
    model, _, cfg = load_model(args.model, device)
    diffusion = Diffusion(cfg.diffusion)
    ref = PatchArrays.from_folder(args.reference) if args.reference else None
    # real lung masks condition the samples; without them the patches are lung everywhere
    masks = ref.batch([i % len(ref) for i in range(args.n)])[1] if ref is not None else None
    shape = (args.n, *(args.patch_size or cfg.patch_size))
    with progress_bar("sampling") as progress:
        samples = sample_patches(model, diffusion.alphas_cumprod, masks, shape=shape,
                                 steps=args.steps, seed=args.seed, precision=args.precision,
                                 batch_size=args.batch_size, progress=progress)

    hu = denormalize_hu(samples)
    for i, patch in enumerate(hu):
        write_scan(out / f"sample_{i:03d}.nii.gz", CTVolume.from_array(patch), dtype="float32",
                   overwrite=True)
    save_png(out / "montage.png", mid_slice_montage(hu))

    if ref is not None:
        from ..model.generation_metrics import compare_with_real

        n = min(len(ref), max(args.n, 2))
        ct, mask = ref.batch(list(range(n)))
        metrics = compare_with_real(model, diffusion, ct, mask, samples, masks[:, 0].numpy(),
                                    t_start=args.reconstruct_t, steps=args.steps, seed=args.seed)
        metrics.update(n_real=n, n_generated=len(samples), steps=args.steps,
                       reconstruct_t=args.reconstruct_t)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        print(json.dumps(metrics))
    print(f"{len(samples)} patches of {samples.shape[1:]} voxels written to {out}")
    return 0
