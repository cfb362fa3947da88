"""``diffseglung phantom``: write a synthetic chest CT with its ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_overwrite_argument, progress_bar

HELP = "write a synthetic chest CT (HU) with ground-truth lesion labels and lung mask"

_NAMES = ("ct", "labels", "lung")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..phantom import CASES, PATHOLOGIES

    parser.add_argument("out_dir", type=Path, help="folder to write ct, labels and lung files into")
    parser.add_argument("--shape", nargs=3, type=int, default=(48, 128, 128), metavar=("Z", "Y", "X"),
                        help="grid size in voxels (default: 48 128 128)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--format", choices=("nii.gz", "nrrd"), default="nii.gz",
                        help="file format (default: nii.gz)")
    parser.add_argument("--case", choices=tuple(CASES), default="chest", metavar="CASE",
                        help="named case: " + "; ".join(f"{c.name}: {c.description}" for c in CASES.values())
                             + " (default: chest). Cases with pleural fluid or a mass also write "
                               "effusion or mass masks")
    parser.add_argument("--pathologies", nargs="*", choices=PATHOLOGIES, default=None,
                        metavar="NAME", help=f"lesions to draw, any of {', '.join(PATHOLOGIES)} "
                                             "(default: the case's, all for chest; give none for a "
                                             "healthy chest)")
    parser.add_argument("--z-range", nargs=2, type=float, default=None, metavar=("LOW", "HIGH"),
                        help="nominal z (mm) of the inferior and superior edges of the field of view "
                             "(default: the case's; chest 0 300, lung bases near 30, abdomen below 0)")
    add_overwrite_argument(parser)


def run(args: argparse.Namespace) -> int:
    from ..errors import DiffSegLungError, OutputExistsError
    from ..io import write_labels, write_scan
    from ..labels import TISSUE_NAMES
    from ..phantom import CASES, make_phantom

    spec = CASES[args.case]
    names = _NAMES + (("effusion",) if max(spec.effusion_mm) > 0 else ()) + (("mass",) if spec.mass else ()) \
        + (("pneumothorax",) if spec.pneumothorax_mm > 0 else ())
    paths = {name: args.out_dir / f"{name}.{args.format}" for name in names}
    if not args.overwrite:
        for path in paths.values():
            if path.exists():
                raise OutputExistsError(path)
    if min(args.shape) < 1 or min(args.shape[1:]) < 16:
        raise DiffSegLungError(f"--shape {' '.join(map(str, args.shape))}: need Z >= 1 and Y, X >= 16")
    if args.z_range is not None and not args.z_range[1] > args.z_range[0]:
        raise DiffSegLungError(f"--z-range {args.z_range[0]:g} {args.z_range[1]:g}: HIGH must exceed LOW")
    with progress_bar("phantom") as progress:
        ph = make_phantom(tuple(args.shape), seed=args.seed,
                          pathologies=None if args.pathologies is None else tuple(args.pathologies),
                          case=args.case, z_range=args.z_range, progress=progress)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_scan(paths["ct"], ph.volume, overwrite=args.overwrite)
    write_labels(paths["labels"], ph.labels, ph.volume, overwrite=args.overwrite)
    write_labels(paths["lung"], ph.lung, ph.volume, overwrite=args.overwrite)
    if ph.effusion is not None:
        write_labels(paths["effusion"], ph.effusion, ph.volume, overwrite=args.overwrite)
    if ph.mass is not None:
        write_labels(paths["mass"], ph.mass.astype("uint8"), ph.volume, overwrite=args.overwrite)
    if ph.pneumothorax is not None:
        write_labels(paths["pneumothorax"], ph.pneumothorax.astype("uint8"), ph.volume,
                     overwrite=args.overwrite)
    lung = max(int((ph.labels > 0).sum()), 1)
    shares = ", ".join(f"{TISSUE_NAMES[c]} {100 * (ph.labels == c).sum() / lung:.1f}%"
                       for c in range(1, 6) if (ph.labels == c).any())
    extra = ""
    if ph.effusion is not None:
        extra += f"; pleural fluid {(ph.effusion > 0).sum() * ph.volume.voxel_volume_ml:.0f} mL"
    if ph.mass is not None:
        extra += f"; mass {ph.mass.sum() * ph.volume.voxel_volume_ml:.1f} mL"
    if ph.pneumothorax is not None:
        extra += f"; free pleural air {ph.pneumothorax.sum() * ph.volume.voxel_volume_ml:.0f} mL"
    print(f"phantom ({args.case}) {' x '.join(map(str, ph.volume.shape))} voxels of "
          f"{' x '.join(f'{s:.2f}' for s in ph.volume.spacing)} mm; lung: {shares or 'none'}{extra}")
    for path in paths.values():
        print(f"wrote {path}")
    return 0
