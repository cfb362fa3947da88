"""Quantitative report of a segmentation: volumes, density indices, clusters, timings.

:func:`make_report` returns a JSON-ready dict; :func:`write_report` writes it
as JSON and the per-class table beside it as CSV.
"""

from __future__ import annotations

import csv
import json
import platform
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..labels import LUNG_TISSUES, TISSUE_NAMES
from .assign import LabelMapping

__all__ = ["density_indices", "class_volumes", "make_report", "write_report"]


def density_indices(hu: np.ndarray, lung: np.ndarray) -> dict:
    """LAA-950 and LAA-910 (% of lung voxels below -950 / -910 HU) and PD15 (HU).

    PD15 is the 15th percentile of the lung HU histogram.
    """
    vals = np.asarray(hu)[np.asarray(lung) > 0]
    if vals.size == 0:
        return {"laa950_percent": float("nan"), "laa910_percent": float("nan"),
                "pd15_hu": float("nan")}
    return {"laa950_percent": float(100.0 * (vals < -950).mean()),
            "laa910_percent": float(100.0 * (vals < -910).mean()),
            "pd15_hu": float(np.percentile(vals, 15))}


def class_volumes(labels: np.ndarray, spacing: Sequence[float]) -> list[dict]:
    """Per tissue (labels 1..5): voxels, volume in mL and percent of the lung."""
    counts = np.bincount(np.asarray(labels).ravel(), minlength=6)
    lung = counts[1:].sum()
    ml = float(np.prod(spacing)) / 1000.0
    return [{"label": int(t), "name": TISSUE_NAMES[int(t)], "voxels": int(counts[t]),
             "volume_ml": float(counts[t] * ml),
             "percent_of_lung": float(100.0 * counts[t] / lung) if lung else 0.0}
            for t in LUNG_TISSUES]


def _versions() -> dict:
    import scipy
    import torch

    try:
        from importlib.metadata import version

        own = version("napari-diffseglung")
    except Exception:  # not installed as a distribution
        own = "unknown"
    return {"diffseglung": own, "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "torch": torch.__version__}


def make_report(labels: np.ndarray, hu: np.ndarray, spacing: Sequence[float], *,
                mapping: Optional[LabelMapping] = None, timings: Optional[dict] = None,
                params: Optional[dict] = None, source: str = "") -> dict:
    """The report of one scan (JSON-ready dict).

    Parameters
    ----------
    labels : (Z, Y, X) uint8 tissue labels, 0 outside lung.
    hu : (Z, Y, X) HU.
    spacing : mm ``(z, y, x)``.
    mapping, timings, params : from :class:`~.engine.SegmentationResult`.

    The ``"hu_calibration"`` entry is the mapping's calibration (what air was
    measured, whether the offset was applied and why; see
    :class:`~diffseglung_core.calibration.HUCalibration`), None without a mapping.
    """
    lung = np.asarray(labels) > 0
    return {
        "source": str(source),
        "shape": [int(s) for s in np.shape(labels)],
        "spacing_mm": [float(s) for s in spacing],
        "lung_volume_ml": float(lung.sum() * np.prod(spacing) / 1000.0),
        "classes": class_volumes(labels, spacing),
        "density": density_indices(hu, lung),
        "hu_calibration": (dict(mapping.calibration) or {"offset_hu": float(mapping.hu_offset)})
        if mapping is not None else None,
        "mapping": mapping.to_dict() if mapping is not None else None,
        "timings_s": {k: float(v) for k, v in (timings or {}).items()},
        "params": params or {},
        "versions": _versions(),
    }


def write_report(report: dict, path, *, overwrite: bool = True) -> tuple[Path, Path]:
    """Write ``report`` to ``path`` (.json) and its class table to the same name ``.csv``."""
    from ..errors import OutputExistsError

    path = Path(path)
    csv_path = path.with_suffix(".csv")
    if not overwrite and (path.exists() or csv_path.exists()):
        raise OutputExistsError(path if path.exists() else csv_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=float))
    with open(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["label", "name", "voxels", "volume_ml", "percent_of_lung"])
        for c in report["classes"]:
            w.writerow([c["label"], c["name"], c["voxels"], f"{c['volume_ml']:.3f}",
                        f"{c['percent_of_lung']:.3f}"])
        d = report["density"]
        w.writerow([])
        w.writerow(["laa950_percent", "laa910_percent", "pd15_hu"])
        w.writerow([f"{d['laa950_percent']:.3f}", f"{d['laa910_percent']:.3f}", f"{d['pd15_hu']:.1f}"])
    return path, csv_path
