"""``diffseglung train-head``: learn a scan's corrected labels, checked on held-out voxels."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_device_argument, add_overwrite_argument, add_spacing_argument, progress_bar

HELP = ("learn from corrected labels: a small head on weight-free features (or a checkpoint's "
        "diffusion features), checked on held-out confirmed voxels; optionally label the scan")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scan", type=Path,
                        help="CT scan: NIfTI, NRRD, NPZ, TIFF, a DICOM folder or a .zip of one")
    parser.add_argument("--features-from", metavar="CKPT",
                        help="also use a diffusion checkpoint's features ('default': the shipped "
                             "one); default: the weight-free features only")
    parser.add_argument("--labels", type=Path, required=True,
                        help="label map on the scan's grid (0..5; 255 = not confirmed, left out)")
    parser.add_argument("--confirmed", type=Path,
                        help="mask of the voxels the user confirmed or painted "
                             "(default: every labelled voxel)")
    parser.add_argument("--prior", type=Path, metavar="LABELS",
                        help="the unsupervised labels: learned at low weight where nothing was "
                             "confirmed, given to the head as features, and the result the head "
                             "must beat on held-out voxels to be used")
    parser.add_argument("--lung-mask", type=Path,
                        help="lung mask on the scan's grid (default: computed)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="head file to write (.pt)")
    parser.add_argument("--predict", type=Path, metavar="OUT_LABELS",
                        help="also label the whole scan and write it here (with --prior: the "
                             "prior unchanged when the head is not better on held-out voxels)")
    parser.add_argument("--timesteps", type=int, nargs="+", metavar="T",
                        help="diffusion timesteps of --features-from (default: 25 100 250)")
    parser.add_argument("--steps", type=int, default=300, help="training steps (default: 300)")
    parser.add_argument("--holdout", type=float, default=0.25,
                        help="share of the confirmed slices' in-plane tiles held out for validation, "
                             "besides whole slices 10 mm apart (default: 0.25)")
    parser.add_argument("--seed", type=int, default=0)
    add_spacing_argument(parser)
    add_device_argument(parser)
    add_overwrite_argument(parser)


def run(args: argparse.Namespace) -> int:
    from ..errors import OutputExistsError
    from ..io import read_mask, read_scan, write_labels
    from ..segment.head import DEFAULT_HEAD_TIMESTEPS, save_head
    from ..segment.learn import learn_from_corrections, one_hot
    from ..segment.report import class_volumes

    for out in (args.output, args.predict):
        if out is not None and out.exists() and not args.overwrite:
            raise OutputExistsError(out)
    kwargs = {"spacing": tuple(args.spacing)} if args.spacing else {}
    volume = read_scan(args.scan, **kwargs)
    labels = read_mask(args.labels, volume)
    confirmed = labels != 255
    if args.confirmed:
        confirmed &= read_mask(args.confirmed, volume) > 0
    prior = read_mask(args.prior, volume) if args.prior else None
    if args.lung_mask:
        lung = read_mask(args.lung_mask, volume) > 0
    else:
        from ..lung import segment_scan_lungs

        with progress_bar("lung mask") as progress:
            lung = segment_scan_lungs(volume, progress=progress).labels > 0
    timesteps = tuple(args.timesteps or DEFAULT_HEAD_TIMESTEPS)
    posteriors = one_hot(prior[lung]) if prior is not None else None
    with progress_bar("learning") as progress:
        outcome = learn_from_corrections(
            volume.hu, labels, confirmed, lung, spacing=volume.spacing,
            auto=prior, posteriors=posteriors,
            features="diffusion" if args.features_from else "weightfree",
            model=args.features_from, timesteps=timesteps, steps=args.steps, prior=prior is not None,
            holdout=args.holdout, seed=args.seed, device=args.device, progress=progress)
    print(outcome.message)
    save_head(args.output, outcome.head, overwrite=args.overwrite)
    print(f"wrote {args.output} ({outcome.head.config.in_channels} feature channels)")
    if args.predict is not None:
        write_labels(args.predict, outcome.labels, volume, overwrite=args.overwrite)
        print(", ".join(f"{row['name']} {row['percent_of_lung']:.1f}%"
                        for row in class_volumes(outcome.labels, volume.spacing)))
        print(f"wrote {args.predict}")
    return 0
