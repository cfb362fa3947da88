"""``diffseglung train-head``: learn a scan's corrected labels on frozen diffusion features."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_device_argument, add_overwrite_argument, add_spacing_argument, progress_bar

HELP = ("train a small head on frozen diffusion features from a (corrected) label map, "
        "and optionally label the whole scan with it")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scan", type=Path,
                        help="CT scan: NIfTI, NRRD, NPZ, TIFF, a DICOM folder or a .zip of one")
    parser.add_argument("--features-from", required=True, metavar="CKPT",
                        help="diffusion model checkpoint giving the features ('default': the shipped one)")
    parser.add_argument("--labels", type=Path, required=True,
                        help="label map on the scan's grid (0..5; 255 = not confirmed, left out)")
    parser.add_argument("--confirmed", type=Path,
                        help="mask of the voxels the user confirmed or painted "
                             "(default: every labelled voxel)")
    parser.add_argument("--prior", type=Path, metavar="LABELS",
                        help="labels to keep learning, at low weight, where nothing was confirmed "
                             "(e.g. the unsupervised result)")
    parser.add_argument("--lung-mask", type=Path,
                        help="lung mask on the scan's grid (default: computed)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="head file to write (.pt)")
    parser.add_argument("--predict", type=Path, metavar="OUT_LABELS",
                        help="also label the whole scan with the trained head and write it here")
    parser.add_argument("--timesteps", type=int, nargs="+", metavar="T",
                        help="diffusion timesteps of the features (default: 25 100 250)")
    parser.add_argument("--steps", type=int, default=300, help="training steps (default: 300)")
    parser.add_argument("--seed", type=int, default=0)
    add_spacing_argument(parser)
    add_device_argument(parser)
    add_overwrite_argument(parser)


def run(args: argparse.Namespace) -> int:
    from ..errors import OutputExistsError
    from ..io import read_mask, read_scan, write_labels
    from ..segment.head import (
        DEFAULT_HEAD_TIMESTEPS,
        extract_head_features,
        feature_spec,
        predict_head,
        save_head,
        train_head,
    )
    from ..segment.report import class_volumes

    for out in (args.output, args.predict):
        if out is not None and out.exists() and not args.overwrite:
            raise OutputExistsError(out)
    kwargs = {"spacing": tuple(args.spacing)} if args.spacing else {}
    volume = read_scan(args.scan, **kwargs)
    labels = read_mask(args.labels, volume)
    confirmed = read_mask(args.confirmed, volume) if args.confirmed else None
    prior = read_mask(args.prior, volume) if args.prior else None
    if args.lung_mask:
        lung = read_mask(args.lung_mask, volume)
    else:
        from ..lung import compute_lung_mask

        with progress_bar("lung mask") as progress:
            lung = compute_lung_mask(volume.hu, volume.spacing, progress=progress)
    timesteps = tuple(args.timesteps or DEFAULT_HEAD_TIMESTEPS)
    with progress_bar("diffusion features") as progress:
        features = extract_head_features(volume, args.features_from, timesteps=timesteps,
                                         lung_mask=lung, seed=args.seed, device=args.device,
                                         progress=progress)
    info = feature_spec(args.features_from, timesteps, True, True, args.seed)
    with progress_bar("training") as progress:
        head = train_head(features, labels, confirmed, prior=prior, steps=args.steps, feature_info=info,
                          seed=args.seed, device=args.device, progress=progress)
    save_head(args.output, head, overwrite=args.overwrite)
    print(f"wrote {args.output} ({features.shape[0]} feature channels)")
    if args.predict is not None:
        with progress_bar("labelling") as progress:
            pred = predict_head(head, features, lung, device=args.device, progress=progress)
        write_labels(args.predict, pred, volume, overwrite=args.overwrite)
        print(", ".join(f"{row['name']} {row['percent_of_lung']:.1f}%"
                        for row in class_volumes(pred, volume.spacing)))
        print(f"wrote {args.predict}")
    return 0
