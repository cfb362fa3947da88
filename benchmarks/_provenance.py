"""Which code a benchmark ran (the commit and the source files that differ from it), and
where its results go."""

from __future__ import annotations

import json
import subprocess
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
