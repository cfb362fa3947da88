"""Class volumes of each lung: what a report of lung disease gives first, per side."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..labels import LUNG_TISSUES, TISSUE_NAMES

__all__ = ["class_volumes_by_side", "RIGHT", "LEFT"]

#: Values of the lung mask's sides (``diffseglung_core.lung``: 1 right lung, 2 left lung).
RIGHT, LEFT = 1, 2


def class_volumes_by_side(labels: np.ndarray, spacing: Sequence[float],
                          sides: Optional[np.ndarray] = None) -> list[dict]:
    """Per tissue (labels 1..5): voxels, mL and percent of the lung, in all and per lung.

    Parameters
    ----------
    labels : (Z, Y, X) integer ndarray
        Tissue labels (0 outside the lung).
    spacing : (3,) sequence of float
        mm ``(z, y, x)``.
    sides : (Z, Y, X) integer ndarray, optional
        Lung mask with 1 for the right lung and 2 for the left one; without it
        (or when it has no side values) the per-side entries are None.

    Returns
    -------
    list of dict
        ``label``, ``name``, ``voxels``, ``volume_ml``, ``percent_of_lung``,
        ``right_ml``, ``left_ml``, ``right_percent``, ``left_percent`` (percent of
        that lung).
    """
    labels = np.asarray(labels)
    ml = float(np.prod([float(s) for s in spacing])) / 1000.0
    counts = np.bincount(labels.ravel(), minlength=6)
    total = counts[1:6].sum()
    per_side = {}
    if sides is not None and np.shape(sides) == labels.shape:
        sides = np.asarray(sides)
        for side in (RIGHT, LEFT):
            inside = sides == side
            if inside.any():
                per_side[side] = np.bincount(labels[inside].ravel(), minlength=6)
    rows = []
    for t in LUNG_TISSUES:
        t = int(t)
        row = {"label": t, "name": TISSUE_NAMES[t], "voxels": int(counts[t]),
               "volume_ml": float(counts[t] * ml),
               "percent_of_lung": float(100.0 * counts[t] / total) if total else 0.0}
        for side, key in ((RIGHT, "right"), (LEFT, "left")):
            c = per_side.get(side)
            lung = c[1:6].sum() if c is not None else 0
            row[f"{key}_ml"] = float(c[t] * ml) if c is not None else None
            row[f"{key}_percent"] = float(100.0 * c[t] / lung) if c is not None and lung else None
        rows.append(row)
    return rows
