"""Cohort runs: resumable journal, failures recorded, scans shared between ranks."""

from pathlib import Path

import numpy as np
import pytest

from diffseglung_core.device import Rank
from diffseglung_core.errors import Cancelled, ScanReadError
from diffseglung_core.segment.cohort import SUMMARY_FIELDS, Summary, report_row, run_cohort
from diffseglung_core.segment.report import make_report


def _fake_scans(tmp_path, n):
    scans = []
    for i in range(n):
        p = tmp_path / f"scan{i}.nii.gz"
        p.write_bytes(b"x")
        scans.append(p)
    return scans


def _segmenter(out_dir, calls, fail=()):
    labels = np.zeros((4, 8, 8), np.uint8)
    labels[1:3, 2:6, 2:6] = 1
    labels[2, 3:5, 3:5] = 4
    hu = np.where(labels == 4, -970.0, -860.0).astype(np.float32)

    def segment_one(scan: Path) -> dict:
        calls.append(scan.name)
        if scan.name in fail:
            raise ScanReadError(scan, "not an image")
        out = out_dir / f"{scan.name}_labels.npz"
        out.write_bytes(b"labels")
        return report_row(scan, out, make_report(labels, hu, (2.0, 1.0, 1.0)))

    return segment_one


def test_rows_have_volumes_and_density_indices(tmp_path):
    calls = []
    rows = run_cohort(_fake_scans(tmp_path, 1), tmp_path / "summary.csv",
                      _segmenter(tmp_path, calls), log=lambda m: None)
    row = Summary(tmp_path / "summary.csv").rows()[0]
    assert list(row) == list(SUMMARY_FIELDS)
    assert row["status"] == "ok" and rows[0]["scan"] == row["scan"]
    # 32 lung voxels of 2 mm^3: 0.064 mL; 4 emphysema voxels = 12.5 % of lung
    assert float(row["lung_volume_ml"]) == pytest.approx(0.064, abs=1e-3)
    assert float(row["emphysema_percent"]) == pytest.approx(12.5)
    assert float(row["laa950_percent"]) == pytest.approx(12.5)


def test_failed_scan_is_recorded_and_the_run_goes_on(tmp_path):
    calls = []
    scans = _fake_scans(tmp_path, 3)
    run_cohort(scans, tmp_path / "s.csv", _segmenter(tmp_path, calls, fail={"scan1.nii.gz"}),
               log=lambda m: None)
    status = {Path(r["scan"]).name: r["status"] for r in Summary(tmp_path / "s.csv").rows()}
    assert status["scan0.nii.gz"] == status["scan2.nii.gz"] == "ok"
    assert status["scan1.nii.gz"].startswith("failed:") and "not an image" in status["scan1.nii.gz"]


def test_resume_skips_finished_scans_and_retries_failed_ones(tmp_path):
    scans = _fake_scans(tmp_path, 4)
    first = []

    def interrupted(scan):
        if scan.name == "scan2.nii.gz":
            raise Cancelled()
        return _segmenter(tmp_path, first, fail={"scan1.nii.gz"})(scan)

    with pytest.raises(Cancelled):
        run_cohort(scans, tmp_path / "s.csv", interrupted, log=lambda m: None)
    assert first == ["scan0.nii.gz", "scan1.nii.gz"]
    second = []
    run_cohort(scans, tmp_path / "s.csv", _segmenter(tmp_path, second), log=lambda m: None)
    assert second == ["scan1.nii.gz", "scan2.nii.gz", "scan3.nii.gz"]
    assert Summary(tmp_path / "s.csv").finished() == {str(s) for s in scans}
    # a finished scan whose label map was deleted is done again
    (tmp_path / "scan0.nii.gz_labels.npz").unlink()
    third = []
    run_cohort(scans, tmp_path / "s.csv", _segmenter(tmp_path, third), log=lambda m: None)
    assert third == ["scan0.nii.gz"]


def test_ranks_share_the_scans_and_one_summary(tmp_path):
    scans = _fake_scans(tmp_path, 5)
    seen = []
    for r in range(2):
        run_cohort(scans, tmp_path / "s.csv", _segmenter(tmp_path, seen), rank=Rank(r, 2),
                   log=lambda m: None)
    assert sorted(seen) == sorted(s.name for s in scans) and len(seen) == 5
    assert len(Summary(tmp_path / "s.csv").rows()) == 5
    assert Rank(1, 2).share(list(range(5))) == [1, 3]
    assert Rank(0, 1, 0).device("cpu") == "cpu"


def test_segment_command_resumes_a_batch(tmp_path, capsys):
    from diffseglung_core.cli import main
    from diffseglung_core.io import write_scan
    from diffseglung_core.phantom import make_phantom

    folder = tmp_path / "scans"
    folder.mkdir()
    for seed in (0, 1):
        write_scan(folder / f"s{seed}.nii.gz", make_phantom((2, 96, 96), seed=seed).volume)
    (folder / "broken.nii.gz").write_text("not a scan")
    out = tmp_path / "out"
    args = ["segment", str(folder), "-o", str(out), "--features", "density", "--device", "cpu"]
    assert main(args) == 1  # one scan failed
    rows = Summary(out / "summary.csv").rows()
    status = {Path(r["scan"]).name: r["status"] for r in rows}
    assert status["s0.nii.gz"] == status["s1.nii.gz"] == "ok"
    assert status["broken.nii.gz"].startswith("failed:")
    stamp = (out / "s0_labels.nii.gz").stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 1  # the broken scan is retried and fails again; the others are skipped
    assert "2 of 3 scans already done" in capsys.readouterr().out
    assert (out / "s0_labels.nii.gz").stat().st_mtime_ns == stamp
    assert len(Summary(out / "summary.csv").rows()) == 4
