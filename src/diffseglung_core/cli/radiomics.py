"""``diffseglung radiomics``: the 34 named radiomic features of a scan's masked region."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._common import add_overwrite_argument, add_spacing_argument

HELP = "print the 34 radiomic features (HU statistics, GLCM, LBP, Gabor) of a masked region"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", type=Path,
                        help="CT scan or patch: NIfTI, NRRD, NPZ, TIFF, a DICOM folder or a .zip of one")
    parser.add_argument("--mask", type=Path, default=None,
                        help="mask or label map on the image's grid: nonzero voxels are described "
                             "(default: the whole image)")
    add_spacing_argument(parser)
    parser.add_argument("--json", type=Path, default=None, metavar="OUT",
                        help="also write {name: value} to this JSON file")
    add_overwrite_argument(parser)


def run(args: argparse.Namespace) -> int:
    from ..errors import DiffSegLungError, OutputExistsError
    from ..io import read_mask, read_scan
    from ..radiomics import FEATURE_NAMES, region_features
    from ..radiomics.names import group_of

    if args.json is not None and args.json.exists() and not args.overwrite:
        raise OutputExistsError(args.json)
    kwargs = {"spacing": tuple(args.spacing)} if args.spacing else {}
    volume = read_scan(args.image, **kwargs)
    mask = None if args.mask is None else read_mask(args.mask, volume) > 0
    if mask is not None and not mask.any():
        raise DiffSegLungError(f"{args.mask}: the mask is empty")
    features = region_features(volume.hu, mask)
    voxels = volume.hu.size if mask is None else int(mask.sum())
    print(f"{voxels} voxels of {args.image}" + (f" in {args.mask}" if args.mask else ""))
    width = max(len(n) for n in FEATURE_NAMES)
    for name, value in features.items():
        print(f"{name:<{width}}  {value: .6g}  ({group_of(name)})")
    if args.json is not None:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"image": str(args.image), "mask": None if args.mask is None else str(args.mask),
                       "voxels": voxels, "features": features}, fh, indent=1)
        print(f"wrote {args.json}")
    return 0
