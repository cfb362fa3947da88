"""``diffseglung precompute``: cut lung patches from scans into memory-mapped .npy files."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_overwrite_argument, progress_bar

HELP = "cut training patches (CT + lung mask) from scans into ct.npy / mask.npy / patient_ids.npy"

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scans", nargs="+", type=Path,
                        help="scan files or DICOM folders, or folders holding them")
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder to write the patches to")
    parser.add_argument("--patches-per-scan", type=int, default=150, metavar="N",
                        help="patches cut from each scan (default: 150)")
    parser.add_argument("--patch-size", type=int, nargs=3, default=(32, 96, 96), metavar=("D", "H", "W"),
                        help="patch size in voxels, z y x (default: 32 96 96)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="processes (default: all CPUs)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the patch positions (default: 0)")
    parser.add_argument("--float32", action="store_true", help="store the CT as float32 (default: float16)")
    add_overwrite_argument(parser)


def run(args: argparse.Namespace) -> int:
    from ..io import find_scans
    from ..training.patches import precompute

    scans = find_scans(args.scans)
    with progress_bar("precompute") as progress:
        out = precompute(scans, args.output, patches_per_scan=args.patches_per_scan,
                         patch_size=tuple(args.patch_size), workers=args.workers, seed=args.seed,
                         dtype="float32" if args.float32 else "float16", overwrite=args.overwrite,
                         progress=progress)
    n = len(scans) * args.patches_per_scan
    print(f"wrote {n} patches of {tuple(args.patch_size)} voxels from {len(scans)} scans to {out}")
    return 0
