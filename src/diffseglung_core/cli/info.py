"""``diffseglung info``: what a scan file holds, as the readers see it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._common import add_max_voxels_argument, add_spacing_argument, progress_bar

HELP = "show a scan's format, shape, spacing, orientation, HU range and series description"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scan", type=Path,
                        help="CT scan: NIfTI, NRRD, NPZ, TIFF, a DICOM folder or a .zip of one")
    add_spacing_argument(parser)
    add_max_voxels_argument(parser)
    parser.add_argument("--series", metavar="UID",
                        help="DICOM series to read (UID, number or description; default: the CT "
                             "series with most slices)")
    parser.add_argument("--hu-offset", type=float, default=0.0, metavar="HU",
                        help="add this to every value first (-1024 for raw scanner units)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from ..describe import position_note, volume_facts
    from ..io import read_scan

    with progress_bar("reading") as progress:
        volume = read_scan(args.scan, spacing=tuple(args.spacing) if args.spacing else None,
                           series=args.series, hu_offset=args.hu_offset, progress=progress,
                           max_voxels=args.max_voxels)
    facts = volume_facts(volume)
    if args.json:
        print(json.dumps(facts))
        return 0
    z, y, x = facts["shape_zyx"]
    sz, sy, sx = facts["spacing_zyx_mm"]
    print(f"file         {facts['path']}")
    print(f"format       {facts['format']}" + (f" ({facts['modality']})" if facts["modality"] else ""))
    print(f"shape        {z} x {y} x {x} (z, y, x); stored as {tuple(facts['stored_shape'])}")
    print(f"spacing      {sz:g} x {sy:g} x {sx:g} mm (z, y, x)")
    print(f"orientation  stored {facts['stored_orientation']}, shown as SPL "
          "(z inferior->superior, y anterior->posterior, x right->left)")
    print(f"HU           {facts['hu_min']:g} .. {facts['hu_max']:g} "
          f"(1st-99th percentile {facts['hu_p1']:g} .. {facts['hu_p99']:g})")
    if facts["description"]:
        print(f"description  {facts['description']}")
    if facts["patient_position"]:
        note = position_note(facts["patient_position"])
        print(f"position     {facts['patient_position']}" + (f": {note}" if note else " (supine)"))
    return 0
