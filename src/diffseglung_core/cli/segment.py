"""``diffseglung segment``: unsupervised tissue labels of a chest CT (or a folder of them)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..segment.options import SegmentOptions
from ._common import (
    RunOutputs,
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
from ._options import add_option_arguments, options_from_args

#: An interrupted or failed run removes the files it had written (see cli.main).
WHOLE_OR_NOTHING = True

HELP = "segment the lung tissues of a CT (1 healthy, 2 GGO, 3 fibrosis, 4 emphysema, 5 consolidation)"

#: The engine settings offered as arguments (defaults from SegmentOptions).
OPTIONS = ("checkpoint", "features", "timesteps", "k", "device", "evidence", "refine")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path,
                        help="CT scan (NIfTI, NRRD, NPZ, TIFF incl. one 2D slice, DICOM folder or .zip),"
                             " or a folder of scans (batch mode)")
    parser.add_argument("-o", "--output", type=output_argument, required=True,
                        help="label map to write (.nii.gz, .nii, .nrrd, .npz), or a folder to write "
                             "<scan>_labels.nii.gz into (made when given with a trailing /); a folder "
                             "in batch mode")
    add_option_arguments(parser, SegmentOptions, OPTIONS[:-1])
    parser.add_argument("--lung-mask", default="auto",
                        help="lung mask file on the scan's grid, or 'auto' to compute it")
    add_spacing_argument(parser)
    add_position_argument(parser)
    add_max_voxels_argument(parser)
    parser.add_argument("--report", type=Path, default=None,
                        help="write a JSON report (and a CSV table beside it)")
    parser.add_argument("--save-clusters", type=Path, default=None, metavar="DIR",
                        help="write the cluster map of each feature set into DIR")
    add_option_arguments(parser, SegmentOptions, OPTIONS[-1:])
    add_threads_argument(parser)
    parser.add_argument("--no-resume", action="store_true",
                        help="batch mode: segment every scan again instead of skipping those "
                             "already done in the summary CSV")
    add_overwrite_argument(parser)


def _segment_one(args, scan: Path, output: Path, report_path, clusters_dir) -> dict:
    from ..io import read_mask, read_scan, strip_scan_suffix, write_labels
    from ..segment.engine import segment_volume
    from ..segment.report import make_report, report_paths, write_report

    check_label_output(output, args.overwrite)
    kwargs = {"spacing": tuple(args.spacing)} if args.spacing else {}
    volume = read_scan(scan, max_voxels=args.max_voxels, **kwargs).with_position(args.patient_position)
    lung = None if args.lung_mask in (None, "auto") else read_mask(args.lung_mask, volume)
    with progress_bar(f"segment {scan.name}") as progress:
        options = options_from_args(SegmentOptions, args, OPTIONS,
                                    cluster_previews=clusters_dir is not None)
        result = segment_volume(volume, options, lung_mask=lung, progress=progress)
    report = make_report(result.labels, volume.hu, volume.spacing, result=result, source=str(scan),
                         patient_position=volume.source.metadata.get("patient_position", ""))
    with RunOutputs(args.overwrite) as outputs:  # all of them, or none if the run stops
        write_labels(outputs.claim(output), result.labels, volume, overwrite=args.overwrite)
        if clusters_dir is not None:
            clusters_dir.mkdir(parents=True, exist_ok=True)
            for name in result.clusters:
                path = clusters_dir / f"{strip_scan_suffix(scan.name)}_clusters_{name}.nii.gz"
                write_labels(outputs.claim(path), result.cluster_map(name), volume,
                             overwrite=args.overwrite)
        if report_path is not None:
            for path in report_paths(report_path):
                outputs.claim(path, replace=True)
            write_report(report, report_path, overwrite=True)
    return report


def _run_batch(args: argparse.Namespace) -> int:
    """A folder of scans: one label map and report per scan, one summary row per scan.

    Resumes an interrupted run (see :mod:`diffseglung_core.segment.cohort`);
    under torchrun each rank takes its share of the scans on its own GPU.
    """
    from ..device import Rank
    from ..io import scans_in, strip_scan_suffix
    from ..segment.cohort import report_row, run_cohort

    rank = Rank.from_env()
    args.device = rank.device(args.device)
    scans = scans_in(args.input)
    args.output.mkdir(parents=True, exist_ok=True)
    summary = (args.report or args.output / "summary.csv").with_suffix(".csv")

    def segment_one(scan: Path) -> dict:
        name = strip_scan_suffix(scan.name)
        out = args.output / f"{name}_labels.nii.gz"
        report = _segment_one(args, scan, out, args.output / f"{name}_report.json",
                              args.save_clusters)
        print(f"{scan.name}: wrote {out}")
        return report_row(scan, out, report)

    rows = run_cohort(scans, summary, segment_one, resume=not args.no_resume, rank=rank, log=print)
    print(f"wrote {summary}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def _laa_note(report: dict, gap_points: float = 1.0) -> str:
    """Why LAA-950 exceeds the emphysema share by ``gap_points`` or more, in one line ("" if not)."""
    ev = report.get("emphysema_evidence")
    if not ev:
        return ""
    laa = report["density"]["laa950_percent"]
    emphysema = next(c["percent_of_lung"] for c in report["classes"] if c["label"] == 4)
    if laa - emphysema < gap_points:
        return ""
    return (f"LAA-950 counts noise too: about {ev['healthy_laa950_percent']:.1f} % of healthy lung "
            f"reads below -950 HU in this scan (its voxels spread about {ev['noise_hu']:.0f} HU); "
            "emphysema is labelled only where the low-attenuation share is far above that "
            "(--report: emphysema_evidence)")


def run(args: argparse.Namespace) -> int:
    from ..io import is_scan_collection
    from ..segment.report import describe_outcome, report_paths

    use_threads(args)
    if is_scan_collection(args.input):
        return _run_batch(args)

    args.output = output_for(args.output, args.input, "labels")
    report = _segment_one(args, args.input, args.output, args.report, args.save_clusters)
    for c in report["classes"]:
        print(f"{c['name']:>22}: {c['volume_ml']:9.1f} mL  {c['percent_of_lung']:5.1f} %")
    d = report["density"]
    print(f"LAA-950 {d['laa950_percent']:.1f} %  LAA-910 {d['laa910_percent']:.1f} %  "
          f"PD15 {d['pd15_hu']:.0f} HU" + (f" (HU calibrated: {d['hu_offset']:+.0f} HU subtracted)"
                                          if d.get("hu_offset") else ""))
    laa_note = _laa_note(report)
    if laa_note:
        print(f"note: {laa_note}")
    if "patient_position" in report:
        print(f"note: {report['patient_position']['note']}")
    for note in report.get("lung", {}).get("notes", []):
        print(f"note: {note}")
    caution = report.get("ground_glass_evidence", {}).get("caution")
    if caution:
        print(f"note: {caution}")
    flagged = [c for c in report["mapping"]["clusters"] if c["flag"]]
    for c in flagged:
        outcome = describe_outcome(c.get("labelled_percent", {}))
        print(f"cluster {c['cluster']} (named {c['name']}" + (f"; {outcome}" if outcome else "")
              + f"): {c['flag']}")
    written = [args.output, *(report_paths(args.report) if args.report else ())]
    print("wrote " + ", ".join(map(str, written)))
    return 0
