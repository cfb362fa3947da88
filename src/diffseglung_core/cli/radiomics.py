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
    import numpy as np

    from ..errors import DiffSegLungError, OutputExistsError
    from ..io import read_mask, read_scan
    from ..radiomics import FEATURE_NAMES, batched_features
    from ..radiomics.names import group_of

    if args.json is not None and args.json.exists() and not args.overwrite:
        raise OutputExistsError(args.json)
    kwargs = {"spacing": tuple(args.spacing)} if args.spacing else {}
    volume = read_scan(args.image, **kwargs)
    if args.mask is not None:
        mask = read_mask(args.mask, volume) > 0
        if not mask.any():
            raise DiffSegLungError(f"{args.mask}: the mask is empty")
        # describe the bounding box of the mask only (same result, less work)
        box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(mask))
        hu, mask = volume.hu[box], mask[box]
    else:
        hu, mask = volume.hu, np.ones(volume.shape, bool)
    values = batched_features(hu[None], mask[None])[0].tolist()
    features = dict(zip(FEATURE_NAMES, values))
    print(f"{int(mask.sum())} voxels of {args.image}" + (f" in {args.mask}" if args.mask else ""))
    width = max(len(n) for n in FEATURE_NAMES)
    for name, value in features.items():
        print(f"{name:<{width}}  {value: .6g}  ({group_of(name)})")
    if args.json is not None:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"image": str(args.image), "mask": None if args.mask is None else str(args.mask),
                       "voxels": int(mask.sum()), "features": features}, fh, indent=1)
        print(f"wrote {args.json}")
    return 0
