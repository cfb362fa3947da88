"""Robust per-feature normalisation (median / IQR), saved with the teacher.

Teacher vectors of different scans are made comparable by
``(value - median) / IQR`` with statistics taken over a set of patches. The
statistics are a plain dict of lists (``{"names", "median", "iqr"}``) so they
go into checkpoints read with ``torch.load(weights_only=True)`` and into JSON.
"""

from __future__ import annotations

import json
import os
from typing import Sequence, Union

import numpy as np
import torch

from .names import FEATURE_NAMES

#: IQRs below this are replaced by 1 (a feature constant over the set is only centred).
MIN_IQR = 1e-12

Stats = dict


def robust_stats(features: Union[np.ndarray, torch.Tensor],
                 names: Sequence[str] = FEATURE_NAMES) -> Stats:
    """Median and interquartile range of each feature column.

    Parameters
    ----------
    features : (N, F) array
        Feature vectors of N patches (NaN rows are ignored per column).

    Returns
    -------
    dict with ``names`` (list of F str), ``median`` and ``iqr`` (lists of F float)
    and ``count`` (N).
    """
    x = np.asarray(torch.as_tensor(features).detach().cpu().double().numpy())
    if x.ndim != 2 or x.shape[1] != len(names):
        raise ValueError(f"features must be (N, {len(names)}), got {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("robust_stats needs at least one feature vector")
    q25, med, q75 = np.nanpercentile(x, [25, 50, 75], axis=0)
    iqr = q75 - q25
    iqr = np.where(np.abs(iqr) < MIN_IQR, 1.0, iqr)
    return {"names": list(names), "median": [float(v) for v in med],
            "iqr": [float(v) for v in iqr], "count": int(x.shape[0])}


def normalize(features, stats: Stats):
    """``(features - median) / iqr``; numpy in, numpy out, torch in, torch out (same device)."""
    if isinstance(features, torch.Tensor):
        med = torch.tensor(stats["median"], dtype=features.dtype, device=features.device)
        iqr = torch.tensor(stats["iqr"], dtype=features.dtype, device=features.device)
        return (features - med) / iqr
    x = np.asarray(features)
    return (x - np.asarray(stats["median"], x.dtype if x.dtype.kind == "f" else np.float64)) \
        / np.asarray(stats["iqr"], x.dtype if x.dtype.kind == "f" else np.float64)


def denormalize(features, stats: Stats):
    """Inverse of :func:`normalize`."""
    if isinstance(features, torch.Tensor):
        med = torch.tensor(stats["median"], dtype=features.dtype, device=features.device)
        iqr = torch.tensor(stats["iqr"], dtype=features.dtype, device=features.device)
        return features * iqr + med
    x = np.asarray(features, dtype=np.float64)
    return x * np.asarray(stats["iqr"]) + np.asarray(stats["median"])


def save_stats(stats: Stats, path: Union[str, os.PathLike]) -> None:
    """Write the statistics as JSON."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(stats, fh, indent=1)


def load_stats(path: Union[str, os.PathLike]) -> Stats:
    """Read statistics written by :func:`save_stats`, checking the feature names."""
    with open(path, encoding="utf-8") as fh:
        stats = json.load(fh)
    check_stats(stats, path)
    return stats


def check_stats(stats: Stats, source: object = "statistics") -> None:
    """Raise ValueError unless ``stats`` has matching ``names``, ``median`` and ``iqr``."""
    for key in ("names", "median", "iqr"):
        if key not in stats:
            raise ValueError(f"{source}: normalisation statistics lack {key!r}")
    if not (len(stats["names"]) == len(stats["median"]) == len(stats["iqr"])):
        raise ValueError(f"{source}: normalisation statistics have columns of different lengths")
