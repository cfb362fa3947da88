"""One timing protocol for every benchmark comparison.

Every side of a comparison is timed the same way: one untimed warm-up call,
then ``repeats`` timed calls; the figure is the median of the wall-clock
times (the process CPU time of each call is recorded too). Threads are pinned
for torch, for the BLAS and OpenMP pools numpy and scikit-learn use
(threadpoolctl) and for SimpleITK, and the settings are written into the JSON
with the machine's load, so a figure says under which conditions it was taken.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from typing import Callable

_KEEP: list = []


def pin_threads(n: int) -> dict:
    """Use ``n`` threads in torch, the BLAS/OpenMP pools and SimpleITK; return what was set.

    Parameters
    ----------
    n : int
        Threads for every library (1 or 2 on the 2-core development machine).

    Returns
    -------
    dict
        The thread settings in force (for the JSON).
    """
    import torch

    torch.set_num_threads(n)
    with contextlib.suppress(Exception):
        torch.set_num_interop_threads(1)  # fails once the pool has started; 1 is the default then
    pools = []
    with contextlib.suppress(Exception):
        from threadpoolctl import threadpool_info, threadpool_limits

        _KEEP.append(threadpool_limits(limits=n))  # in force for the whole run
        pools = sorted({f"{p['internal_api']}:{p['num_threads']}" for p in threadpool_info()})
    sitk = None
    with contextlib.suppress(Exception):
        import SimpleITK

        SimpleITK.ProcessObject.SetGlobalDefaultNumberOfThreads(n)
        sitk = SimpleITK.ProcessObject.GetGlobalDefaultNumberOfThreads()
    return {"threads": n, "torch_intra_op": torch.get_num_threads(),
            "torch_inter_op": torch.get_num_interop_threads(), "blas_openmp_pools": pools,
            "simpleitk": sitk, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "")}


def measure(fn: Callable[[], object], repeats: int = 3) -> dict:
    """Time ``fn``: one warm-up call, then ``repeats`` timed calls.

    Parameters
    ----------
    fn : callable
        The whole work of one side (conversions included).
    repeats : int
        Timed calls (at least 3).

    Returns
    -------
    dict
        ``median_s`` (wall clock), ``cpu_median_s`` (process CPU time), the
        lists ``wall_s`` and ``cpu_s``, ``repeats`` and ``warmup_s``.
    """
    if repeats < 3:
        raise ValueError("take the median of at least 3 runs")
    t = time.perf_counter()
    fn()
    warmup = time.perf_counter() - t
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {"median_s": statistics.median(wall), "cpu_median_s": statistics.median(cpu),
            "wall_s": wall, "cpu_s": cpu, "repeats": repeats, "warmup_s": warmup}


def conditions() -> dict:
    """The machine and the load on it now (for the JSON)."""
    import numpy as np
    import torch

    info = {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "machine": platform.machine(), "cpus": os.cpu_count(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "date": time.strftime("%Y-%m-%d %H:%M")}
    with contextlib.suppress(Exception):
        info["load_average_1_5_15"] = [round(v, 2) for v in os.getloadavg()]
    with contextlib.suppress(Exception):
        with open("/proc/cpuinfo") as fh:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in fh
                               if line.startswith("model name"))
    return info


def machine_limits(repeats: int = 3, megabytes: int = 400, matmul_n: int = 2048) -> dict:
    """What the CPU can do at most with the threads pinned now, for a roofline.

    ``read_gb_s``: memory read bandwidth, one sum over ``megabytes`` of float32
    (far larger than any cache); ``matmul_gflop_s``: float32 matrix product of
    two ``matmul_n`` x ``matmul_n`` matrices (the BLAS torch uses). Both timed
    with :func:`measure`.
    """
    import torch

    big = torch.ones(megabytes * 2**20 // 4, dtype=torch.float32)
    read = measure(lambda: float(big.sum()), repeats)
    a = torch.randn(matmul_n, matmul_n)
    mm = measure(lambda: a @ a, repeats)
    size = big.numel() * 4
    return {"read_bytes": size, "read_s": read, "read_gb_s": size / read["median_s"] / 1e9,
            "matmul_n": matmul_n, "matmul_s": mm,
            "matmul_gflop_s": 2.0 * matmul_n**3 / mm["median_s"] / 1e9}
