"""Progress reporting and cancellation for long core functions.

Long functions take ``progress: ProgressCallback | None``. They call it as
``progress(done, total, stage)`` after each unit of work. A caller cancels the
work by raising :class:`~diffseglung_core.errors.Cancelled` from inside the
callback; the core lets it propagate and leaves no partial output behind.
"""

from __future__ import annotations

from typing import Callable, Optional

ProgressCallback = Callable[[int, int, str], None]


def report(progress: Optional[ProgressCallback], done: int, total: int, stage: str) -> None:
    """Call ``progress(done, total, stage)`` if a callback was given."""
    if progress is not None:
        progress(int(done), int(total), stage)


def scaled(progress: Optional[ProgressCallback], start: float, stop: float,
           total: int = 1000) -> Optional[ProgressCallback]:
    """Map a sub-task's progress into the slice ``[start, stop]`` of a parent task.

    The returned callback reports to ``progress`` on a scale of ``total`` units,
    so several stages of one job share one progress bar.
    """
    if progress is None:
        return None

    def _sub(done: int, sub_total: int, stage: str) -> None:
        frac = start + (stop - start) * (done / sub_total if sub_total else 1.0)
        progress(int(round(frac * total)), total, stage)

    return _sub
