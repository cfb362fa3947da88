"""``diffseglung export-seg``: a label map as DICOM-SEG of its source series."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_overwrite_argument

HELP = "write a label map as a DICOM Segmentation (DICOM-SEG) referencing its source CT series"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("labels", type=Path,
                        help="label map on the scan's grid (NIfTI, NRRD or NPZ; "
                             "1 healthy .. 5 consolidation)")
    parser.add_argument("--reference", type=Path, required=True, metavar="DICOM",
                        help="the DICOM folder, zip or file of the CT series the labels belong to")
    parser.add_argument("--series", help="SeriesInstanceUID, number or description when there are several")
    parser.add_argument("-o", "--output", type=Path, required=True, help="DICOM-SEG file to write (.dcm)")
    add_overwrite_argument(parser)


def run(args: argparse.Namespace) -> int:
    from ..errors import OutputExistsError
    from ..io import read_mask, read_scan
    from ..io.dicom_seg import write_dicom_seg
    from ..segment.report import class_volumes

    if args.output.exists() and not args.overwrite:
        raise OutputExistsError(args.output)
    volume = read_scan(args.reference, series=args.series)
    labels = read_mask(args.labels, volume)
    path = write_dicom_seg(args.output, labels, volume, overwrite=args.overwrite)
    present = [row["name"] for row in class_volumes(labels, volume.spacing) if row["voxels"]]
    print(f"{len(present)} segment(s): {', '.join(present)}")
    print(f"wrote {path}")
    return 0
