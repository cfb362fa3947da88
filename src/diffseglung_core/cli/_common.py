"""Helpers shared by the CLI subcommands (progress bars, common options)."""

from __future__ import annotations

import argparse
import contextlib
import sys


@contextlib.contextmanager
def progress_bar(description: str):
    """Yield a :data:`ProgressCallback` that drives a tqdm bar on stderr."""
    from tqdm.auto import tqdm

    bar = tqdm(total=1, desc=description, file=sys.stderr, leave=False,
               disable=None)

    def callback(done: int, total: int, stage: str) -> None:
        if bar.total != total:
            bar.total = total
        bar.n = done
        bar.set_postfix_str(stage, refresh=False)
        bar.refresh()

    try:
        yield callback
    finally:
        bar.close()


def add_spacing_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spacing", nargs=3, type=float, metavar=("Z", "Y", "X"),
                        help="voxel size in mm, for formats that do not store it (TIFF, NPZ)")


def add_overwrite_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true",
                        help="replace output files that already exist")


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    from ..device import DEVICES

    parser.add_argument("--device", default=DEVICES[0], choices=DEVICES,
                        help=f"where to run torch work (default: {DEVICES[0]})")


