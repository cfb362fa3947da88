"""Quantitative report of a segmentation: volumes, density indices, clusters, timings.

:func:`make_report` returns a JSON-ready dict; :func:`write_report` writes it
as JSON and the per-class table beside it as CSV.
"""

from __future__ import annotations

import csv
import io
import json
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from ..describe import position_note
from ..gravity import dependent_side
from ..labels import LUNG_TISSUES, TISSUE_NAMES
from .assign import LabelMapping
from .low_attenuation import lucencies_resolved

if TYPE_CHECKING:
    from .evidence import TissueEvidence

#: Healthy lung at full inspiration reads about -850 HU (about -750 HU in expiration); where the
#: healthy level of a scan (the median over its lung) is denser than this, the level that
#: ground glass is measured against may be ground glass itself.
DENSE_HEALTHY_LEVEL_HU = -700.0

__all__ = ["density_indices", "class_volumes", "cluster_outcomes", "describe_outcome", "make_report",
           "report_paths", "write_report", "ground_glass_caution"]


def ground_glass_caution(evidence: TissueEvidence) -> str:
    """A caution where the healthy level of a scan (``evidence.healthy_level_hu``,
    :class:`~.evidence.TissueEvidence`) is denser than :data:`DENSE_HEALTHY_LEVEL_HU`:
    ground glass may then be labelled healthy. "" otherwise."""
    level = evidence.healthy_level_hu
    if not level > DENSE_HEALTHY_LEVEL_HU:
        return ""
    return (f"the healthy level of this scan's lung reads {level:.0f} HU, denser than healthy lung "
            "at full inspiration (about -850 HU): diffuse ground glass, or a scan taken in "
            "expiration, may have set it, and ground glass may be labelled healthy")


def density_indices(hu: np.ndarray, lung: np.ndarray, hu_offset: float = 0.0) -> dict:
    """LAA-950 and LAA-910 (% of lung voxels below -950 / -910 HU) and PD15 (HU).

    PD15 is the 15th percentile of the lung HU histogram. ``hu_offset`` (HU,
    the calibration's offset: air measured minus -1000 HU) is subtracted
    first, so the indices are read on calibrated HU, as the engine's labels are;
    it is returned as ``"hu_offset"``.
    """
    vals = np.asarray(hu)[np.asarray(lung) > 0] - np.float32(hu_offset)
    if vals.size == 0:
        return {"laa950_percent": float("nan"), "laa910_percent": float("nan"),
                "pd15_hu": float("nan"), "hu_offset": float(hu_offset)}
    return {"laa950_percent": float(100.0 * (vals < -950).mean()),
            "laa910_percent": float(100.0 * (vals < -910).mean()),
            "pd15_hu": float(np.percentile(vals, 15)), "hu_offset": float(hu_offset)}


def class_volumes(labels: np.ndarray, spacing: Sequence[float]) -> list[dict]:
    """Per tissue (labels 1..5): voxels, volume in mL and percent of the lung."""
    counts = np.bincount(np.asarray(labels).ravel(), minlength=6)
    lung = counts[1:].sum()
    ml = float(np.prod(spacing)) / 1000.0
    return [{"label": int(t), "name": TISSUE_NAMES[int(t)], "voxels": int(counts[t]),
             "volume_ml": float(counts[t] * ml),
             "percent_of_lung": float(100.0 * counts[t] / lung) if lung else 0.0}
            for t in LUNG_TISSUES]


def cluster_outcomes(labels: np.ndarray, lung: np.ndarray, clusters: np.ndarray,
                     n_clusters: int) -> list[dict[str, float]]:
    """Per cluster, the share (%) of its voxels that each tissue ended with.

    A cluster is named by its voxels' statistics; the structure evidence and the
    region patterns then label its voxels one by one, so a cluster named fibrosis
    can end almost wholly healthy (vessels and lung mixed in one cluster).

    Parameters
    ----------
    labels : (Z, Y, X) uint8
        Final tissue labels (0 outside the lung).
    lung : (Z, Y, X) array
        The lung the clusters were computed in (nonzero inside).
    clusters : (N,) int
        Cluster of each lung voxel, in the order of ``lung > 0``.
    n_clusters : int

    Returns
    -------
    list of dict
        One dict per cluster: tissue name -> percent of the cluster's voxels (only
        the tissues it holds).
    """
    final = np.asarray(labels)[np.asarray(lung) > 0].astype(np.int64)
    clusters = np.asarray(clusters, np.int64)
    counts = np.bincount(clusters * 6 + final, minlength=n_clusters * 6).reshape(n_clusters, 6)
    out = []
    for row in counts:
        total = row.sum()
        out.append({TISSUE_NAMES[t]: float(100.0 * row[t] / total) for t in range(6)
                    if total and row[t]})
    return out


def describe_outcome(shares: dict[str, float]) -> str:
    """``"its voxels labelled 83 % healthy, 9 % consolidation"``: a cluster's outcome in words.

    ``shares`` is one entry of :func:`cluster_outcomes` (largest first; under 0.5 % left out);
    "" when empty.
    """
    parts = [f"{p:.0f} % {name}" for name, p in sorted(shares.items(), key=lambda kv: -kv[1])
             if p >= 0.5]
    return "its voxels labelled " + ", ".join(parts) if parts else ""


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
                result=None, mapping: Optional[LabelMapping] = None,
                timings: Optional[dict] = None, params: Optional[dict] = None,
                source: str = "", patient_position: str = "") -> dict:
    """The report of one scan (JSON-ready dict).

    Parameters
    ----------
    labels : (Z, Y, X) uint8 tissue labels, 0 outside lung.
    hu : (Z, Y, X) HU.
    spacing : mm ``(z, y, x)``.
    result : SegmentationResult, optional
        The engine's result; its mapping, timings, parameters, structure evidence
        and lung segmentation fill the report (the keywords below override them).
    mapping, timings, params : from :class:`~.engine.SegmentationResult`.

    With a result, ``"classes_by_lung"`` gives each class in the right and the left
    lung (mL, percent of that lung). With the lung segmentation the ``"lung"`` entry gives the right and left
    lung, pleural effusion and gas left out of the lung (mL) and the notes of
    the lung mask. With structure evidence the ``"emphysema_evidence"`` entry
    explains the emphysema label beside LAA-950: the noise of the scan's lung,
    the share of healthy lung that noise alone puts below -950 HU, the width of
    the dark halo of a sharp kernel left out along the lung's edge, the
    low-attenuation lung of a uniformly dark thin-slice scan not called
    emphysema (no lucencies that read as air), and the share labelled emphysema
    (regions far above that baseline), and the ``"ground_glass_evidence"`` entry the
    healthy level that ground glass is read against, with a ``"caution"`` where it is
    denser than :data:`DENSE_HEALTHY_LEVEL_HU` (:func:`ground_glass_caution`).

    With a ``patient_position`` (DICOM PatientPosition) other than supine, the
    ``"patient_position"`` entry says what that means for the dependent lung
    (:func:`~diffseglung_core.describe.position_note`).

    The ``"hu_calibration"`` entry is the mapping's calibration (what air was
    measured, whether the offset was applied and why; see
    :class:`~diffseglung_core.calibration.HUCalibration`), None without a mapping.
    The ``"density"`` indices are read on HU calibrated by its applied offset.
    """
    if result is not None:
        mapping = mapping if mapping is not None else result.mapping
        timings = timings if timings is not None else result.timings
        params = params if params is not None else result.params
    lung = np.asarray(labels) > 0
    density = density_indices(hu, lung, mapping.hu_offset if mapping is not None else 0.0)
    out = {
        "source": str(source),
        "shape": [int(s) for s in np.shape(labels)],
        "spacing_mm": [float(s) for s in spacing],
        "lung_volume_ml": float(lung.sum() * np.prod(spacing) / 1000.0),
        "classes": class_volumes(labels, spacing),
        "density": density,
        "hu_calibration": (dict(mapping.calibration) or {"offset_hu": float(mapping.hu_offset)})
        if mapping is not None else None,
        "mapping": mapping.to_dict() if mapping is not None else None,
        "timings_s": {k: float(v) for k, v in (timings or {}).items()},
        "params": params or {},
        "versions": _versions(),
    }
    note = position_note(patient_position)
    if note:
        out["patient_position"] = {"dicom": patient_position, "note": note}
    sides = getattr(result, "lung", None)
    if sides is not None and np.shape(sides) == np.shape(labels):
        from .sides import class_volumes_by_side

        out["classes_by_lung"] = class_volumes_by_side(labels, spacing, sides)
        final = getattr(result, "clusters", {}).get("final")
        if out["mapping"] is not None and final is not None:
            clusters = out["mapping"]["clusters"]
            for c, outcome in zip(clusters, cluster_outcomes(labels, sides, final, len(clusters))):
                c["labelled_percent"] = outcome
    seg = getattr(result, "lung_segmentation", None)
    if seg is not None:
        out["lung"] = {**{f"{k}_ml": float(v) for k, v in seg.volumes_ml().items()},
                       "notes": list(seg.notes)}
    ev = getattr(result, "evidence", None)
    if ev is not None:
        emph = next(c["percent_of_lung"] for c in out["classes"] if c["label"] == 4)
        out["emphysema_evidence"] = {
            "noise_hu": float(ev.noise_hu),
            "healthy_laa950_percent": float(100.0 * ev.laa_baseline),
            "note": (f"LAA-950 is {density['laa950_percent']:.1f} % of the lung; the lung's voxels "
                     f"spread about {ev.noise_hu:.0f} HU around its level (noise and fine "
                     f"texture), so about {100.0 * ev.laa_baseline:.1f} % of healthy lung reads "
                     f"below -950 HU; emphysema ({emph:.1f} % of the lung) is labelled only in "
                     "regions where the low-attenuation share is far above that"
                     + "; a region is its holes and the lung between them, as a reader outlines it"
                     + (" (in slices this thin, which resolve the holes, only the lung between "
                        "nearby holes), and a lucency that reads as air at least 2 mm across is "
                        "emphysema by itself" if lucencies_resolved(spacing) else
                        " (in slices this thick partial volume blurs the holes into the lung "
                        "between them)")
                     + (f"; the first {ev.halo_mm:.0f} mm of lung along the heart, the mediastinum "
                        "and the chest wall read darker (the halo of a sharp reconstruction kernel) "
                        "and are not read as emphysema" if ev.halo_mm > 0 else "")
                     + (f"; {ev.dark_without_air_ml:.1f} mL of lung reads below -950 HU "
                        "because the lung itself reads darker than at full inspiration (a deep "
                        "breath, the gravity gradient), without lucencies that read as air, and "
                        "is not called emphysema" if ev.dark_without_air_ml >= 0.05 else "")),
            "edge_halo_mm": float(ev.halo_mm),
            "dark_without_air_ml": float(ev.dark_without_air_ml),
        }
        level, bounded = ev.healthy_level_hu, float(ev.level_bounded_ml)
        out["ground_glass_evidence"] = {
            "healthy_level_hu": level,
            "level_bounded_ml": bounded,
            "note": (f"ground glass is lung whose parenchyma reads well above the healthy level of "
                     f"its slice at its depth (median {level:.0f} HU here)"
                     + (f"; in {bounded:.0f} mL of lung the depth band's own density peak was "
                        "denser than the scan's lighter lung allows for a gravity gradient "
                        "(ground glass filling the band), and the lighter lung set its level"
                        if bounded >= 0.5 else "")),
        }
        caution = ground_glass_caution(ev)
        if caution:
            out["ground_glass_evidence"]["caution"] = caution
        if ev.dependent is not None and ev.dependent.size == np.count_nonzero(lung):
            healthy = np.asarray(labels)[lung] == 1
            ml = float(np.count_nonzero(ev.dependent & healthy) * np.prod(spacing) / 1000.0)
            side = dependent_side(patient_position)
            pleura = {"back": "posterior", "front": "anterior", "right": "right", "left": "left"}[side]
            lying = {"back": "supine", "front": "prone"}.get(side, "decubitus")
            other = "prone" if side == "back" else "supine"
            out["dependent_density"] = {
                "ml": ml,
                "note": (f"{ml:.1f} mL of denser lung in a thin band under the {pleura} pleura, "
                         "without reticulation, is labelled healthy: the dependent density of a "
                         f"{lying} patient (a {other} scan tells it from early disease)"),
            }
    return out


def report_paths(path) -> tuple[Path, Path]:
    """``(json, csv)`` files of a report asked for as ``path``.

    The JSON report goes to ``path`` and its class table to the same name
    ``.csv``; a ``path`` ending in ``.csv`` keeps the table and the JSON goes
    beside it (``.json``), so neither is written over the other.
    """
    path = Path(path)
    csv_path = path.with_suffix(".csv")
    return (path.with_suffix(".json") if path == csv_path else path), csv_path


def write_report(report: dict, path, *, overwrite: bool = True) -> tuple[Path, Path]:
    """Write ``report`` to the two files of :func:`report_paths` (JSON, CSV class table).

    Each file is written whole or not at all (:func:`~diffseglung_core.io.writers.write_text`).
    """
    from ..errors import OutputExistsError
    from ..io.writers import write_text

    path, csv_path = report_paths(path)
    if not overwrite and (path.exists() or csv_path.exists()):
        raise OutputExistsError(path if path.exists() else csv_path)
    table = io.StringIO(newline="")
    w = csv.writer(table)
    w.writerow(["label", "name", "voxels", "volume_ml", "percent_of_lung"])
    for c in report["classes"]:
        w.writerow([c["label"], c["name"], c["voxels"], f"{c['volume_ml']:.3f}",
                    f"{c['percent_of_lung']:.3f}"])
    d = report["density"]
    w.writerow([])
    w.writerow(["laa950_percent", "laa910_percent", "pd15_hu", "hu_offset"])
    w.writerow([f"{d['laa950_percent']:.3f}", f"{d['laa910_percent']:.3f}", f"{d['pd15_hu']:.1f}",
                f"{d.get('hu_offset', 0.0):.1f}"])
    write_text(path, json.dumps(report, indent=2, default=float), overwrite=overwrite)
    write_text(csv_path, table.getvalue(), overwrite=overwrite)
    return path, csv_path
