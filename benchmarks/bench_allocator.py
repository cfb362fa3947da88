"""What it costs this machine to hand a freed array's memory back and fault it in again.

Usage::

    python benchmarks/bench_allocator.py [--gb 1] [--idle 6] [--repeats 3]
                                         [--json benchmarks/results/allocator.json]

Each run is a new process that fills a block of ``--gb`` GB (``np.ones``),
frees it, waits ``--idle`` seconds and fills a block of the same size again.
With glibc's default ``malloc`` the freed block goes back to the kernel (it is
above the mmap threshold) and the second one is faulted in afresh; with
:func:`diffseglung_core.allocator.keep_freed_memory` (what the command line
does) the second block reuses the first one's pages. The process's page faults
are counted for each fill. Where the kernel gives free pages back to a
hypervisor (a balloon with free page reporting) the second fill of glibc's
default pays for that; elsewhere the difference is only the faulting and
zeroing of fresh pages (no other machine was measured). Median of ``--repeats`` runs per mode,
the modes alternating; prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _provenance import git_commit, write_json  # noqa: E402

_RUN = textwrap.dedent("""
    import json, resource, sys, time
    import numpy as np
    sys.path.insert(0, sys.argv[4])
    from diffseglung_core.allocator import keep_freed_memory
    mode, size, idle = sys.argv[1], int(float(sys.argv[2]) * 1e9), float(sys.argv[3])
    kept = keep_freed_memory() if mode == "keep" else False
    def fill():
        f, t = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        block = np.ones(size, np.uint8)
        s = time.perf_counter() - t
        return block, s, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f
    block, first_s, first_faults = fill()
    del block
    time.sleep(idle)
    block, second_s, second_faults = fill()
    print(json.dumps({"kept": kept, "first_s": first_s, "first_faults": first_faults,
                      "second_s": second_s, "second_faults": second_faults}))
""")


def run_once(mode: str, gb: float, idle: float) -> dict:
    out = subprocess.run([sys.executable, "-c", _RUN, mode, str(gb), str(idle), str(ROOT / "src")],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--idle", type=float, default=6.0,
                    help="seconds between freeing the first block and filling the second")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "allocator.json")
    args = ap.parse_args(argv)
    from _timing import conditions

    runs = {"default": [], "keep": []}
    for _ in range(args.repeats):
        for mode in runs:
            runs[mode].append(run_once(mode, args.gb, args.idle))
    summary = {mode: {key: statistics.median(r[key] for r in rs) / args.gb
                      for key in ("first_s", "second_s")} for mode, rs in runs.items()}
    out = {"conditions": conditions(), "commit": git_commit(), "gb": args.gb, "idle_s": args.idle,
           "repeats": args.repeats, "runs": runs, "median_s_per_gb": summary,
           "note": "python benchmarks/bench_allocator.py: each run a new process; a block of "
                   f"{args.gb} GB filled, freed, {args.idle} s idle, filled again; modes alternate"}
    print(f"{args.gb:g} GB filled, freed, {args.idle:g} s idle, filled again "
          f"(median of {args.repeats} processes per mode)")
    print(f"{'malloc':<34} {'first fill':>12} {'second fill':>12} {'faults (2nd)':>13}")
    for mode, label in (("default", "glibc default"), ("keep", "keep_freed_memory (command line)")):
        faults = statistics.median(r["second_faults"] for r in runs[mode])
        print(f"{label:<34} {summary[mode]['first_s']:9.2f} s/GB {summary[mode]['second_s']:9.2f} s/GB "
              f"{faults:13.0f}")
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
