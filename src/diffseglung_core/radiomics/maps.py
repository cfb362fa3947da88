"""Voxel-wise radiomic feature maps of a whole volume, on a strided grid inside the lung.

:func:`feature_maps` centres a ``window`` (voxels) on every ``stride``-th voxel
that lies in the lung, describes the lung voxels of that window with the 34
features of :func:`~.batched.batched_features`, and returns a
:class:`FeatureMap`. Windows are processed in chunks of ``batch_size`` so
memory stays bounded whatever the volume; :meth:`FeatureMap.at_points` samples
the features at any points by trilinear interpolation, :meth:`FeatureMap.at`
at the voxels of a mask, slice by slice. At stride 1 the first-order and GLCM
features come from box sums over every window at once (:mod:`.dense`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..device import get_device
from ..errors import NoLungFoundError
from ..parallel import thread_map
from ..progress import ProgressCallback, report
from .batched import batched_features
from .dense import dense_applies, dense_features
from .names import BIN_WIDTH, FEATURE_NAMES, GROUPS, MAX_LEVELS, group_of

#: HU given to window voxels outside the volume (they are outside the lung, so unused).
PAD_HU = -1000.0

#: Memory allowed for the co-occurrence matrices of one sub-batch of windows (bytes).
GLCM_BUDGET_BYTES = 256 * 2 ** 20

Triple = Union[int, Sequence[int]]


def _max_levels(win: torch.Tensor, msk: torch.Tensor) -> int:
    """The largest number of 25-HU gray levels of the masked windows (at most MAX_LEVELS)."""
    flat, m = win.flatten(1), msk.flatten(1)
    big = torch.finfo(flat.dtype).max
    lo = torch.where(m, flat, torch.full_like(flat, big)).min(1).values
    hi = torch.where(m, flat, torch.full_like(flat, -big)).max(1).values
    span = (torch.floor(hi / BIN_WIDTH) - torch.floor(lo / BIN_WIDTH) + 1).max()
    return int(min(max(float(span), 1.0), MAX_LEVELS))


def _triple(v: Triple, what: str) -> tuple[int, int, int]:
    t = (int(v),) * 3 if np.isscalar(v) else tuple(int(a) for a in v)
    if len(t) != 3 or min(t) < 1:
        raise ValueError(f"{what} must be a positive int or 3 positive ints, got {v!r}")
    return t  # type: ignore[return-value]


def window_for_spacing(spacing: Sequence[float], size_mm: float = 7.0,
                       minimum: int = 3) -> tuple[int, int, int]:
    """An odd window (voxels) about ``size_mm`` wide along each axis, at least ``minimum``.

    ``spacing`` is the voxel size in mm ``(z, y, x)``.
    """
    out = []
    for s in spacing:
        n = max(minimum, int(round(size_mm / float(s))))
        out.append(n if n % 2 else n + 1)
    return tuple(out)  # type: ignore[return-value]


@dataclass
class FeatureMap:
    """Features on a strided grid of a volume.

    Attributes
    ----------
    values : (F, gz, gy, gx) float32
        Features at the grid points; NaN where ``valid`` is False.
    valid : (gz, gy, gx) bool
        Grid points whose centre voxel is in the lung (features computed).
    stride : (3,) int
        Grid step in voxels ``(z, y, x)``.
    origin : (3,) int
        Voxel index of grid point ``(0, 0, 0)``; grid point ``k`` is voxel
        ``origin + k * stride``.
    window : (3,) int
        Neighbourhood size in voxels.
    shape : (3,) int
        Shape of the volume the map was computed on.
    names : tuple of str
        Feature names, ``len == F``.
    """

    values: np.ndarray
    valid: np.ndarray
    stride: tuple[int, int, int]
    origin: tuple[int, int, int]
    window: tuple[int, int, int]
    shape: tuple[int, int, int]
    names: tuple[str, ...] = FEATURE_NAMES
    _filled: Optional[np.ndarray] = field(default=None, repr=False, compare=False)
    _planes: Optional[np.ndarray] = field(default=None, repr=False, compare=False)

    def planes(self) -> np.ndarray:
        """(gz, gy, gx, F) float32 :meth:`filled` values, one contiguous row per grid point."""
        if self._planes is None:
            self._planes = np.ascontiguousarray(np.moveaxis(self.filled(), 0, -1))
        return self._planes

    def filled(self) -> np.ndarray:
        """(F, gz, gy, gx) float32 values with each invalid point set to its nearest valid one."""
        if self._filled is None:
            from scipy.ndimage import distance_transform_edt

            if self.valid.all():
                self._filled = self.values
            else:
                _, idx = distance_transform_edt(~self.valid, return_indices=True)
                self._filled = np.ascontiguousarray(self.values[:, idx[0], idx[1], idx[2]])
        return self._filled

    def at_points(self, points: np.ndarray, *, chunk: int = 1_000_000) -> np.ndarray:
        """Trilinear interpolation of the features at voxel coordinates.

        Parameters
        ----------
        points : (N, 3) array
            Voxel indices ``(z, y, x)`` (may be fractional).

        Returns
        -------
        (N, F) float32. Invalid grid points take their nearest valid neighbour's
        values; points beyond the grid take the edge values.
        """
        rows = self.planes().reshape(-1, len(self.names))  # (grid points, F)
        grid = np.array(self.valid.shape)
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        out = np.empty((len(pts), rows.shape[1]), np.float32)
        origin, stride = np.asarray(self.origin, float), np.asarray(self.stride, float)
        strides = np.array([grid[1] * grid[2], grid[2], 1])

        def interpolate(start: int) -> None:
            g = (pts[start:start + chunk] - origin) / stride
            g = np.clip(g, 0, grid - 1)
            lo = np.minimum(np.floor(g).astype(np.int64), grid - 1)
            step = (np.minimum(lo + 1, grid - 1) - lo) * strides   # 0 at the last grid plane
            f = (g - lo).astype(np.float32)
            base = lo @ strides
            acc = np.zeros((len(g), rows.shape[1]), np.float32)
            for corner in range(8):
                bits = [(corner >> k) & 1 for k in range(3)]
                w = np.ones(len(g), np.float32)
                lin = base.copy()
                for k in range(3):
                    if bits[k]:
                        w *= f[:, k]
                        lin += step[:, k]
                    else:
                        w *= 1 - f[:, k]
                acc += w[:, None] * rows[lin]
            out[start:start + chunk] = acc

        thread_map(interpolate, range(0, len(pts), chunk))
        return out

    def _cells(self, coords: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Grid points below and above voxel ``coords`` along ``axis``, and the upper one's weight."""
        n = self.valid.shape[axis]
        g = np.clip((np.asarray(coords, np.float64) - self.origin[axis]) / self.stride[axis], 0, n - 1)
        lo = np.minimum(np.floor(g).astype(np.int64), n - 1)
        return lo, np.minimum(lo + 1, n - 1), (g - lo).astype(np.float32)

    def at(self, mask: np.ndarray, *, start: int = 0) -> np.ndarray:
        """(N, F) float32 features at the True voxels of ``mask``, in ``np.nonzero`` order.

        The trilinear interpolation of :meth:`at_points`, computed axis by axis
        on each slice: the two grid planes around the slice are blended, then
        the plane's columns, then its rows (the same values to float32
        rounding, a fraction of the work).

        Parameters
        ----------
        mask : (z, Y, X) bool array
            Slices ``start .. start + z`` of the volume the map was computed on
            (all of it by default).
        start : int
            Index of ``mask``'s first slice in that volume.
        """
        mask = np.asarray(mask, bool)
        if mask.ndim != 3 or mask.shape[1:] != tuple(self.shape[1:]) or \
                not 0 <= start <= start + mask.shape[0] <= self.shape[0]:
            raise ValueError(f"mask shape {mask.shape} at slice {start} does not fit the volume "
                             f"shape {tuple(self.shape)}")
        if self.stride == (1, 1, 1) and self.origin == (0, 0, 0):
            valid = self.valid[start:start + mask.shape[0]]
            if not np.any(mask & ~valid):  # every voxel asked for is a grid point
                return np.ascontiguousarray(self.values[:, start:start + mask.shape[0]][:, mask].T)
        planes = self.planes()
        n_feat = planes.shape[-1]
        low_y, high_y, wy = self._cells(np.arange(mask.shape[1]), 1)
        low_x, high_x, wx = self._cells(np.arange(mask.shape[2]), 2)
        low_z, high_z, wz = self._cells(start + np.arange(mask.shape[0]), 0)

        ends = np.cumsum(mask.reshape(mask.shape[0], -1).sum(1))
        out = np.empty((int(ends[-1]) if len(ends) else 0, n_feat), np.float32)

        def one_slice(z: int) -> None:
            ys, xs = np.nonzero(mask[z])
            if len(ys) == 0:
                return
            # the grid's rows and the volume's columns this slice needs
            r0, r1 = int(low_y[ys[0]]), int(high_y[ys[-1]]) + 1
            c0, c1 = int(xs.min()), int(xs.max()) + 1
            # blends as in-place torch lerps (a fraction of numpy's broadcast arithmetic)
            plane = torch.from_numpy(planes[low_z[z], r0:r1].copy())
            plane.lerp_(torch.from_numpy(planes[high_z[z], r0:r1]), float(wz[z]))
            plane = plane.numpy()
            cols = torch.from_numpy(np.take(plane, low_x[c0:c1], axis=1))
            cols.lerp_(torch.from_numpy(np.take(plane, high_x[c0:c1], axis=1)),
                       torch.from_numpy(wx[c0:c1, None]))
            cols = cols.numpy().reshape(-1, n_feat)  # (rows r0..r1 x columns c0..c1, F)
            at = xs - c0
            below = torch.from_numpy(np.take(cols, (low_y[ys] - r0) * (c1 - c0) + at, axis=0))
            above = torch.from_numpy(np.take(cols, (high_y[ys] - r0) * (c1 - c0) + at, axis=0))
            torch.lerp(below, above, torch.from_numpy(wy[ys, None]),
                       out=torch.from_numpy(out[ends[z] - len(ys):ends[z]]))

        edges = np.linspace(0, mask.shape[0], min(mask.shape[0], 16) + 1).round().astype(int)
        thread_map(lambda span: [one_slice(z) for z in range(*span)],
                   [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])])
        return out

    def upsample(self, mask: Optional[np.ndarray] = None) -> np.ndarray:
        """(F, Z, Y, X) float32 full-resolution maps (0 outside ``mask`` when given).

        Memory is F x the volume in float32: prefer :meth:`at` on large volumes.
        """
        mask = np.ones(self.shape, bool) if mask is None else np.asarray(mask, bool)
        full = np.zeros((len(self.names),) + tuple(self.shape), np.float32)
        full[:, mask] = self.at(mask).T
        return full


def grid_centres(lung: np.ndarray, stride: tuple[int, int, int],
                 origin: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The grid's valid mask ``(gz, gy, gx)`` and the voxel indices ``(N, 3)`` of its valid points."""
    sub = lung[origin[0]::stride[0], origin[1]::stride[1], origin[2]::stride[2]]
    valid = np.asarray(sub, bool)
    centres = np.argwhere(valid) * np.asarray(stride) + np.asarray(origin)
    return valid, centres


@torch.no_grad()
def feature_maps(
    hu: np.ndarray,
    lung: np.ndarray,
    *,
    window: Triple = 9,
    stride: Triple = 4,
    batch_size: int = 2048,
    device: Union[str, torch.device] = "cpu",
    dtype: torch.dtype = torch.float32,
    groups: Sequence[str] = tuple(GROUPS),
    progress: Optional[ProgressCallback] = None,
    box_sums: bool = True,
) -> FeatureMap:
    """Radiomic features of the lung around every ``stride``-th lung voxel.

    Parameters
    ----------
    hu : (Z, Y, X) array
        HU.
    lung : (Z, Y, X) bool array
        Lung mask: grid points are kept where it is True, and only lung voxels
        of each window are described.
    window : int or 3 ints
        Neighbourhood size in voxels (odd; see :func:`window_for_spacing`).
    stride : int or 3 ints
        Grid step in voxels. The grid starts at ``stride // 2``.
    batch_size : int
        Windows per chunk (progress is reported per chunk). A chunk whose
        co-occurrence matrices would pass :data:`GLCM_BUDGET_BYTES` is split.
    device : str or torch.device
        Where to compute (``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``).
    dtype : torch dtype
        Precision of the computation (float32 is about twice as fast).
    groups : sequence of str
        Feature groups to compute (all by default; see :func:`batched_features`).
    progress : callable, optional
        ``progress(done, total, "radiomic maps")`` after each chunk; raise
        :class:`~diffseglung_core.errors.Cancelled` from it to stop.
    box_sums : bool
        At stride 1, compute what :func:`~.dense.dense_applies` allows from box
        sums, in float64 whatever ``dtype`` (False: every window on its own, as
        at other strides).

    Returns
    -------
    FeatureMap
    """
    hu = np.asarray(hu)
    lung = np.asarray(lung, bool)
    if hu.shape != lung.shape or hu.ndim != 3:
        raise ValueError(f"hu {hu.shape} and lung {lung.shape} must be the same 3D shape")
    # an axis shorter than the window: a window of 2n - 1 covers all of it from any
    # centre (one slice: the planes across slices, nothing but padding, are left out)
    window = tuple(min(w, 2 * n - 1) for w, n in zip(_triple(window, "window"), hu.shape))
    stride = _triple(stride, "stride")
    origin = tuple(min(s // 2, n - 1) for s, n in zip(stride, hu.shape))
    valid, centres = grid_centres(lung, stride, origin)
    if len(centres) == 0:
        raise NoLungFoundError("the lung mask is empty: no radiomic map to compute")
    dev = get_device(device) if isinstance(device, str) else device
    if dev.type == "mps" and dtype == torch.float64:
        dtype = torch.float32

    names = tuple(name for name in FEATURE_NAMES if group_of(name) in groups)
    if box_sums and stride == (1, 1, 1) and dev.type != "mps" and dense_applies(hu, lung, groups):
        # every lung voxel: box sums share the work of overlapping windows (in float64,
        # which MPS lacks)
        values = dense_features(hu, lung, window, groups=groups, device=dev, progress=progress)
        return _feature_map(values, valid, stride, origin, window, hu.shape, names)

    half = np.asarray(window) // 2
    pads = [(int(h), int(w - 1 - h)) for h, w in zip(half, window)]
    hu_t = torch.from_numpy(np.pad(hu.astype(np.float32, copy=False), pads, constant_values=PAD_HU))
    lung_t = torch.from_numpy(np.pad(lung, pads, constant_values=False))
    hu_t, lung_t = hu_t.to(dev), lung_t.to(dev)
    offsets = [torch.arange(w, device=dev) for w in window]

    n = len(centres)
    values = np.empty((n, len(names)), np.float32)
    n_chunks = (n + batch_size - 1) // batch_size
    report(progress, 0, n_chunks, "radiomic maps")
    for c in range(n_chunks):
        sel = torch.from_numpy(centres[c * batch_size:(c + 1) * batch_size]).to(dev)
        # window voxel (k0, k1, k2) of centre p is padded voxel p + k (the pad shifts by half)
        iz = (sel[:, 0, None] + offsets[0])[:, :, None, None]
        iy = (sel[:, 1, None] + offsets[1])[:, None, :, None]
        ix = (sel[:, 2, None] + offsets[2])[:, None, None, :]
        win, msk = hu_t[iz, iy, ix], lung_t[iz, iy, ix]
        # bound the co-occurrence matrices (B x 13 x L^2, about 20 bytes a cell in all)
        levels = _max_levels(win, msk)
        per_window = 20 * 13 * levels * levels
        step = max(1, min(len(win), int(GLCM_BUDGET_BYTES // per_window)))
        feats = torch.cat([batched_features(win[k:k + step], msk[k:k + step], dtype=dtype,
                                            groups=groups) for k in range(0, len(win), step)])
        values[c * batch_size:(c + 1) * batch_size] = feats.float().cpu().numpy()
        report(progress, c + 1, n_chunks, "radiomic maps")

    return _feature_map(values, valid, stride, origin, window, hu.shape, names)


def _feature_map(values, valid, stride, origin, window, shape, names) -> FeatureMap:
    """The :class:`FeatureMap` of the rows ``values`` (N, F) of the grid's valid points."""
    grid = np.full((len(names),) + valid.shape, np.nan, np.float32)
    grid[:, valid] = values.T
    return FeatureMap(values=grid, valid=valid, stride=stride, origin=origin,
                      window=window, shape=tuple(shape), names=names)
