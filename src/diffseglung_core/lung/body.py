"""The body: outside air, the filled body outline and its midline."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..parallel import thread_map
from .morphology import fill_holes_nd


def outside_air(air: np.ndarray) -> np.ndarray:
    """Air connected to the edge of its axial slice."""
    outside = np.zeros_like(air)
    border = np.zeros(air.shape[1:], bool)
    border[[0, -1], :] = True
    border[:, [0, -1]] = True

    def propagate(z: int) -> None:
        seeds = air[z] & border
        if seeds.any():
            outside[z] = ndi.binary_propagation(seeds, mask=air[z])

    thread_map(propagate, range(air.shape[0]))
    return outside


def filled_body(not_outside: np.ndarray) -> np.ndarray:
    """The body: everything not outside air, holes filled slice by slice."""
    body = np.empty_like(not_outside)
    for z in range(not_outside.shape[0]):
        body[z] = fill_holes_nd(not_outside[z])
    return body


def body_mid_x(body: np.ndarray) -> float:
    cols = np.flatnonzero(body.any(axis=(0, 1)))
    if cols.size == 0:
        return body.shape[2] / 2.0
    return 0.5 * (cols[0] + cols[-1])
