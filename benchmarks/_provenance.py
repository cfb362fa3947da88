"""Which code a benchmark ran (the commit and the source files that differ from it), which
checkout's sources it runs, and where its results go."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def git_commit(root: Path = ROOT) -> str:
    """Short hash of the commit checked out at ``root`` ("unknown" outside a git checkout)."""
    try:
        return subprocess.check_output(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                                       text=True).strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def uncommitted_sources(root: Path = ROOT) -> list:
    """Files under ``root``'s src/ that differ from its commit (the code that ran is not exactly it)."""
    try:
        out = subprocess.check_output(["git", "-C", str(root), "status", "--porcelain", "--", "src"],
                                      text=True)
        return sorted(line[3:] for line in out.splitlines() if line.strip())
    except (OSError, subprocess.SubprocessError):
        return []


def write_json(path: Path, result: dict) -> None:
    """Write a benchmark's ``result`` to ``path`` (folders made as needed) and say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")


def sources_parser(description: str, json_name: str) -> argparse.ArgumentParser:
    """Options of a benchmark that runs the sources of a checkout on the shared real CT:
    ``--data``, ``--src`` (whose ``src/`` to run: :func:`run_sources_of`), ``--threads`` and
    ``--json`` (default ``benchmarks/results/<json_name>``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--src", type=Path, default=ROOT, help="checkout whose src/ to run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / json_name)
    return parser


def run_sources_of(src: Path) -> None:
    """Import the package from ``src``'s checkout (its ``src/``) before any installed one."""
    sys.path.insert(0, str(Path(src).resolve() / "src"))
