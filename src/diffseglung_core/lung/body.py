"""The body: outside air, the filled body outline and its midline."""

from __future__ import annotations

import numpy as np

from ..parallel import thread_map
from .morphology import fill_holes_nd


def outside_air(air: np.ndarray) -> np.ndarray:
    """Air connected to the edge of its axial slice."""
    outside = np.empty_like(air)

    def connected(z: int) -> None:  # what filling the holes of the rest leaves out
        outside[z] = ~fill_holes_nd(~air[z])

    thread_map(connected, range(air.shape[0]))
    return outside


def filled_body(not_outside: np.ndarray) -> np.ndarray:
    """The body: everything not outside air, holes filled slice by slice."""
    body = np.empty_like(not_outside)

    def fill(z: int) -> None:
        body[z] = fill_holes_nd(not_outside[z])

    thread_map(fill, range(not_outside.shape[0]))
    return body


def body_mid_x(body: np.ndarray) -> float:
    cols = np.flatnonzero(body.any(axis=(0, 1)))
    if cols.size == 0:
        return body.shape[2] / 2.0
    return 0.5 * (cols[0] + cols[-1])
