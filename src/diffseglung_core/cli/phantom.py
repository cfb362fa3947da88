"""``diffseglung phantom``: write a synthetic chest CT with its ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_overwrite_argument

HELP = "write a synthetic chest CT phantom, its ground-truth labels and its lung mask"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", type=Path, help="folder to write ct, labels and lung files into")
    parser.add_argument("--shape", nargs=3, type=int, default=(48, 128, 128), metavar=("Z", "Y", "X"),
                        help="size in voxels (default: 48 128 128)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--pathologies", nargs="*", default=None,
                        help="subset of: emphysema ggo fibrosis consolidation (default: all)")
    parser.add_argument("--format", choices=("nii.gz", "nrrd"), default="nii.gz",
                        help="file format (default: nii.gz)")
    add_overwrite_argument(parser)


def run(args: argparse.Namespace) -> int:
    from ..io import write_labels, write_scan
    from ..phantom import PATHOLOGIES, make_phantom

    pathologies = PATHOLOGIES if args.pathologies is None else tuple(args.pathologies)
    phantom = make_phantom(tuple(args.shape), seed=args.seed, pathologies=pathologies)
    args.output.mkdir(parents=True, exist_ok=True)
    ext = args.format
    paths = [
        write_scan(args.output / f"ct.{ext}", phantom.volume, overwrite=args.overwrite),
        write_labels(args.output / f"labels.{ext}", phantom.labels, phantom.volume,
                     overwrite=args.overwrite),
        write_labels(args.output / f"lung.{ext}", phantom.lung, phantom.volume,
                     overwrite=args.overwrite),
    ]
    for path in paths:
        print(f"wrote {path}")
    return 0
