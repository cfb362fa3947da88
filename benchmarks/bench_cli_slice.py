"""One 512 x 512 slice end to end through the command line: the time a user waits.

Usage::

    python benchmarks/bench_cli_slice.py [--data ../shared/data] [--threads 2]
                                         [--src DIR ...]
                                         [--json benchmarks/results/cli_slice.json]

Runs ``diffseglung segment`` as a new process (``python -m diffseglung_core.cli``:
start-up, imports, reading the TIFF, the lung mask, the default engine, writing the
NIfTI and the report) on a cted-open HRCT slice, one warm-up and the median of 3
(:mod:`_timing`), with ``OMP_NUM_THREADS`` set to ``--threads``. The engine's own
stage times come from the report of the last run; what the process took beyond
them is start-up, imports and I/O. Python may cache the modules' bytecode in the
child process (``PYTHONDONTWRITEBYTECODE`` is removed from its environment), as
it does for a user: the warm-up compiles them once. ``--src DIR ...`` times the
sources of other checkouts (``DIR/src``, e.g. a ``git worktree`` of an earlier
commit) in turn with this one, each its own warm-up and runs, so that a change
is judged on one day of a shared machine, not against a figure from another.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _provenance import git_commit  # noqa: E402
from _timing import conditions, measure  # noqa: E402

SLICE = "cted-open/slices/subject4_middle.tiff"
SPACING = ("1.25", "0.78", "0.78")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "cli_slice.json")
    parser.add_argument("--src", type=Path, nargs="*", default=[],
                        help="other checkouts whose src/ to time after this one")
    args = parser.parse_args(argv)
    scan = args.data / SLICE
    if not scan.is_file():
        print(f"{scan} not found: nothing to time")
        return 1
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(OMP_NUM_THREADS=str(args.threads), OMP_WAIT_POLICY="PASSIVE")
    runs = []
    print(f"| {SLICE} | process, median of 3 | engine stages | start-up, imports, I/O |")
    print("| --- | --- | --- | --- |")
    for checkout in [ROOT, *args.src]:
        src = checkout.resolve() / "src"
        with tempfile.TemporaryDirectory() as tmp:
            out, report = Path(tmp) / "labels.nii.gz", Path(tmp) / "report.json"
            cmd = [sys.executable, "-m", "diffseglung_core.cli", "segment", str(scan), "--spacing",
                   *SPACING, "-o", str(out), "--report", str(report), "--overwrite"]
            run_env = {**env, "PYTHONPATH": str(src)}
            timing = measure(lambda cmd=cmd, run_env=run_env: subprocess.run(
                cmd, env=run_env, check=True, capture_output=True))
            stages = json.loads(report.read_text())["timings_s"]
        stages = {k: v for k, v in stages.items() if k != "total"}
        engine = sum(stages.values())
        run = {"src": str(src), "commit": git_commit(checkout), "process": timing,
               "engine_stages_s": stages, "outside_the_engine_s": timing["median_s"] - engine}
        runs.append(run)
        print(f"| {run['commit']}, 512 x 512, {args.threads} threads | {timing['median_s']:.2f} s | "
              f"{engine:.2f} s ({', '.join(f'{k} {v:.2f}' for k, v in stages.items())}) | "
              f"{run['outside_the_engine_s']:.2f} s |")
    for run in runs[1:]:
        print(f"{run['commit']} / this checkout: "
              f"{run['process']['median_s'] / runs[0]['process']['median_s']:.2f}x")
    result = {"conditions": {**conditions(), "threads": args.threads}, "scan": SLICE,
              "command": f"diffseglung segment {SLICE} --spacing {' '.join(SPACING)} -o OUT.nii.gz "
                         "--report REPORT.json --overwrite",
              **{k: runs[0][k] for k in ("process", "engine_stages_s", "outside_the_engine_s")},
              "runs": runs}
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
