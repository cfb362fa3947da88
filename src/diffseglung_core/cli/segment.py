"""``diffseglung segment``: unsupervised tissue labels of a chest CT (or a folder of them)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._common import add_device_argument, add_overwrite_argument, add_spacing_argument, progress_bar

HELP = "segment the lung tissues of a CT (1 healthy, 2 GGO, 3 fibrosis, 4 emphysema, 5 consolidation)"

_SCAN_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".npz", ".tif", ".tiff", ".zip", ".dcm")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path,
                        help="CT scan (NIfTI, NRRD, NPZ, TIFF incl. one 2D slice, DICOM folder or .zip),"
                             " or a folder of scans (batch mode)")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="label map to write (.nii.gz, .nii, .nrrd, .npz); a folder in batch mode")
    parser.add_argument("--checkpoint", default=None,
                        help="trained model for diffusion features ('default' for the shipped one)")
    parser.add_argument("--features", default="auto",
                        choices=("auto", "density", "radiomics", "diffusion", "both"),
                        help="feature set (auto: both with a checkpoint, else radiomics)")
    parser.add_argument("--timesteps", type=int, nargs="+", default=None,
                        help="diffusion timesteps (default 50 150 300)")
    parser.add_argument("--k", type=int, default=8, help="number of GMM clusters (default 8)")
    add_device_argument(parser)
    parser.add_argument("--lung-mask", default="auto",
                        help="lung mask file on the scan's grid, or 'auto' to compute it")
    add_spacing_argument(parser)
    parser.add_argument("--report", type=Path, default=None,
                        help="write a JSON report (and a CSV table beside it)")
    parser.add_argument("--save-clusters", type=Path, default=None, metavar="DIR",
                        help="write the cluster map of each feature set into DIR")
    parser.add_argument("--no-refine", action="store_true", help="skip Sobel-Diffusion Fusion")
    parser.add_argument("--no-resume", action="store_true",
                        help="batch mode: segment every scan again instead of skipping those "
                             "already done in the summary CSV")
    add_overwrite_argument(parser)


def _is_batch(path: Path) -> bool:
    if not path.is_dir():
        return False
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    # a DICOM series folder holds slices; a batch folder holds scans or series folders
    return any(p.is_dir() or p.name.lower().endswith(_SCAN_SUFFIXES[:-1]) for p in entries) and \
        not any(p.name.lower().endswith(".dcm") for p in entries)


def _label_name(scan: Path) -> str:
    name = scan.name
    for suf in (".nii.gz",) + _SCAN_SUFFIXES:
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return name


def _segment_one(args, scan: Path, output: Path, report_path, clusters_dir) -> dict:
    from ..errors import OutputExistsError
    from ..io import read_mask, read_scan, write_labels
    from ..segment.engine import DEFAULT_TIMESTEPS, segment_volume
    from ..segment.report import make_report, write_report

    if output.exists() and not args.overwrite:
        raise OutputExistsError(output)
    kwargs = {"spacing": tuple(args.spacing)} if args.spacing else {}
    volume = read_scan(scan, **kwargs)
    lung = None if args.lung_mask in (None, "auto") else read_mask(args.lung_mask, volume)
    with progress_bar(f"segment {scan.name}") as progress:
        result = segment_volume(volume, lung_mask=lung, features=args.features,
                                checkpoint=args.checkpoint,
                                timesteps=tuple(args.timesteps or DEFAULT_TIMESTEPS), k=args.k,
                                device=args.device, refine=not args.no_refine, progress=progress)
    write_labels(output, result.labels, volume, overwrite=args.overwrite)
    if clusters_dir is not None:
        clusters_dir.mkdir(parents=True, exist_ok=True)
        for name in result.clusters:
            write_labels(clusters_dir / f"{_label_name(scan)}_clusters_{name}.nii.gz",
                         result.cluster_map(name), volume, overwrite=args.overwrite)
    report = make_report(result.labels, volume.hu, volume.spacing, mapping=result.mapping,
                         timings=result.timings, params=result.params, source=str(scan))
    if report_path is not None:
        write_report(report, report_path, overwrite=True)
    return report


def _run_batch(args: argparse.Namespace) -> int:
    """A folder of scans: one label map and report per scan, one summary row per scan.

    Resumes an interrupted run (see :mod:`diffseglung_core.segment.cohort`);
    under torchrun each rank takes its share of the scans on its own GPU.
    """
    from ..segment.cohort import Rank, report_row, run_cohort

    rank = Rank.from_env()
    args.device = rank.device(args.device)
    scans = sorted(p for p in args.input.iterdir() if not p.name.startswith("."))
    args.output.mkdir(parents=True, exist_ok=True)
    summary = (args.report or args.output / "summary.csv").with_suffix(".csv")

    def segment_one(scan: Path) -> dict:
        out = args.output / f"{_label_name(scan)}_labels.nii.gz"
        report = _segment_one(args, scan, out, args.output / f"{_label_name(scan)}_report.json",
                              args.save_clusters)
        print(f"{scan.name}: wrote {out}")
        return report_row(scan, out, report)

    rows = run_cohort(scans, summary, segment_one, resume=not args.no_resume, rank=rank)
    print(f"wrote {summary}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def run(args: argparse.Namespace) -> int:
    if _is_batch(args.input):
        return _run_batch(args)

    report = _segment_one(args, args.input, args.output, args.report, args.save_clusters)
    for c in report["classes"]:
        print(f"{c['name']:>22}: {c['volume_ml']:9.1f} mL  {c['percent_of_lung']:5.1f} %")
    d = report["density"]
    print(f"LAA-950 {d['laa950_percent']:.1f} %  LAA-910 {d['laa910_percent']:.1f} %  "
          f"PD15 {d['pd15_hu']:.0f} HU")
    flagged = [c for c in report["mapping"]["clusters"] if c["flag"]]
    for c in flagged:
        print(f"cluster {c['cluster']} ({c['name']}): {c['flag']}")
    print(f"wrote {args.output}" + (f" and {args.report}" if args.report else ""))
    return 0
