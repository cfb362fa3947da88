"""Where to look next: label confidence, and the slice where a correction would help most.

A radiologist cannot check every slice. The label posteriors say where the
labels are uncertain: :func:`confidence_map` is the most probable label's
posterior at every lung voxel, and :func:`slice_scores` ranks the axial
slices by the uncertainty of their voxels where a non-healthy class is at
stake (the most or second most probable label is not healthy): uncertain
healthy lung between two healthy readings does not call for a check, a
doubtful GGO/fibrosis border does. :func:`next_slice` is the best slice not
yet confirmed.
"""

from __future__ import annotations

from typing import Iterable, Optional

import numpy as np

from ..labels import Tissue

__all__ = ["confidence_map", "voxel_uncertainty", "slice_scores", "next_slice"]


def voxel_uncertainty(probabilities: np.ndarray) -> np.ndarray:
    """(N,) float32 ``1 - (p1 - p2)`` of lung voxels whose best or second label is not healthy, else 0.

    Parameters
    ----------
    probabilities : (N, 6) ndarray
        Label posteriors of the lung voxels (columns 0..5; 0 is ignored).
    """
    p = np.asarray(probabilities, np.float32)[:, 1:]
    order = np.argsort(-p, axis=1)[:, :2]
    rows = np.arange(len(p))
    p1, p2 = p[rows, order[:, 0]], p[rows, order[:, 1]]
    healthy = int(Tissue.HEALTHY) - 1
    at_stake = (order[:, 0] != healthy) | (order[:, 1] != healthy)
    return np.where(at_stake, 1.0 - (p1 - p2), 0.0).astype(np.float32)


def confidence_map(probabilities: np.ndarray, lung: np.ndarray, *, outside: float = 0.0) -> np.ndarray:
    """(Z, Y, X) float32 posterior of the most probable label (1..5) in the lung.

    Parameters
    ----------
    probabilities : (N, 6) ndarray
        Label posteriors of the lung voxels, ``np.nonzero(lung)`` order.
    lung : (Z, Y, X) ndarray
        Lung mask (nonzero inside).
    outside : float
        Value outside the lung (1.0 for a display that shows low confidence only).
    """
    lung = np.asarray(lung) > 0
    p = np.asarray(probabilities, np.float32)[:, 1:]
    total = np.maximum(p.sum(1), 1e-6)
    out = np.full(lung.shape, float(outside), np.float32)
    out[lung] = p.max(1) / total
    return out


def slice_scores(probabilities: np.ndarray, lung: np.ndarray) -> np.ndarray:
    """(Z,) float64 sum of :func:`voxel_uncertainty` over each axial slice's lung voxels."""
    lung = np.asarray(lung) > 0
    z = np.nonzero(lung)[0]
    return np.bincount(z, weights=voxel_uncertainty(probabilities), minlength=lung.shape[0])


def next_slice(probabilities: np.ndarray, lung: np.ndarray, confirmed: Iterable[int] = (), *,
               scores: Optional[np.ndarray] = None, slice_mm: float = 1.0,
               spread_mm: float = 30.0) -> Optional[int]:
    """The unconfirmed axial slice with the highest :func:`slice_scores`, or None when none is left.

    A correction teaches most about slices unlike the ones already checked, and
    neighbouring slices look alike: the score of a slice ``d`` mm from the
    nearest confirmed slice is multiplied by ``1 - exp(-(d / spread_mm)^2)``.

    Parameters
    ----------
    probabilities : (N, 6) ndarray
        Label posteriors of the lung voxels, ``np.nonzero(lung)`` order.
    lung : (Z, Y, X) ndarray
        Lung mask (nonzero inside).
    confirmed : iterable of int
        Slices already checked.
    scores : (Z,) ndarray, optional
        Precomputed :func:`slice_scores`.
    slice_mm : float
        Distance between slices (mm).
    spread_mm : float
        How far (mm) a confirmed slice lowers the scores of its neighbours; 0: not at all.
    """
    scores = slice_scores(probabilities, lung) if scores is None else np.array(scores, float)
    scores = scores.astype(float)
    done = sorted({int(z) for z in confirmed if 0 <= int(z) < scores.size})
    if done and spread_mm > 0:
        z = np.arange(scores.size)
        d = np.min(np.abs(z[:, None] - np.asarray(done)[None, :]), axis=1) * float(slice_mm)
        scores *= 1.0 - np.exp(-(d / float(spread_mm)) ** 2)
    for z in done:
        scores[z] = -1.0
    best = int(np.argmax(scores))
    return best if scores[best] > 0 else None
