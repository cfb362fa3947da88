"""Run a network over a volume window by window and put its outputs back together.

A volume is covered by windows of the network's patch size
(:func:`window_corners`); :func:`sliding_window` crops them in batches, calls a
predictor and hands each output to an aggregator, which rebuilds one output
volume:

- :class:`HannBlend` sums overlapping outputs with a separable Hann weight
  (smooth seams), on a grid that may be coarser than the input (a U-Net
  bottleneck is ``f`` times smaller);
- :class:`CropStitch` keeps the centre of each output, trimming ``margin``
  voxels on every face shared with a neighbour, so the kept centres tile the
  volume without blending.

The shape follows MONAI's ``sliding_window_inference`` (windows, batches, a
predictor, blending modes).
"""

from __future__ import annotations

from itertools import product
from typing import Callable, Optional, Sequence

import numpy as np

from ..progress import ProgressCallback, report

__all__ = ["window_starts", "window_corners", "sliding_window", "HannBlend", "CropStitch"]

Corner = tuple[int, ...]


def window_starts(n: int, size: int, step: int) -> list[int]:
    """Starts of windows of ``size`` covering ``[0, n)`` with step ``step`` (last one flush)."""
    if n <= size:
        return [0]
    starts = list(range(0, n - size + 1, step))
    if starts[-1] != n - size:
        starts.append(n - size)
    return starts


def window_corners(shape: Sequence[int], window: Sequence[int], step: Sequence[int]) -> list[Corner]:
    """First voxel of every window covering ``shape``, in C order (z, then y, then x).

    Parameters
    ----------
    shape, window, step : (3,) sequences of int
        Volume size, window size and step between window starts, in voxels.
    """
    starts = [window_starts(int(n), int(w), int(s)) for n, w, s in zip(shape, window, step)]
    return list(product(*starts))


def _hann(n: int) -> np.ndarray:
    w = np.hanning(n + 2)[1:-1]
    return (w / w.max()).astype(np.float32)


class HannBlend:
    """Weighted sum of overlapping window outputs, the weight a separable Hann window.

    Parameters
    ----------
    shape : (3,) sequence of int
        Size of the output grid.
    window : (3,) sequence of int
        Size of one window's output on that grid.
    scale : int
        Input voxels per output voxel along each axis (a window at input
        corner ``c`` lands at ``c // scale``).
    """

    def __init__(self, shape: Sequence[int], window: Sequence[int], scale: int = 1):
        self.shape = tuple(int(s) for s in shape)
        self.window = tuple(int(w) for w in window)
        self.scale = int(scale)
        self.weight = np.einsum("i,j,k->ijk", *[_hann(w) for w in self.window])
        self.sum: Optional[np.ndarray] = None
        self.norm = np.zeros(self.shape, np.float32)

    def add(self, corner: Corner, values: np.ndarray) -> None:
        """Add one window's ``(C, *window)`` output, at input corner ``corner``."""
        if self.sum is None:
            self.sum = np.zeros((values.shape[0],) + self.shape, np.float32)
        where = tuple(slice(c // self.scale, c // self.scale + w) for c, w in zip(corner, self.window))
        self.sum[(slice(None),) + where] += values * self.weight
        self.norm[where] += self.weight

    def result(self) -> np.ndarray:
        """The blended ``(C, *shape)`` float32 output (the sum, divided in place by the weights)."""
        self.sum /= np.maximum(self.norm, 1e-6)
        return self.sum


class CropStitch:
    """The centres of window outputs written side by side into one array.

    Parameters
    ----------
    out_shape : (3,) sequence of int
        Size of the output volume.
    tiled_shape : (3,) sequence of int
        Size of the volume the windows cover.
    window : (3,) sequence of int
        Window size (outputs have the input's resolution).
    margin : int
        Voxels trimmed from each window face shared with a neighbour.
    origin : (3,) sequence of int
        Position of the tiled volume's first voxel in the output.
    extent : (3,) sequence of int, optional
        Voxels of the tiled volume that are kept (default all); padding
        beyond is never written.
    """

    def __init__(self, out_shape: Sequence[int], tiled_shape: Sequence[int], window: Sequence[int],
                 margin: int, origin: Sequence[int] = (0, 0, 0),
                 extent: Optional[Sequence[int]] = None):
        self.out_shape = tuple(int(s) for s in out_shape)
        self.tiled = tuple(int(s) for s in tiled_shape)
        self.window = tuple(int(w) for w in window)
        self.margin = int(margin)
        self.origin = tuple(int(o) for o in origin)
        self.extent = self.tiled if extent is None else tuple(int(e) for e in extent)
        self.out: Optional[np.ndarray] = None

    def add(self, corner: Corner, values: np.ndarray) -> None:
        """Write the kept part of one window's ``(C, *window)`` output (later windows win)."""
        if self.out is None:
            self.out = np.zeros((values.shape[0],) + self.out_shape, values.dtype)
        src, dst = [slice(None)], [slice(None)]
        for s, w, n, a, e in zip(corner, self.window, self.tiled, self.origin, self.extent):
            first = self.margin if s > 0 else 0
            last = min(w - self.margin if s + w < n else w, e - s)
            src.append(slice(first, last))
            dst.append(slice(a + s + first, a + s + last))
        self.out[tuple(dst)] = values[tuple(src)]

    def result(self) -> np.ndarray:
        """The ``(C, *out_shape)`` output (zero where no window was kept)."""
        return self.out


Predictor = Callable[[np.ndarray, range], np.ndarray]


def sliding_window(channels: Sequence[np.ndarray], corners: Sequence[Corner], window: Sequence[int],
                   predict: Predictor, aggregator, *, batch_size: int = 4,
                   progress: Optional[ProgressCallback] = None, stage: str = "windows"):
    """Crop windows in batches, predict, and aggregate the outputs.

    Parameters
    ----------
    channels : sequence of (Z, Y, X) ndarray
        Input channels, cropped alike and stacked as ``(B, len(channels), *window)``.
    corners : sequence of (3,) tuples
        Windows to run (e.g. :func:`window_corners`, possibly filtered).
    window : (3,) sequence of int
        Window size.
    predict : callable
        ``predict(batch, indices)`` with ``indices`` the positions of the
        batch's windows in ``corners`` (for per-window seeds); returns
        ``(B, C, ...)`` outputs, one per window.
    aggregator : HannBlend or CropStitch
        Receives each output with its corner.
    batch_size : int
        Windows per call of ``predict``.
    progress : callable, optional
        ``progress(done, total, stage)`` after each batch.

    Returns
    -------
    ndarray
        ``aggregator.result()``.
    """
    total = len(corners)
    for b0 in range(0, total, batch_size):
        chunk = corners[b0:b0 + batch_size]
        batch = np.stack([np.stack([c[tuple(slice(s, s + w) for s, w in zip(corner, window))]
                                    for c in channels]) for corner in chunk])
        for corner, values in zip(chunk, predict(batch, range(b0, b0 + len(chunk)))):
            aggregator.add(corner, values)
        report(progress, min(b0 + batch_size, total), total, stage)
    return aggregator.result()
