"""``segment`` stopped by SIGINT or SIGTERM, or out of memory: one line, no output left behind.

The signal tests run the real command in a child process on a small phantom.
A hook in the child touches a file when the run has reached the stage under
test (the engine, the label map half written, the report half written after
the label map) and then waits there, so the signal lands in that stage on any
machine, however loaded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from diffseglung_core.cli import main

_CHILD = textwrap.dedent("""
    import contextlib, pathlib, signal, sys, time
    from diffseglung_core.cli import main
    from diffseglung_core.cli import segment as segment_command

    # Ctrl-C as in a terminal: a job started in the background (a CI runner, nohup) inherits
    # SIGINT ignored, and Python keeps it so
    signal.signal(signal.SIGINT, signal.default_int_handler)

    ready, stage, argv = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3:]

    if stage == "engine":  # the real engine, slowed at each progress report
        @contextlib.contextmanager
        def progress_bar(description):
            def callback(done, total, what):
                ready.touch()
                time.sleep(0.3)
            yield callback
        segment_command.progress_bar = progress_bar
    elif stage == "labels":  # the label map on disk, half written
        from diffseglung_core.io import registry
        k = next(i for i, w in enumerate(registry.WRITERS) if w.name == "nifti")
        nifti = registry.WRITERS[k]
        def save(path, array, reference, role):
            nifti.save(path, array, reference, role)
            with open(path, "r+b") as fh:
                fh.truncate(path.stat().st_size // 2)
            ready.touch()
            time.sleep(60)
        registry.WRITERS[k] = type(nifti)(nifti.name, nifti.suffixes, save)
    elif stage == "report":  # the label map complete, the report half written
        from diffseglung_core.segment import report as report_module
        def write_report(report, path, overwrite=True):
            pathlib.Path(path).write_text('{"classes": [')
            ready.touch()
            time.sleep(60)
        report_module.write_report = write_report
    sys.exit(main(argv))
""")


@pytest.fixture(scope="module")
def phantom_scan(tmp_path_factory):
    from diffseglung_core.io import write_scan
    from diffseglung_core.phantom import make_phantom

    path = tmp_path_factory.mktemp("scan") / "ct.nii.gz"
    write_scan(path, make_phantom((24, 64, 64), seed=0).volume)
    return path


def _stop_during(tmp_path, scan, stage: str, signum: int) -> tuple[int, str]:
    ready = tmp_path / "ready"
    out = tmp_path / "out"
    out.mkdir()
    argv = ["segment", str(scan), "-o", str(out / "labels.nii.gz"), "--report",
            str(out / "report.json"), "--features", "density"]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(ready), stage, *argv],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the run never reached its stage"
        time.sleep(0.05)
    child.send_signal(signum)
    _, err = child.communicate(timeout=60)
    return child.returncode, err


@pytest.mark.parametrize("stage", ["engine", "labels", "report"])
@pytest.mark.parametrize("signum, name, code", [(signal.SIGINT, "interrupted (Ctrl-C, SIGINT)", 130),
                                                (signal.SIGTERM, "stopped by SIGTERM", 143)])
def test_signal_leaves_no_output_and_one_line(tmp_path, phantom_scan, stage, signum, name, code):
    returncode, err = _stop_during(tmp_path, phantom_scan, stage, signum)
    assert returncode == code, err
    assert err.splitlines() == [f"diffseglung segment: {name}; no partial output left"]
    assert os.listdir(tmp_path / "out") == []  # no label map, report or temporary file


def test_out_of_memory_in_the_engine(tmp_path, phantom_scan, monkeypatch, capsys):
    from diffseglung_core.segment import engine

    def exhausted(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(engine, "segment_volume", exhausted)
    out = tmp_path / "labels.nii.gz"
    assert main(["segment", str(phantom_scan), "-o", str(out), "--features", "density"]) == 3
    err = capsys.readouterr().err
    assert err.splitlines() == ["diffseglung segment: error: out of memory (the scan needs more than "
                                "this machine has free); no partial output left"]
    assert os.listdir(tmp_path) == []


def test_out_of_memory_while_writing_removes_what_the_run_wrote(tmp_path, phantom_scan, monkeypatch,
                                                                capsys):
    from diffseglung_core.segment import report as report_module

    def exhausted(report, path, overwrite=True):
        path.write_text('{"classes": [')  # half a report on disk
        raise MemoryError()

    monkeypatch.setattr(report_module, "write_report", exhausted)
    out = tmp_path / "labels.nii.gz"
    assert main(["segment", str(phantom_scan), "-o", str(out), "--report", str(tmp_path / "r.json"),
                 "--features", "density"]) == 3
    assert len(capsys.readouterr().err.splitlines()) == 1
    assert os.listdir(tmp_path) == []  # the complete label map went too: nothing of this run


def test_torch_running_out_of_memory_is_one_line(tmp_path, phantom_scan, monkeypatch, capsys):
    from diffseglung_core.segment import engine

    def exhausted(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 68719476736 bytes.")

    monkeypatch.setattr(engine, "segment_volume", exhausted)
    assert main(["segment", str(phantom_scan), "-o", str(tmp_path / "l.nii.gz")]) == 3
    assert capsys.readouterr().err.splitlines() == [
        "diffseglung segment: error: out of memory (the scan needs more than this machine has free); "
        "no partial output left"]


def test_existing_outputs_are_never_removed_by_a_failed_run(tmp_path, phantom_scan, monkeypatch):
    from diffseglung_core.segment import report as report_module

    def exhausted(report, path, overwrite=True):
        raise MemoryError()

    monkeypatch.setattr(report_module, "write_report", exhausted)
    out, clusters = tmp_path / "labels.nii.gz", tmp_path / "clusters"
    out.write_bytes(b"a file of the user's")
    assert main(["segment", str(phantom_scan), "-o", str(out)]) == 2  # exists: refused first
    assert out.read_bytes() == b"a file of the user's"
    # a run that fails late removes its own files, not those of others in the same folder
    clusters.mkdir()
    (clusters / "notes.txt").write_text("kept")
    assert main(["segment", str(phantom_scan), "-o", str(tmp_path / "new.nii.gz"), "--report",
                 str(tmp_path / "r.json"), "--save-clusters", str(clusters), "--features",
                 "density"]) == 3
    assert sorted(os.listdir(tmp_path)) == ["clusters", "labels.nii.gz"]
    assert os.listdir(clusters) == ["notes.txt"]
