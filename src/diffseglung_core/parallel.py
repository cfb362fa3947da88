"""Array work on several CPU threads.

scipy.ndimage and scikit-image release the GIL in their compiled loops, so
threads over independent pieces of a volume (its axial slices, or slabs of
slices with enough overlap for a local operator) use every core, with results
identical to the whole-volume call.

The number of threads is the one given to :func:`set_cpu_threads` (the command
line's ``--threads``), else torch's (``torch.set_num_threads``, which the
benchmarks set) when torch is loaded, else the cores this process may use.
"""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Sequence, TypeVar

import numpy as np
from scipy import ndimage as ndi

__all__ = ["cpu_threads", "free_threads", "set_cpu_threads", "thread_map", "by_slabs",
           "gaussian_filter"]

T = TypeVar("T")
R = TypeVar("R")

_POOLS: dict[int, ThreadPoolExecutor] = {}
if hasattr(os, "register_at_fork"):  # a forked child has none of its parent's threads
    os.register_at_fork(after_in_child=_POOLS.clear)
_THREADS: list[int] = []  # set by set_cpu_threads
_LOCAL = threading.local()  # ``busy`` in a pool's worker: work nested in it runs there


def set_cpu_threads(n: int, *, torch: bool = False) -> None:
    """Use ``n`` threads for array work (0: back to the default, see :func:`cpu_threads`).

    With ``torch`` (and ``n`` > 0), torch's intra-op threads too.
    """
    if n < 0:
        raise ValueError(f"threads must be 0 or more, got {n}")
    _THREADS[:] = [int(n)] if n else []
    if torch and n:
        import torch as _torch

        _torch.set_num_threads(int(n))


def cpu_threads() -> int:
    """Threads for array work: :func:`set_cpu_threads`'s, else torch's when loaded, else the cores."""
    if _THREADS:
        return _THREADS[0]
    torch = sys.modules.get("torch")
    if torch is not None:
        return max(1, int(torch.get_num_threads()))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def free_threads() -> int:
    """Threads a library call may use here: 1 inside a :func:`thread_map` worker, else :func:`cpu_threads`."""
    return 1 if getattr(_LOCAL, "busy", False) else cpu_threads()


def thread_map(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(item) for item in items]`` on :func:`cpu_threads` threads, in order.

    Called again from inside ``fn``, it runs serially (the threads are taken).
    """
    items = list(items)
    n = min(cpu_threads(), len(items))
    if n <= 1 or getattr(_LOCAL, "busy", False):
        return [fn(item) for item in items]
    pool = _POOLS.get(n)
    if pool is None:
        pool = _POOLS[n] = ThreadPoolExecutor(n, thread_name_prefix="diffseglung")

    def run(item: T) -> R:
        _LOCAL.busy = True
        try:
            return fn(item)
        finally:
            _LOCAL.busy = False

    return list(pool.map(run, items))


def _slabs(n: int, parts: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, n, parts + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def by_slabs(fn: Callable[..., np.ndarray], arrays: Sequence[np.ndarray], halo: int,
             *, min_slices: int = 8) -> np.ndarray:
    """``fn(*arrays)`` computed on slabs of slices (axis 0), one per thread.

    ``fn`` must be local along axis 0: its value at a slice depends only on
    the slices within ``halo`` of it (a filter of that radius, a morphology
    whose footprint reaches that far). Each slab is extended by ``halo`` slices
    on both sides (clipped at the array's ends), so the result equals the
    whole-array call.

    Parameters
    ----------
    fn : callable
        Takes the arrays' slabs, returns an array whose axis 0 matches them.
    arrays : sequence of ndarray
        Arrays sharing the length of axis 0.
    halo : int
        Reach of ``fn`` along axis 0 (slices).
    min_slices : int
        Slices per slab below which the volume is not split.

    Returns
    -------
    ndarray
        ``fn(*arrays)``.
    """
    n = arrays[0].shape[0]
    parts = min(cpu_threads(), n // max(min_slices, 1))
    if parts <= 1:
        return fn(*arrays)
    halo = max(int(halo), 0)

    out: list[np.ndarray] = []  # made by the first slab done; each slab copies itself in
    made = threading.Lock()

    def run(span: tuple[int, int]) -> None:
        a, b = span
        lo, hi = max(a - halo, 0), min(b + halo, n)
        piece = fn(*(arr[lo:hi] for arr in arrays))[a - lo:a - lo + (b - a)]
        with made:
            if not out:
                out.append(np.empty((n,) + piece.shape[1:], piece.dtype))
        out[0][a:b] = piece

    thread_map(run, _slabs(n, parts))
    return out[0]


def gaussian_filter(x: np.ndarray, sigma: Sequence[float], *, weight: np.ndarray | None = None,
                    truncate: float = 4.0, mode: str = "reflect") -> np.ndarray:
    """:func:`scipy.ndimage.gaussian_filter` of a (Z, ...) array on :func:`cpu_threads` threads.

    Same values as the single call (each slab carries the kernel's reach along
    ``z``). The output has the input's dtype, float32 for a boolean mask (its
    local share). With ``weight`` (same shape), the filter of ``x * weight`` in
    float32, the product taken slab by slab.
    """
    sigma = [float(s) for s in sigma]
    halo = int(truncate * sigma[0] + 0.5)  # scipy's kernel radius

    def smooth(v: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        if w is not None:
            v = np.multiply(v, w, dtype=np.float32)
        elif v.dtype == bool:
            v = v.astype(np.float32)
        return ndi.gaussian_filter(v, sigma, truncate=truncate, mode=mode)

    return by_slabs(smooth, [x] if weight is None else [x, weight], halo)
