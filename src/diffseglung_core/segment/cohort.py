"""Cohort runs: many scans, one CSV row per scan, resumable, shared between ranks.

The summary CSV is the run's journal: a row is appended (under a file lock)
as soon as a scan is done, so an interrupted run loses at most the scan in
progress, and a new run skips every scan whose last row says ``ok`` and whose
label map is on disk. Under ``torchrun`` each rank takes every ``WORLD_SIZE``-th
scan and appends to the same CSV.
"""

from __future__ import annotations

import csv
import fcntl
import os
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..device import Rank
from ..errors import Cancelled, DiffSegLungError
from ..labels import LUNG_TISSUES, TISSUE_NAMES
from ..progress import ProgressCallback, report

#: Columns of the summary CSV, in order.
SUMMARY_FIELDS: tuple[str, ...] = (
    "scan", "status", "labels", "lung_volume_ml",
    *(f"{TISSUE_NAMES[t].replace(' ', '_').replace('-', '_')}_{unit}"
      for t in LUNG_TISSUES for unit in ("ml", "percent")),
    "laa950_percent", "laa910_percent", "pd15_hu", "hu_offset",
)


def report_row(scan, labels_path, report: dict) -> dict:
    """One summary row from a :func:`~.report.make_report` report."""
    row = {"scan": str(scan), "status": "ok", "labels": str(labels_path),
           "lung_volume_ml": f"{report['lung_volume_ml']:.3f}"}
    for c in report["classes"]:
        key = c["name"].replace(" ", "_").replace("-", "_")
        row[f"{key}_ml"] = f"{c['volume_ml']:.3f}"
        row[f"{key}_percent"] = f"{c['percent_of_lung']:.3f}"
    d = report["density"]
    row.update(laa950_percent=f"{d['laa950_percent']:.3f}",
               laa910_percent=f"{d['laa910_percent']:.3f}", pd15_hu=f"{d['pd15_hu']:.1f}",
               hu_offset=f"{d.get('hu_offset', 0.0):.1f}")
    return row


class Summary:
    """The summary CSV of a cohort run (append-only, safe for several processes)."""

    def __init__(self, path):
        self.path = Path(path)

    def rows(self) -> list[dict]:
        if not self.path.exists():
            return []
        with open(self.path, newline="") as fh:
            return list(csv.DictReader(fh))

    def finished(self) -> set[str]:
        """Scans whose last row says ``ok`` and whose label map exists."""
        last = {r["scan"]: r for r in self.rows()}
        return {s for s, r in last.items() if r["status"] == "ok" and Path(r["labels"]).exists()}

    def append(self, row: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", newline="") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                writer = csv.DictWriter(fh, fieldnames=SUMMARY_FIELDS, extrasaction="ignore")
                if fh.tell() == 0:
                    writer.writeheader()
                writer.writerow({k: row.get(k, "") for k in SUMMARY_FIELDS})
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def run_cohort(scans: Sequence, summary_path, segment_one: Callable[[Path], dict], *,
               resume: bool = True, rank: Rank = Rank(),
               progress: Optional[ProgressCallback] = None,
               log: Optional[Callable[[str], None]] = None) -> list[dict]:
    """Segment this rank's share of ``scans``, one summary row per scan.

    Parameters
    ----------
    scans : sequence of Path
        Scan paths (files or DICOM folders), the same list on every rank.
    summary_path : str or Path
        The summary CSV (created, or appended to).
    segment_one : callable
        ``scan -> row`` (see :func:`report_row`); a
        :class:`~diffseglung_core.errors.DiffSegLungError`, ``MemoryError`` or
        runtime error is recorded as a ``failed`` row and the run goes on.
    resume : bool
        Skip scans already finished in the summary.
    rank : Rank
        This process's share (:meth:`~diffseglung_core.device.Rank.from_env` under torchrun).
    progress : callable, optional
        ``progress(done, total, stage)``.
    log : callable, optional
        Receives one line per resumed run and per failed scan.

    Returns
    -------
    list of dict
        The rows written by this process.
    """
    log = log or (lambda line: None)
    summary = Summary(summary_path)
    done = summary.finished() if resume else set()
    mine = [Path(s) for s in rank.share(list(scans))]
    todo = [s for s in mine if str(s) not in done]
    if len(todo) < len(mine):
        log(f"resuming: {len(mine) - len(todo)} of {len(mine)} scans already done")
    rows = []
    for i, scan in enumerate(todo):
        report(progress, i, len(todo), scan.name)
        try:
            row = segment_one(scan)
        except Cancelled:
            raise
        except (DiffSegLungError, MemoryError, RuntimeError, OSError, ValueError) as err:
            row = {"scan": str(scan), "status": f"failed: {err}"}
            log(f"{scan}: failed: {err}")
        summary.append(row)
        rows.append(row)
    report(progress, len(todo), len(todo), "done")
    return rows
