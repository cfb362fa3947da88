"""keep_freed_memory: a freed large block is reused without new page faults."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from diffseglung_core.allocator import _glibc, keep_freed_memory

# Run in a fresh process: the setting is process-wide.
_PROBE = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from diffseglung_core.allocator import keep_freed_memory
    if sys.argv[1] == "keep":
        assert keep_freed_memory()
    def faults_of_new_block():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        block = np.ones(64 * 2**20, np.uint8)  # 64 MB, above glibc's default mmap threshold
        after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        del block
        return after - before
    faults_of_new_block()
    print(faults_of_new_block())
""")


def _faults_of_second_block(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(_glibc() is None, reason="glibc only")
def test_a_freed_block_is_reused_without_page_faults():
    # by default glibc unmaps a freed 64 MB block: the next one is faulted in again
    assert _faults_of_second_block("default") > 10
    assert _faults_of_second_block("keep") < 5


def test_other_c_libraries_are_left_alone(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    _glibc.cache_clear()
    try:
        assert keep_freed_memory() is False
    finally:
        _glibc.cache_clear()


def test_the_command_line_keeps_freed_memory_when_run_as_a_program(monkeypatch, capsys):
    import diffseglung_core.cli as cli

    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(True) or True)
    monkeypatch.setattr(sys, "argv", ["diffseglung"])
    assert cli.main() == 2  # no command: the help
    assert calls == [True]
    assert cli.main([]) == 2  # called with arguments (from Python, as here): left alone
    assert calls == [True]
