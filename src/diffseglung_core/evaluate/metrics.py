"""Agreement between a predicted and a reference label map: Dice, HD95 (mm), surface Dice, volume error."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy import ndimage as ndi

from ..labels import LUNG_TISSUES, TISSUE_NAMES

__all__ = ["dice", "hd95", "surface_dice", "edge_band", "volume_error_ml", "evaluate_labels"]


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice of two boolean masks; NaN when both are empty."""
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    s = pred.sum() + gt.sum()
    return float(2.0 * (pred & gt).sum() / s) if s else float("nan")


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndi.binary_erosion(mask, border_value=0)


def _boundary_scores(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float],
                     tolerance_mm: float) -> tuple[float, float]:
    """HD95 (mm) and surface Dice at ``tolerance_mm`` of two bool masks, from one pair of
    distance maps (each surface voxel's distance to the other surface)."""
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    if not pred.any() and not gt.any():
        return float("nan"), float("nan")
    if not pred.any() or not gt.any():
        return float("inf"), 0.0
    sp, sg = _surface(pred), _surface(gt)
    d = np.concatenate([ndi.distance_transform_edt(~sg, sampling=spacing)[sp],
                        ndi.distance_transform_edt(~sp, sampling=spacing)[sg]])
    return float(np.percentile(d, 95)), float(np.mean(d <= tolerance_mm))


def hd95(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float]) -> float:
    """95th percentile symmetric Hausdorff distance (mm) between two masks' surfaces.

    NaN when both masks are empty, ``inf`` when only one is. Works for 2D and
    3D masks; ``spacing`` has one value (mm) per axis.
    """
    return _boundary_scores(pred, gt, spacing, 0.0)[0]


def surface_dice(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float],
                 tolerance_mm: float) -> float:
    """Normalised surface Dice: the share of both surfaces within ``tolerance_mm`` of the other.

    The surface Dice of Nikolov et al. (2021, J Med Internet Res 23:e26151):
    it scores where the boundaries lie, a boundary placed up to
    ``tolerance_mm`` from the reference's counting as right, so a large
    region's interior does not outweigh its edges as in the volume Dice; a
    region labelled wrong counts by its surface.

    Parameters
    ----------
    pred, gt : bool arrays of the same shape (2D or 3D).
    spacing : mm per axis.
    tolerance_mm : float, >= 0.

    Returns
    -------
    float in [0, 1]; NaN when both masks are empty, 0 when only one is.
    """
    if tolerance_mm < 0:
        raise ValueError(f"tolerance_mm must be >= 0, got {tolerance_mm}")
    return _boundary_scores(pred, gt, spacing, tolerance_mm)[1]


def edge_band(labels: np.ndarray, voxels: int = 1) -> np.ndarray:
    """Voxels within ``voxels`` voxels, in-plane (diagonals included), of a voxel of another label.

    Where a reference's label changes, a voxel may hold two tissues (partial
    volume): scoring with this band left out tells errors at the reference's
    boundaries from regions labelled wrong.

    Parameters
    ----------
    labels : (Z, Y, X) or (Y, X) integer label map (0 counts as a label: the lung's border).
    voxels : int, >= 1.

    Returns
    -------
    bool array of ``labels``' shape.
    """
    if voxels < 1:
        raise ValueError(f"voxels must be >= 1, got {voxels}")
    labels = np.asarray(labels)
    size = (1,) * (labels.ndim - 2) + (2 * int(voxels) + 1,) * 2
    return ndi.maximum_filter(labels, size=size) != ndi.minimum_filter(labels, size=size)


def volume_error_ml(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float]) -> float:
    """Predicted minus reference volume (mL)."""
    return float((np.asarray(pred, bool).sum() - np.asarray(gt, bool).sum())
                 * np.prod(spacing) / 1000.0)


def evaluate_labels(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float], *,
                    labels: Optional[Sequence[int]] = None, within: Optional[np.ndarray] = None,
                    distances: bool = True, tolerance_mm: Optional[float] = None) -> list[dict]:
    """Per-class Dice, HD95 (mm), surface Dice and volume error (mL) of two label maps.

    Parameters
    ----------
    pred, gt : integer label maps of the same shape.
    spacing : mm per axis.
    labels : classes to score (default 1..5).
    within : optional mask restricting the comparison (e.g. the reference lung).
    distances : compute HD95 and the surface Dice (the slow part).
    tolerance_mm : tolerance of the surface Dice (:func:`surface_dice`); default one
        in-plane voxel (the larger of the last two spacings).

    Returns
    -------
    list of dicts ``{label, name, dice, hd95_mm, surface_dice, tolerance_mm,
    volume_error_ml, gt_voxels, pred_voxels}``.
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} != reference shape {gt.shape}")
    if within is not None:
        w = np.asarray(within, bool)
        pred, gt = np.where(w, pred, 0), np.where(w, gt, 0)
    tol = float(max(spacing[-2:])) if tolerance_mm is None else float(tolerance_mm)
    out = []
    for lab in (labels if labels is not None else [int(t) for t in LUNG_TISSUES]):
        p, g = pred == lab, gt == lab
        hd, nsd = _boundary_scores(p, g, spacing, tol) if distances else (float("nan"),) * 2
        out.append({"label": int(lab), "name": TISSUE_NAMES.get(int(lab), str(lab)),
                    "dice": dice(p, g), "hd95_mm": hd, "surface_dice": nsd, "tolerance_mm": tol,
                    "volume_error_ml": volume_error_ml(p, g, spacing),
                    "gt_voxels": int(g.sum()), "pred_voxels": int(p.sum())})
    return out
