"""``diffseglung radiomics``: the 34 named radiomic features of a scan's masked region."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._common import RunOutputs, add_max_voxels_argument, add_overwrite_argument, add_spacing_argument

#: An interrupted or failed run leaves no JSON behind (see cli.main).
WHOLE_OR_NOTHING = True

HELP = "print the 34 radiomic features (HU statistics, GLCM, LBP, Gabor) of a masked region"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", type=Path,
                        help="CT scan, region of interest or patch (a cube of lung is fine): NIfTI, "
                             "NRRD, NPZ, TIFF, a DICOM folder or a .zip of one")
    parser.add_argument("--mask", type=Path, default=None,
                        help="mask or label map on the image's grid: nonzero voxels are described "
                             "(default: the whole image)")
    add_spacing_argument(parser)
    add_max_voxels_argument(parser)
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
    # a patch or region holds no tissue and no air of a whole chest: only the value checks apply
    volume = read_scan(args.image, whole_scan=False, max_voxels=args.max_voxels, **kwargs)
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
        text = json.dumps({"image": str(args.image), "mask": None if args.mask is None else str(args.mask),
                           "voxels": voxels, "features": features}, indent=1)
        with RunOutputs(args.overwrite) as outputs:
            _write_whole(outputs.claim(args.json), text)
        print(f"wrote {args.json}")
    return 0


def _write_whole(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` (the umask's mode), then rename it."""
    import os

    from ..io.writers import temporary_beside

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_beside(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
