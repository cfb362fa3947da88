"""``diffseglung evaluate``: Dice, HD95, surface Dice and volume error of a label map against a reference."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._common import add_spacing_argument

HELP = ("compare a predicted label map with a reference: Dice, HD95 (mm), surface Dice and volume "
        "error per class")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pred", type=Path, help="predicted label map")
    parser.add_argument("gt", type=Path, help="reference label map on the same grid")
    add_spacing_argument(parser)
    parser.add_argument("--json", type=Path, default=None, help="also write the table as JSON")
    parser.add_argument("--no-hd95", action="store_true", help="skip HD95 and the surface Dice (faster)")
    parser.add_argument("--tolerance", type=float, default=None, metavar="MM",
                        help="tolerance of the surface Dice (default: one in-plane voxel)")


def run(args: argparse.Namespace) -> int:
    from ..evaluate.metrics import evaluate_labels
    from ..io import read_label_map, read_mask

    gt = read_label_map(args.gt, spacing=args.spacing)
    pred = read_mask(args.pred, gt)
    rows = evaluate_labels(pred, gt.hu.astype("int32"), gt.spacing, distances=not args.no_hd95,
                           tolerance_mm=args.tolerance)
    print(f"{'class':>22} {'Dice':>6} {'HD95 mm':>8} {'NSD':>6} {'dV mL':>8}   "
          f"(NSD: surface Dice at {rows[0]['tolerance_mm']:.2f} mm)")
    for r in rows:
        print(f"{r['name']:>22} {r['dice']:6.3f} {r['hd95_mm']:8.2f} {r['surface_dice']:6.3f} "
              f"{r['volume_error_ml']:8.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0
