"""The ``diffseglung`` dispatcher and the end-to-end demo."""

import json

import numpy as np
import pytest

from diffseglung_core.cli import _command_modules, build_parser, main

EXPECTED = {"info", "lungmask", "phantom", "precompute", "radiomics", "segment", "evaluate",
            "train", "train-distill", "sample", "demo"}


def test_all_subcommands_are_registered():
    names = {name for name, _ in _command_modules()}
    assert EXPECTED <= names


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([name, "--help"])
    assert exc.value.code == 0
    assert "usage: diffseglung " + name in capsys.readouterr().out


def test_a_command_imports_its_module_only():
    import subprocess
    import sys

    code = ("import sys; from diffseglung_core.cli import build_parser; "
            "args = build_parser('segment').parse_args(['segment', 'a.nii.gz', '-o', 'b.nii.gz']); "
            "print(args.command, 'diffseglung_core.cli.phantom' in sys.modules, "
            "'diffseglung_core.cli.segment' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["segment", "False", "True"]


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_bad_input_is_one_line_and_nonzero(tmp_path, capsys):
    bad = tmp_path / "notes.nii.gz"
    bad.write_text("not an image")
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "notes.nii.gz" in err


def test_demo_writes_results_and_scores_against_truth(tmp_path, capsys):
    from diffseglung_core.io import read_mask, read_scan

    out = tmp_path / "demo"
    assert main(["demo", str(out), "--shape", "20", "72", "72", "--features", "density"]) == 0
    for name in ("ct.nii.gz", "truth.nii.gz", "labels.nii.gz", "report.json", "report.csv",
                 "scores.json", "overview.png"):
        assert (out / name).is_file(), name
    ct = read_scan(out / "ct.nii.gz")
    labels = read_mask(out / "labels.nii.gz", ct)
    truth = read_mask(out / "truth.nii.gz", ct)
    assert set(np.unique(labels)) <= {0, 1, 2, 3, 4, 5}
    scores = {s["name"]: s for s in json.loads((out / "scores.json").read_text())}
    # the scores in the file are those of the label map on disk
    healthy = scores["healthy"]
    inter = np.logical_and(labels == 1, truth == 1).sum()
    assert healthy["dice"] == pytest.approx(2 * inter / ((labels == 1).sum() + (truth == 1).sum()))
    assert healthy["dice"] > 0.7
    # a second run refuses to overwrite
    assert main(["demo", str(out), "--shape", "20", "72", "72", "--features", "density"]) == 2
    assert "exists" in capsys.readouterr().err


def test_threads_sets_the_cpu_work(tmp_path, capsys):
    from diffseglung_core import parallel
    from diffseglung_core.io import write_scan
    from diffseglung_core.phantom import make_phantom

    scan = write_scan(tmp_path / "ct.nii.gz", make_phantom((16, 64, 64), seed=0).volume)
    try:
        assert main(["lungmask", str(scan), "-o", str(tmp_path / "a.nii.gz"), "--threads", "1"]) == 0
        assert parallel.cpu_threads() == 1
        assert main(["lungmask", str(scan), "-o", str(tmp_path / "b.nii.gz"), "--threads", "3"]) == 0
        assert parallel.cpu_threads() == 3
    finally:
        parallel.set_cpu_threads(0)
    from diffseglung_core.io import read_mask, read_scan

    ct = read_scan(scan)
    one, three = (read_mask(tmp_path / name, ct) for name in ("a.nii.gz", "b.nii.gz"))
    assert one.any() and np.array_equal(one, three)  # the same mask on 1 and 3 threads
    capsys.readouterr()
    assert main(["lungmask", str(scan), "-o", str(tmp_path / "c.nii.gz"), "--threads", "-1"]) == 2
    assert "--threads must be 0 (automatic) or more" in capsys.readouterr().err


def test_patient_position_can_be_given_for_files_that_do_not_store_it(tmp_path, capsys):
    """A NIfTI file does not say how the patient lay: --patient-position HFP makes the lung mask
    look for pleural fluid in front (and says so); a code that is not a position is refused."""
    from diffseglung_core.io import read_mask, read_scan, write_scan
    from diffseglung_core.phantom import make_phantom

    ph = make_phantom((48, 128, 128), seed=0, case="effusion_prone")
    scan = write_scan(tmp_path / "ct.nii.gz", ph.volume)
    assert "patient_position" not in read_scan(scan).source.metadata
    assert main(["lungmask", str(scan), "-o", str(tmp_path / "supine.nii.gz")]) == 0
    assert "prone" not in capsys.readouterr().out
    assert main(["lungmask", str(scan), "-o", str(tmp_path / "prone.nii.gz"),
                 "--patient-position", "hfp"]) == 0
    out = capsys.readouterr().out
    assert "note: the patient lay prone" in out and "pleural effusion" in out
    ct = read_scan(scan)
    fluid = ph.effusion > 0
    supine, prone = (read_mask(tmp_path / f"{n}.nii.gz", ct) for n in ("supine", "prone"))
    assert np.mean(prone[fluid] > 0) < np.mean(supine[fluid] > 0)
    with pytest.raises(SystemExit):
        main(["lungmask", str(scan), "-o", str(tmp_path / "x.nii.gz"), "--patient-position", "UP"])


def test_segment_prints_what_the_lung_mask_noted(tmp_path, capsys):
    """A file whose orientation swapped front and back: ``segment`` says so (the lung mask's
    notes, which report.json keeps too, are printed)."""
    from diffseglung_core.io import write_scan
    from diffseglung_core.phantom import make_phantom
    from diffseglung_core.volume import CTVolume

    ph = make_phantom((48, 128, 128), seed=0)
    swapped = CTVolume.from_array(np.ascontiguousarray(ph.volume.hu[:, ::-1]), spacing=ph.volume.spacing)
    scan = write_scan(tmp_path / "ct.nii.gz", swapped)
    assert main(["segment", str(scan), "-o", str(tmp_path / "labels.nii.gz")]) == 0
    assert "note: the vertebral column lies in front of the body's centre" in capsys.readouterr().out


def test_segment_says_why_laa950_exceeds_the_emphysema_share(tmp_path, capsys):
    """A noisy scan: LAA-950 counts healthy voxels that noise pushes below -950 HU, the
    emphysema label does not; ``segment`` says so beside LAA-950, with the report's figures."""
    import json

    from diffseglung_core.io import write_scan
    from diffseglung_core.phantom import make_phantom
    from diffseglung_core.volume import CTVolume

    ph = make_phantom((48, 128, 128), seed=0)
    noisy = ph.volume.hu + np.random.default_rng(0).normal(0.0, 60.0, ph.volume.shape)
    scan = write_scan(tmp_path / "ct.nii.gz", CTVolume.from_array(noisy.astype(np.float32),
                                                                  spacing=ph.volume.spacing))
    assert main(["segment", str(scan), "-o", str(tmp_path / "labels.nii.gz"),
                 "--report", str(tmp_path / "report.json")]) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "report.json").read_text())
    laa = report["density"]["laa950_percent"]
    emphysema = next(c["percent_of_lung"] for c in report["classes"] if c["label"] == 4)
    assert laa > emphysema + 1.0
    healthy = report["emphysema_evidence"]["healthy_laa950_percent"]
    assert f"note: LAA-950 counts noise too: about {healthy:.1f} % of healthy lung" in out
    assert healthy > 1.0  # 60 HU of noise puts healthy voxels below -950 HU
    # a cluster of mixed densities is printed with what its voxels ended as
    from diffseglung_core.segment.report import describe_outcome

    flagged = [c for c in report["mapping"]["clusters"] if c["flag"]]
    assert flagged
    for c in flagged:
        outcome = describe_outcome(c["labelled_percent"])
        assert outcome.startswith("its voxels labelled ")
        assert f"cluster {c['cluster']} (named {c['name']}; {outcome}): {c['flag']}" in out


def test_no_laa950_note_when_it_agrees_with_the_emphysema_share():
    from diffseglung_core.cli.segment import _laa_note

    def report(laa, emphysema, evidence=True):
        return {"density": {"laa950_percent": laa},
                "classes": [{"label": 4, "percent_of_lung": emphysema}],
                **({"emphysema_evidence": {"healthy_laa950_percent": 0.4, "noise_hu": 20.0}}
                   if evidence else {})}

    assert _laa_note(report(12.5, 12.0)) == ""
    assert _laa_note(report(13.1, 0.3, evidence=False)) == ""
    assert "about 0.4 % of healthy lung" in _laa_note(report(13.1, 0.3))
