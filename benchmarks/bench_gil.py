"""Which array routines of the engine run on two threads at once, and which hold the GIL.

Usage::

    python benchmarks/bench_gil.py [--data ../shared/data] [--threads 2] [--repeats 3]
                                   [--engine Z Y X] [--json benchmarks/results/gil.json]

``diffseglung_core.parallel.thread_map`` runs per-slice work on threads; that
pays only where the compiled routine releases the GIL. For each routine the
engine calls per axial slice, the same calls over the 64 slices of the real
A0001 chest CT (512 x 512, the air inside the body below -400 HU as the mask)
are timed one after the other and through ``thread_map`` on ``--threads``
threads (one warm-up, median of ``--repeats``); the ratio is the speed-up
(about 1 where the routine holds the GIL, up to the thread count where it
does not).

With ``--engine Z Y X`` the default engine runs once on a chest phantom of
that shape (seed 0, its own lung mask), and the seconds spent inside ``edt``
(the distance maps of ``diffseglung_core.binary``) and inside ``cc3d`` (its
connected components) are summed over every call, in all and per calling
function of the engine: what of the run holds the GIL and what does not.

Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _provenance import git_commit, uncommitted_sources, write_json  # noqa: E402
from _timing import conditions, measure, pin_threads  # noqa: E402


def routines(spacing) -> dict:
    """name -> f(slice mask, slice HU): the per-slice calls of the engine's helpers."""
    from diffseglung_core.binary import distance_inside, label
    from diffseglung_core.lung.morphology import disk

    sampling = tuple(float(s) for s in spacing[1:])
    opening = disk(3)
    return {
        "distance map (edt, diffseglung_core.binary.distance_inside)":
            lambda m, h: distance_inside(m, sampling),
        "distance map (scipy.ndimage.distance_transform_edt)":
            lambda m, h: ndi.distance_transform_edt(m, sampling=sampling),
        "connected components (cc3d, diffseglung_core.binary.label)": lambda m, h: label(m),
        "binary opening, 7 x 7 disk (scipy.ndimage)": lambda m, h: ndi.binary_opening(m, opening),
        "Gaussian filter, sigma 2 pixels (scipy.ndimage)":
            lambda m, h: ndi.gaussian_filter(h, 2.0),
    }


def per_slice(data: Path, threads: int, repeats: int) -> dict:
    from diffseglung_core.io import read_scan
    from diffseglung_core.parallel import set_cpu_threads, thread_map

    vol = read_scan(data / "lung-pet-ct-dx-A0001" / "dicom")
    hu = np.asarray(vol.hu, np.float32)
    masks = [np.ascontiguousarray(hu[z] < -400.0) for z in range(hu.shape[0])]
    slices = [np.ascontiguousarray(hu[z]) for z in range(hu.shape[0])]
    out = {"scan": "lung-pet-ct-dx-A0001", "shape": list(hu.shape), "threads": threads, "routines": {}}
    set_cpu_threads(threads)
    for name, fn in routines(vol.spacing).items():
        def one(i: int, fn=fn):
            return fn(masks[i], slices[i])

        serial = measure(lambda: [one(i) for i in range(len(masks))], repeats)
        threaded = measure(lambda: thread_map(one, range(len(masks))), repeats)
        out["routines"][name] = {"serial": serial, "threaded": threaded,
                                 "speed_up": serial["median_s"] / threaded["median_s"]}
    set_cpu_threads(0)
    return out


def _caller() -> str:
    """``module:function`` of the engine's innermost frame that is not a thread or array helper."""
    for frame in reversed(traceback.extract_stack()):
        path = frame.filename.replace("\\", "/")
        if "diffseglung_core/" in path and not path.endswith(("/binary.py", "/parallel.py")):
            return f"{path.split('diffseglung_core/')[-1]}:{frame.name}"
    return "?"


class _Timed:
    """Sum the seconds spent inside ``module.name`` (on any thread) while installed, per caller."""

    def __init__(self, module, name: str):
        self.module, self.name, self.original = module, name, getattr(module, name)
        self.seconds, self.calls, self.lock = 0.0, 0, threading.Lock()
        self.by_caller: dict = {}

    def __enter__(self):
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return self.original(*args, **kwargs)
            finally:
                dt, where = time.perf_counter() - t, _caller()
                with self.lock:
                    self.seconds += dt
                    self.calls += 1
                    seconds, calls = self.by_caller.get(where, (0.0, 0))
                    self.by_caller[where] = (seconds + dt, calls + 1)

        setattr(self.module, self.name, timed)
        return self

    def __exit__(self, *exc):
        setattr(self.module, self.name, self.original)


def engine(shape) -> dict:
    import cc3d
    import edt

    from diffseglung_core.phantom import make_phantom
    from diffseglung_core.segment import segment_volume

    ph = make_phantom(shape, seed=0)
    with _Timed(edt, "edt") as dist, _Timed(cc3d, "connected_components") as comp:
        t, c = time.perf_counter(), time.process_time()
        res = segment_volume(ph.volume, device="cpu")
        wall, cpu = time.perf_counter() - t, time.process_time() - c
    return {"shape": list(shape), "segment_s": wall, "cpu_s": cpu, "stages_s": res.timings,
            "edt": _summary(dist), "cc3d": _summary(comp)}


def _summary(timed: _Timed) -> dict:
    callers = sorted(timed.by_caller.items(), key=lambda kv: -kv[1][0])
    return {"seconds": timed.seconds, "calls": timed.calls,
            "by_caller": {k: {"seconds": s, "calls": n} for k, (s, n) in callers}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--engine", type=int, nargs=3, metavar=("Z", "Y", "X"))
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "gil.json")
    args = ap.parse_args(argv)

    pinned = pin_threads(args.threads)
    out = {"conditions": conditions(), "threads": pinned, "commit": git_commit(),
           "uncommitted_sources": uncommitted_sources(),
           "per_slice": per_slice(args.data, args.threads, args.repeats)}
    print(f"{'routine, 64 slices of A0001':<66} {'serial':>8} {'threads':>8} {'speed-up':>8}")
    for name, r in out["per_slice"]["routines"].items():
        print(f"{name:<66} {r['serial']['median_s']:7.3f}s {r['threaded']['median_s']:7.3f}s "
              f"{r['speed_up']:7.2f}x")
    if args.engine:
        out["engine"] = e = engine(tuple(args.engine))
        print(f"\nengine on a {' x '.join(map(str, args.engine))} phantom: {e['segment_s']:.1f} s "
              f"(CPU {e['cpu_s']:.1f} s); inside edt {e['edt']['seconds']:.1f} s "
              f"({e['edt']['calls']} calls), inside cc3d {e['cc3d']['seconds']:.1f} s "
              f"({e['cc3d']['calls']} calls)")
        for lib in ("edt", "cc3d"):
            for where, r in list(e[lib]["by_caller"].items())[:6]:
                print(f"  {lib:<5} {r['seconds']:6.2f} s {r['calls']:6d} calls  {where}")
    write_json(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
