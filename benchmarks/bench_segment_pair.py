"""The engine end to end at two commits, run in turn on the same machine.

Usage::

    python benchmarks/bench_segment_pair.py REFERENCE_CHECKOUT [--rounds 2] [--threads 2]
                                            [--shape 300 512 512 | --scan PATH]
                                            [--reference-allocator default]
                                            [--json benchmarks/results/end_to_end.json]

``REFERENCE_CHECKOUT`` is another checkout of the project (e.g. ``git worktree add
/tmp/ref <commit>``). Each round runs ``bench_segment.py --skip-gmm --features auto
--own-lung-mask`` (the default engine computing its own lung mask on the phantom of
``--shape``, or on the real scan ``--scan``) as a new process, first on this checkout's sources, then on the
reference's (the same script, so the same phantom, threads and timing), and records
the load average before each run. Both sides keep the memory of freed arrays in the
process as the command line does (``--allocator keep``; a reference whose sources lack
``diffseglung_core.allocator`` runs with glibc's default), unless
``--reference-allocator default`` is given. The peak is the process's resident memory,
the phantom included. The ratios are the reference's mean time over the
current one's, from the same rounds: wall time, and CPU time (user and system seconds of
the process, all threads; less disturbed by other work on the machine). Prints a table
and writes JSON.
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

from _provenance import git_commit, write_json  # noqa: E402


def run_once(checkout: Path, shape, threads: int, allocator: str = "keep", scan=None) -> dict:
    """One ``bench_segment.py`` engine run on ``checkout``'s sources, as a new process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        where = ["--shape", *map(str, shape)] if scan is None else ["--scan", str(scan)]
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_segment.py"), "--skip-gmm",
                        "--features", "auto", "--own-lung-mask", "--threads", str(threads), *where,
                        "--src", str(checkout), "--json", str(out), "--allocator", allocator],
                       check=True)
        return json.loads(out.read_text())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reference", type=Path, help="another checkout of the project")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shape", type=int, nargs=3, default=[300, 512, 512])
    ap.add_argument("--scan", type=Path, default=None, help="a real scan instead of the phantom")
    ap.add_argument("--reference-allocator", choices=("keep", "default"), default="keep",
                    help="the reference's malloc (bench_segment.py --allocator); with this checkout "
                         "as the reference and 'default', the pair measures what keeping freed "
                         "memory saves")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "end_to_end.json")
    args = ap.parse_args(argv)
    current, ref = git_commit(ROOT), git_commit(args.reference)
    runs, loads, first = {}, {}, None
    for i in range(1, args.rounds + 1):
        for side, checkout, allocator in (("current", ROOT, "keep"),
                                          (ref, args.reference, args.reference_allocator)):
            key = side if i == 1 else f"{side}_{i}"
            loads[key] = [round(v, 2) for v in os.getloadavg()]
            result = run_once(checkout, args.shape, args.threads, allocator, args.scan)
            first = first or result
            runs[key] = {**result["engine"], "commit": result["commit"],
                         "uncommitted_sources": result["uncommitted_sources"],
                         "allocator": result.get("allocator", "default")}
    order = ", ".join(["current", ref] * args.rounds)
    def mean(side: str, key: str) -> float:
        return sum(r[key] for k, r in runs.items() if k.split("_")[0] == side) / args.rounds

    out = {"conditions": first["conditions"], "threads": first["threads"],
           "note": (f"python benchmarks/bench_segment_pair.py (bench_segment.py --skip-gmm --features "
                    f"auto --own-lung-mask{'' if args.scan is None else f' --scan {args.scan}'}), "
                    f"run at two commits in the order {order} on the same "
                    f"machine (current: {current}); the reference ran this script against its own "
                    f"source tree; malloc: current keep, reference {args.reference_allocator}"),
           "runs": runs, "commits": {k: r["commit"] for k, r in runs.items()},
           "load_average_before": loads,
           "reference_over_current": mean(ref, "segment_s") / mean("current", "segment_s"),
           "reference_over_current_cpu": mean(ref, "cpu_s") / mean("current", "cpu_s"),
           "same_labels": len({r.get("labels_sha1") for r in runs.values()}) == 1}
    stages = list(first["engine"]["stages_s"])
    print(f"{'run':<14} {'commit':<9} {'allocator':<9} {'wall':>7} {'cpu':>7} {'peak':>8}  "
          + " ".join(f"{s[:10]:>10}" for s in stages))
    for key, r in runs.items():
        print(f"{key:<14} {r['commit']:<9} {r['allocator'][:9]:<9} {r['segment_s']:6.1f}s "
              f"{r['cpu_s']:6.1f}s {r['peak_rss_gb']:6.2f}GB  "
              + " ".join(f"{r['stages_s'][s]:9.1f}s" for s in stages))
    print(f"reference / current (means of {args.rounds}): wall {out['reference_over_current']:.2f}x, "
          f"CPU time {out['reference_over_current_cpu']:.2f}x; the same labels in every run: "
          f"{out['same_labels']}")
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
