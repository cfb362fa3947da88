"""A coarser grid for learning from corrections: pooled features, labels and interpolated predictions.

A correction head does not need every 0.7 mm voxel: tissue classes are
regions of several millimetres. :class:`ReducedGrid` cuts the lung's bounding
box into blocks of about ``target_mm`` (whole voxels per axis) and averages
over each block. :func:`weightfree_features` computes the head's weight-free
features on that grid (density at several scales, texture, low-attenuation and
dense fractions, gradient, Hessian tube/blob/plate measures, depth below the
pleura, and the unsupervised label posteriors), :meth:`ReducedGrid.pool_labels`
the labels of the confirmed voxels, and :meth:`ReducedGrid.interpolate` brings
per-block class probabilities back to every lung voxel (trilinear).

Memory: the features are ``C`` float16 values per block; for a 512 x 512 x 300
scan at 0.7 x 0.7 x 1 mm and 2 mm blocks (3 x 3 x 2 voxels) that is about
4.4 M blocks, 180 MB for 20 channels. Full-resolution work runs in z-slabs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage as ndi

from ..binary import distance_inside
from ..lung.coarse import block_mean
from ..progress import ProgressCallback, report
from .features import HU_CLIP, lung_bbox

__all__ = ["ReducedGrid", "reduced_grid", "weightfree_features", "WEIGHTFREE_CHANNELS"]

#: Names of the channels of :func:`weightfree_features` (then one per label 1..5 of the posteriors).
WEIGHTFREE_CHANNELS = ("hu", "hu_block_std", "gradient", "laa950", "dense", "lung_fraction",
                       "hu_3mm", "hu_8mm", "std_3mm", "laa_5mm", "dense_3mm", "pleura_depth",
                       "tube", "blob", "plate")


@dataclass(frozen=True)
class ReducedGrid:
    """Blocks of ``factors`` voxels covering the lung's bounding box.

    Attributes
    ----------
    shape : (3,) tuple
        The full volume's shape.
    spacing : (3,) tuple
        Its voxel size (mm).
    box : tuple of slice
        The covered part of the volume (the lung box grown to whole blocks,
        clipped to the volume; the last block along an axis may be partial).
    factors : (3,) tuple of int
        Voxels per block along z, y, x.
    """

    shape: tuple
    spacing: tuple
    box: tuple
    factors: tuple

    @property
    def grid_shape(self) -> tuple:
        """Blocks along z, y, x."""
        return tuple(-(-(b.stop - b.start) // f) for b, f in zip(self.box, self.factors))

    @property
    def grid_spacing(self) -> tuple:
        """Block size (mm)."""
        return tuple(float(s) * f for s, f in zip(self.spacing, self.factors))

    def block_of(self, flat: np.ndarray) -> np.ndarray:
        """Flat block index of voxels given by flat volume indices (all inside ``box``)."""
        z, y, x = np.unravel_index(np.asarray(flat, np.int64), self.shape)
        gz, gy, gx = self.grid_shape
        bz = (z - self.box[0].start) // self.factors[0]
        by = (y - self.box[1].start) // self.factors[1]
        bx = (x - self.box[2].start) // self.factors[2]
        return (bz * gy + by) * gx + bx

    def pool(self, volume: np.ndarray, *, dtype=np.float32) -> np.ndarray:
        """Block means of a full-resolution (Z, Y, X) array (partial blocks: mean of what is there)."""
        sub = np.asarray(volume)[self.box].astype(np.float32, copy=False)
        return block_mean(sub, self.factors).astype(dtype, copy=False)

    def pool_rows(self, flat: np.ndarray, values: np.ndarray, *, counts: Optional[np.ndarray] = None
                  ) -> np.ndarray:
        """Per-block means over the given voxels of per-voxel ``values`` (n,) or (n, C).

        Returns (C, *grid_shape) float32 (C = 1 for a vector); 0 where a block has none.
        """
        blocks = self.block_of(flat)
        n = int(np.prod(self.grid_shape))
        if counts is None:
            counts = np.bincount(blocks, minlength=n).astype(np.float64)
        values = np.asarray(values, np.float64)
        values = values[:, None] if values.ndim == 1 else values
        out = np.zeros((values.shape[1], n), np.float32)
        for c in range(values.shape[1]):
            total = np.bincount(blocks, weights=values[:, c], minlength=n)
            out[c] = np.where(counts > 0, total / np.maximum(counts, 1), 0.0)
        return out.reshape((values.shape[1],) + self.grid_shape)

    def pool_labels(self, flat: np.ndarray, labels: np.ndarray, *, min_share: float = 0.5,
                    lung_counts: Optional[np.ndarray] = None, n_classes: int = 6) -> np.ndarray:
        """The most common label of the given voxels in each block, or 255.

        A block gets a label when the given voxels are at least ``min_share``
        of its lung voxels (``lung_counts``, per block) and is 255 otherwise.
        """
        blocks = self.block_of(flat)
        n = int(np.prod(self.grid_shape))
        votes = np.zeros((n_classes, n), np.int64)
        labels = np.asarray(labels).astype(np.int64)
        for c in range(n_classes):
            votes[c] = np.bincount(blocks[labels == c], minlength=n)
        given = votes.sum(0)
        need = np.ceil(min_share * (given if lung_counts is None else lung_counts.reshape(-1)))
        out = np.where((given > 0) & (given >= need), votes.argmax(0), 255).astype(np.uint8)
        return out.reshape(self.grid_shape)

    def interpolate(self, blocks: np.ndarray, flat: np.ndarray, *, chunk: int = 2_000_000
                    ) -> np.ndarray:
        """(n, C) float32 trilinear values of block maps ``blocks`` (C, *grid_shape) at voxels ``flat``."""
        blocks = np.asarray(blocks, np.float32)
        flat = np.asarray(flat, np.int64)
        out = np.empty((flat.size, blocks.shape[0]), np.float32)
        for s in range(0, flat.size, chunk):
            idx = np.unravel_index(flat[s:s + chunk], self.shape)
            coords = np.stack([(i - b.start - (f - 1) / 2.0) / f
                               for i, b, f in zip(idx, self.box, self.factors)]).astype(np.float32)
            for c in range(blocks.shape[0]):
                out[s:s + coords.shape[1], c] = ndi.map_coordinates(blocks[c], coords, order=1,
                                                                    mode="nearest")
        return out


def reduced_grid(lung: np.ndarray, spacing: Sequence[float], *, target_mm: float = 2.0,
                 margin_mm: float = 6.0) -> ReducedGrid:
    """Blocks of about ``target_mm`` (whole voxels, at least one) over the lung's box plus ``margin_mm``."""
    lung = np.asarray(lung) > 0
    factors = tuple(max(1, int(round(target_mm / float(s)))) for s in spacing)
    margin = [int(np.ceil(margin_mm / float(s))) for s in spacing]
    box = lung_bbox(lung)
    box = tuple(slice(max(0, b.start - m), min(n, b.stop + m))
                for b, m, n in zip(box, margin, lung.shape))
    return ReducedGrid(tuple(int(n) for n in lung.shape), tuple(float(s) for s in spacing), box,
                       factors)


def _masked_gauss(values: np.ndarray, weight: np.ndarray, sigma_vox) -> np.ndarray:
    num = ndi.gaussian_filter(values * weight, sigma_vox, mode="constant", truncate=2.5)
    den = ndi.gaussian_filter(weight, sigma_vox, mode="constant", truncate=2.5)
    return num / np.maximum(den, 1e-3)


def weightfree_features(hu: np.ndarray, lung: np.ndarray, spacing: Sequence[float], *,
                        grid: Optional[ReducedGrid] = None, posteriors: Optional[np.ndarray] = None,
                        slab: int = 16, progress: Optional[ProgressCallback] = None
                        ) -> tuple[np.ndarray, ReducedGrid]:
    """Weight-free head features on a reduced grid.

    Parameters
    ----------
    hu : (Z, Y, X) ndarray
        CT in HU.
    lung : (Z, Y, X) ndarray
        Lung mask (nonzero inside).
    spacing : (3,) sequence of float
        mm ``(z, y, x)``.
    grid : ReducedGrid, optional
        Default :func:`reduced_grid` of the lung (2 mm blocks).
    posteriors : (N, 6) ndarray, optional
        Label posteriors of the lung voxels (``np.nonzero(lung)`` order), e.g.
        the unsupervised result's; their block means over the lung voxels are
        appended as 5 channels (labels 1..5).
    slab : int
        Full-resolution slices processed at a time (bounded memory).
    progress : callable, optional
        ``progress(done, total, stage)``.

    Returns
    -------
    features : (C, *grid.grid_shape) float16 ndarray
        Channels :data:`WEIGHTFREE_CHANNELS` (HU in hundreds, mm in tens), then
        the posteriors.
    grid : ReducedGrid
    """
    from .structure import structure_maps

    lung = np.asarray(lung) > 0
    grid = reduced_grid(lung, spacing) if grid is None else grid
    box, fz = grid.box, grid.factors[0]
    z0, z1 = box[0].start, box[0].stop
    smooth = [1.0 / float(s) if 1.0 / float(s) >= 0.3 else 0.0 for s in spacing]
    gz, gy, gx = grid.grid_shape
    fine = np.zeros((6, gz, gy, gx), np.float32)
    step = max(fz, (slab // fz) * fz)
    starts = list(range(z0, z1, step))
    halo = 2
    for i, s in enumerate(starts):
        e = min(s + step, z1)
        a, b = max(0, s - halo), min(grid.shape[0], e + halo)
        h = np.clip(np.asarray(hu[a:b, box[1], box[2]], np.float32), *HU_CLIP)
        m = lung[a:b, box[1], box[2]].astype(np.float32)
        g = ndi.gaussian_filter(h, smooth, mode="nearest") if any(smooth) else h
        grad = np.zeros(h.shape, np.float32)
        for ax, sp in enumerate(spacing):
            if h.shape[ax] > 1:
                grad += (np.gradient(g, axis=ax) / float(sp)) ** 2
        inner = slice(s - a, e - a)
        h, m, grad = h[inner], m[inner], np.sqrt(grad[inner])
        maps = (h / 100.0, (h / 100.0) ** 2, grad / 100.0, (h < -950).astype(np.float32),
                (h > -500).astype(np.float32), m)
        blocks = [block_mean(x, grid.factors) for x in maps]
        bz = (s - z0) // fz
        fine[:, bz:bz + blocks[0].shape[0]] = np.stack(blocks)
        report(progress, i + 1, len(starts) + 2, "learning features")
    hu_mean, hu_sq, grad, laa, dense, lung_frac = fine
    block_std = np.sqrt(np.maximum(hu_sq - hu_mean ** 2, 0.0))
    vox = grid.grid_spacing
    weight = (lung_frac > 0.25).astype(np.float32)

    def sig(mm):
        return [mm / v for v in vox]

    hu3 = _masked_gauss(hu_mean, weight, sig(3.0))
    hu8 = _masked_gauss(hu_mean, weight, sig(8.0))
    sq3 = _masked_gauss(hu_mean ** 2, weight, sig(3.0))
    std3 = np.sqrt(np.maximum(sq3 - hu3 ** 2, 0.0))
    laa5 = _masked_gauss(laa, weight, sig(5.0))
    dense3 = _masked_gauss(dense, weight, sig(3.0))
    depth = distance_inside(lung_frac >= 0.5, vox).astype(np.float32)
    depth = np.minimum(depth, 40.0) / 10.0
    report(progress, len(starts) + 1, len(starts) + 2, "learning features")
    structure = structure_maps(hu_mean * 100.0, vox, sigmas_mm=(max(2.0, min(vox)), 4.0))
    channels = [hu_mean, block_std, grad, laa, dense, lung_frac, hu3, hu8, std3, laa5, dense3, depth,
                structure["tube"], structure["blob"], structure["plate"]]
    if posteriors is not None:
        flat = np.flatnonzero(lung)
        post = np.asarray(posteriors, np.float32)
        channels += list(grid.pool_rows(flat, post[:, 1:6]))
    report(progress, len(starts) + 2, len(starts) + 2, "learning features")
    return np.stack(channels).astype(np.float16), grid
