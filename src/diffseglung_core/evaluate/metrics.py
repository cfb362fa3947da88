"""Agreement between a predicted and a reference label map: Dice, HD95 (mm), volume error."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy import ndimage as ndi

from ..labels import LUNG_TISSUES, TISSUE_NAMES

__all__ = ["dice", "hd95", "volume_error_ml", "evaluate_labels"]


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice of two boolean masks; NaN when both are empty."""
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    s = pred.sum() + gt.sum()
    return float(2.0 * (pred & gt).sum() / s) if s else float("nan")


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndi.binary_erosion(mask, border_value=0)


def hd95(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float]) -> float:
    """95th percentile symmetric Hausdorff distance (mm) between two masks' surfaces.

    NaN when both masks are empty, ``inf`` when only one is. Works for 2D and
    3D masks; ``spacing`` has one value (mm) per axis.
    """
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    if not pred.any() and not gt.any():
        return float("nan")
    if not pred.any() or not gt.any():
        return float("inf")
    sp, sg = _surface(pred), _surface(gt)
    dist_to_g = ndi.distance_transform_edt(~sg, sampling=spacing)
    dist_to_p = ndi.distance_transform_edt(~sp, sampling=spacing)
    d = np.concatenate([dist_to_g[sp], dist_to_p[sg]])
    return float(np.percentile(d, 95))


def volume_error_ml(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float]) -> float:
    """Predicted minus reference volume (mL)."""
    return float((np.asarray(pred, bool).sum() - np.asarray(gt, bool).sum())
                 * np.prod(spacing) / 1000.0)


def evaluate_labels(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float], *,
                    labels: Optional[Sequence[int]] = None, within: Optional[np.ndarray] = None,
                    distances: bool = True) -> list[dict]:
    """Per-class Dice, HD95 (mm) and volume error (mL) of two label maps.

    Parameters
    ----------
    pred, gt : integer label maps of the same shape.
    spacing : mm per axis.
    labels : classes to score (default 1..5).
    within : optional mask restricting the comparison (e.g. the reference lung).
    distances : compute HD95 (the slow part).

    Returns
    -------
    list of dicts ``{label, name, dice, hd95_mm, volume_error_ml, gt_voxels, pred_voxels}``.
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} != reference shape {gt.shape}")
    if within is not None:
        w = np.asarray(within, bool)
        pred, gt = np.where(w, pred, 0), np.where(w, gt, 0)
    out = []
    for lab in (labels if labels is not None else [int(t) for t in LUNG_TISSUES]):
        p, g = pred == lab, gt == lab
        out.append({"label": int(lab), "name": TISSUE_NAMES.get(int(lab), str(lab)),
                    "dice": dice(p, g),
                    "hd95_mm": hd95(p, g, spacing) if distances else float("nan"),
                    "volume_error_ml": volume_error_ml(p, g, spacing),
                    "gt_voxels": int(g.sum()), "pred_voxels": int(p.sum())})
    return out
