"""``diffseglung lungmask``: the weight-free lung mask of a scan."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import (
    add_max_voxels_argument,
    add_overwrite_argument,
    add_position_argument,
    add_spacing_argument,
    add_threads_argument,
    check_label_output,
    output_argument,
    output_for,
    progress_bar,
    use_threads,
)

#: The label map is written whole or not at all (see cli.main).
WHOLE_OR_NOTHING = True

HELP = "compute the lung mask of a chest CT (1 right lung, 2 left lung) and save it as a label map"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scan", type=Path,
                        help="CT scan: NIfTI, NRRD, NPZ, TIFF, a DICOM folder or a .zip of one")
    parser.add_argument("-o", "--output", type=output_argument, required=True,
                        help="label map to write (.nii.gz, .nii, .nrrd or .npz), on the scan's grid, or a "
                             "folder to write <scan>_lungmask.nii.gz into (made when given with a "
                             "trailing /)")
    add_spacing_argument(parser)
    add_position_argument(parser)
    add_max_voxels_argument(parser)
    add_threads_argument(parser)
    add_overwrite_argument(parser)


def run(args: argparse.Namespace) -> int:
    from ..describe import position_note
    from ..io import read_scan, write_labels
    from ..lung import lung_volumes_ml, segment_scan_lungs

    use_threads(args, torch=False)  # the lung mask is numpy and scipy work
    args.output = output_for(args.output, args.scan, "lungmask")
    check_label_output(args.output, args.overwrite)
    kwargs = {"spacing": tuple(args.spacing)} if args.spacing else {}
    volume = read_scan(args.scan, max_voxels=args.max_voxels, **kwargs).with_position(args.patient_position)
    with progress_bar("lung mask") as progress:
        seg = segment_scan_lungs(volume, progress=progress)
    mask = seg.labels
    path = write_labels(args.output, mask, volume, overwrite=args.overwrite)
    vols = lung_volumes_ml(mask, volume.spacing)
    print(f"right lung {vols['right']:.0f} mL, left lung {vols['left']:.0f} mL, "
          f"total {vols['total']:.0f} mL")
    note = position_note(volume.source.metadata.get("patient_position", ""))
    for line in [*seg.notes, *([note] if note else [])]:
        print(f"note: {line}")
    print(f"wrote {path or args.output}")
    return 0
