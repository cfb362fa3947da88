"""Keep the memory of freed arrays in the process for the next ones.

The engine makes and drops many arrays of a whole scan (a 512 x 512 x 300
mask is 79 MB, an image of floats 315 MB). glibc's ``malloc`` hands every
block larger than its mmap threshold back to the kernel when it is freed, so
the next array of that size is mapped afresh and each of its pages is
faulted in and zeroed again. In a virtual machine whose balloon driver reports
free pages to its host, the kernel gives freed pages back to the host within
seconds, and touching them again is slow: 3.4 s per GB on the development
machine against 0.03 s per GB for pages the process kept
(``benchmarks/bench_allocator.py``, docs/benchmarks.md).

:func:`keep_freed_memory` asks glibc to serve large blocks from its heap and
never to trim it, with one heap for all threads: a freed array's pages are
reused by the next array while the process lives. The peak memory is about
the same (freed blocks are reused, not added to); what changes is that the
process holds its peak until it exits. The command line, a process that ends
with its job, turns it on; the napari plugin, which lives on, does not.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache

__all__ = ["keep_freed_memory"]

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
#: Blocks up to this size come from the heap (the largest value mallopt takes: an int).
_LARGEST = 2 ** 31 - 1


@cache
def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    # glibc only: musl has neither, and its mallopt does nothing
    if not (hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt")):
        return None
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    libc.mallopt.restype = ctypes.c_int
    return libc


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse in this process; True if it did.

    Blocks up to 2 GB come from the heap, the heap is never trimmed and all
    threads share it (``mallopt`` ``M_MMAP_THRESHOLD``, ``M_TRIM_THRESHOLD``,
    ``M_ARENA_MAX``). A no-op returning False on other C libraries and systems.
    Call it early in a process that ends with its work, before other threads
    allocate: a thread that already has a heap of its own keeps it, and that
    heap hands large blocks back as before (the engine run on such a thread,
    as in napari, gained nothing in a one-off test). Blocks already mapped are
    not affected.
    """
    libc = _glibc()
    if libc is None:
        return False
    return all(libc.mallopt(option, value) == 1 for option, value in (
        (_M_MMAP_THRESHOLD, _LARGEST), (_M_TRIM_THRESHOLD, _LARGEST), (_M_ARENA_MAX, 1)))
