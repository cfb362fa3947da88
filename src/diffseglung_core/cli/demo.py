"""``diffseglung demo``: the whole pipeline on a bundled synthetic scan, scored against its truth."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..segment.options import SegmentOptions
from ._common import add_overwrite_argument, progress_bar
from ._options import add_option_arguments, options_from_args

#: The engine settings offered as arguments (defaults from SegmentOptions).
OPTIONS = ("features", "device")

HELP = ("segment a synthetic chest CT with known ground truth and write the CT, labels, report, "
        "overview PNG and per-class scores into a folder")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", type=Path, help="folder for the results (created if needed)")
    parser.add_argument("--shape", nargs=3, type=int, default=(64, 192, 192), metavar=("Z", "Y", "X"),
                        help="phantom size in voxels (default: 64 192 192)")
    parser.add_argument("--seed", type=int, default=0, help="phantom seed (default: 0)")
    add_option_arguments(parser, SegmentOptions, OPTIONS)
    add_overwrite_argument(parser)


def run(args: argparse.Namespace) -> int:
    from ..errors import OutputExistsError
    from ..evaluate.metrics import evaluate_labels
    from ..io import write_labels, write_scan
    from ..phantom import make_phantom
    from ..render import axial_overview, montage, save_png
    from ..segment.engine import segment_volume
    from ..segment.report import make_report, write_report

    out: Path = args.output
    names = ("ct.nii.gz", "truth.nii.gz", "labels.nii.gz", "report.json", "report.csv",
             "scores.json", "overview.png")
    if not args.overwrite:
        for name in names:
            if (out / name).exists():
                raise OutputExistsError(out / name)
    out.mkdir(parents=True, exist_ok=True)

    print(f"making a {'x'.join(map(str, args.shape))} phantom (seed {args.seed})")
    phantom = make_phantom(tuple(args.shape), seed=args.seed)
    volume = phantom.volume
    with progress_bar("segment") as progress:
        result = segment_volume(volume, options_from_args(SegmentOptions, args, OPTIONS),
                                progress=progress)

    write_scan(out / "ct.nii.gz", volume, overwrite=args.overwrite)
    write_labels(out / "truth.nii.gz", phantom.labels, volume, overwrite=args.overwrite)
    write_labels(out / "labels.nii.gz", result.labels, volume, overwrite=args.overwrite)
    report = make_report(result.labels, volume.hu, volume.spacing, result=result,
                         source="phantom")
    write_report(report, out / "report.json", overwrite=True)

    scores = evaluate_labels(result.labels, phantom.labels, volume.spacing)
    (out / "scores.json").write_text(json.dumps(scores, indent=2, default=float))
    top = axial_overview(volume.hu, phantom.labels, n_slices=4, lung=phantom.lung)
    bottom = axial_overview(volume.hu, result.labels, n_slices=4, lung=phantom.lung)
    save_png(out / "overview.png", montage([top, bottom], columns=1))

    print(f"{'class':<22}{'Dice':>7}{'HD95 mm':>9}{'truth mL':>10}{'found mL':>10}")
    voxel_ml = volume.voxel_volume_ml
    for s in scores:
        print(f"{s['name']:<22}{s['dice']:>7.3f}{s['hd95_mm']:>9.1f}"
              f"{s['gt_voxels'] * voxel_ml:>10.1f}{s['pred_voxels'] * voxel_ml:>10.1f}")
    print(f"results in {out}/ (overview.png: truth above, segmentation below)")
    return 0
