"""Helpers shared by the CLI subcommands (progress bars, common options)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path


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


def add_position_argument(parser: argparse.ArgumentParser) -> None:
    from ..gravity import POSITIONS

    parser.add_argument("--patient-position", type=str.upper, default=None, metavar="CODE",
                        choices=tuple(POSITIONS),
                        help="how the patient lay, as DICOM PatientPosition, for files that do not "
                             "store it (NIfTI, NRRD, ...) or to override it: HFS/FFS supine (assumed "
                             "when unknown), HFP/FFP prone, HFDR/FFDR on the right side, HFDL/FFDL "
                             "on the left; the rules for dependent lung follow it")


def add_overwrite_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true",
                        help="replace output files that already exist")


def output_argument(text: str) -> Path:
    """``-o`` of a label map: a name that ends with a path separator (``out/``) is a folder,
    made here when it does not exist yet."""
    path = Path(text)
    if text.endswith(("/", os.sep)) and not path.exists():
        try:
            path.mkdir(parents=True)
        except OSError as err:
            raise argparse.ArgumentTypeError(f"cannot make the folder {path}: {err.strerror}") from None
    return path


def output_for(path: Path, scan: Path, what: str) -> Path:
    """``path``, or ``path / "<scan name>_<what>.nii.gz"`` when ``path`` is an existing folder.

    ``-o out/`` names the file after the scan (:func:`~diffseglung_core.io.scan_name`:
    ``patient-17/dicom`` gives ``out/patient-17_labels.nii.gz``), as batch mode does.
    """
    from ..io import scan_name

    return path / f"{scan_name(scan)}_{what}.nii.gz" if path.is_dir() else path


def check_label_output(path: Path, overwrite: bool) -> None:
    """Refuse a label-map output before any work: an ending no writer takes, or a file
    that exists without ``--overwrite``."""
    from ..errors import OutputExistsError, OutputTypeError
    from ..io.registry import writer_for

    try:
        writer_for(path)
    except OutputTypeError as err:
        if path.suffix:
            raise
        raise OutputTypeError(f"{err}, or a folder: {path} does not exist (give it as {path}{os.sep} "
                              "to make it)") from None
    if path.exists() and not overwrite:
        raise OutputExistsError(path)


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    from ..device import DEVICES

    parser.add_argument("--device", default=DEVICES[0], choices=DEVICES,
                        help=f"where to run torch work (default: {DEVICES[0]})")


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=0, metavar="N",
                        help="CPU threads to use (default 0: about one per core)")


def use_threads(args: argparse.Namespace, *, torch: bool = True) -> None:
    """Apply ``--threads`` to the array work and (with ``torch``) to torch."""
    from ..errors import DiffSegLungError
    from ..parallel import set_cpu_threads

    if args.threads < 0:
        raise DiffSegLungError(f"--threads must be 0 (automatic) or more, got {args.threads}")
    set_cpu_threads(args.threads, torch=torch)


def add_max_voxels_argument(parser: argparse.ArgumentParser) -> None:
    from ..io.limits import DEFAULT_MAX_VOXELS

    parser.add_argument("--max-voxels", type=int, default=None, metavar="N",
                        help="refuse scans whose header declares more voxels, before reading them "
                             f"(default: DIFFSEGLUNG_MAX_VOXELS or {DEFAULT_MAX_VOXELS:,})")


class RunOutputs:
    """The files one run writes, removed together if the run does not finish.

    Use as ``with RunOutputs(overwrite) as outputs:`` and call
    ``outputs.claim(path)`` just before writing each file. If anything
    (an error, Ctrl-C, SIGTERM, running out of memory) ends the block early,
    every claimed file is deleted, so an interrupted run leaves no output of
    its own, complete or partial, behind.

    Parameters
    ----------
    overwrite : bool
        Whether existing files may be replaced (``--overwrite``).
    """

    def __init__(self, overwrite: bool):
        self.overwrite = overwrite
        self.paths: list[Path] = []

    def claim(self, path, *, replace: bool = False) -> Path:
        """Register ``path`` as an output of this run.

        Parameters
        ----------
        path : str or Path
            The file about to be written.
        replace : bool
            Replace an existing file even without ``--overwrite`` (side files
            that the command always rewrites, like a report).

        Returns
        -------
        Path

        Raises
        ------
        OutputExistsError
            The file exists and may not be replaced; it is not claimed (so never deleted).
        """
        from ..errors import OutputExistsError

        path = Path(path)
        if path.exists() and not (self.overwrite or replace):
            raise OutputExistsError(path)
        self.paths.append(path)
        return path

    def __enter__(self) -> RunOutputs:
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:
            return
        for path in self.paths:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
