"""Which code a benchmark ran: the commit and the source files that differ from it."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def git_commit() -> str:
    """Short hash of the checked-out commit ("unknown" outside a git checkout)."""
    try:
        return subprocess.check_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                       text=True).strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def uncommitted_sources() -> list:
    """Files under src/ that differ from the commit (the code that ran is not exactly the commit)."""
    try:
        out = subprocess.check_output(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"],
                                      text=True)
        return sorted(line[3:] for line in out.splitlines() if line.strip())
    except (OSError, subprocess.SubprocessError):
        return []
