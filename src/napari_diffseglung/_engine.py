"""The plugin's only contact with the segmentation engine (:mod:`diffseglung_core.segment`).

Widgets call these few functions, so they never reach into the engine's internals.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np

from diffseglung_core.device import get_device
from diffseglung_core.segment import LabelMapping, SegmentationResult, apply_mapping, segment_volume
from diffseglung_core.segment.assign import label_probabilities
from diffseglung_core.segment.engine import DEFAULT_TIMESTEPS, FEATURE_SETS
from diffseglung_core.volume import CTVolume

from ._layers import labels_layer_data

#: Parameters of Sobel-Diffusion Fusion shown in the Export widget: name -> (default, min, max,
#: step). A value at the minimum of a parameter in AUTO_AT_MINIMUM means None (the engine decides).
REFINE_PARAMETERS = {
    "kappa": (0.0, 0.0, 1000.0, 5.0),
    "kappa_noise": (3.0, 0.1, 20.0, 0.5),
    "iterations": (4, 0, 50, 1),
    "step": (1.0 / 6.0, 0.01, 1.0 / 6.0, 0.01),
    "smooth_mm": (0.7, 0.0, 5.0, 0.1),
    "min_component_mm3": (20.0, 0.0, 10000.0, 5.0),
}
#: kappa = None: the edge threshold follows the scan's noise (kappa_noise x median gradient).
AUTO_AT_MINIMUM = ("kappa",)


def feature_choices() -> list[str]:
    return list(FEATURE_SETS)


def default_timesteps() -> tuple[int, ...]:
    return tuple(DEFAULT_TIMESTEPS)


def run_engine(volume: CTVolume, lung_mask: Optional[np.ndarray], options, *,
               progress=None) -> SegmentationResult:
    """Segment ``volume`` with the widget's options (see ``SegmentOptions``)."""
    import warnings

    with warnings.catch_warnings():  # the widget already warns about a missing accelerator
        warnings.simplefilter("ignore")
        device = str(get_device(options.device))
    return segment_volume(volume, lung_mask=lung_mask, features=options.features,
                          checkpoint=options.checkpoint,
                          timesteps=options.timesteps or DEFAULT_TIMESTEPS, k=options.k,
                          device=device, refine=options.refine, progress=progress)


def cluster_layers(result: SegmentationResult, volume: CTVolume, name: str) -> list[tuple]:
    """One hidden Labels layer per clustering (final, and each feature set / timestep alone)."""
    return [labels_layer_data(result.cluster_map(key), volume, f"{name} clusters {key}",
                              tissue_colors=False, visible=False)
            for key in result.clusters]


def cluster_rows(mapping: LabelMapping) -> list[dict]:
    """Table rows: cluster id, voxel count, mean and percentile HU, label, flag."""
    rows = []
    for k, label in enumerate(mapping.labels):
        stats = mapping.stats[k] if k < len(mapping.stats) else {}
        rows.append({"cluster": k, "voxels": int(stats.get("n_voxels", 0)),
                     "mean_hu": stats.get("mean_hu", float("nan")),
                     "p10_hu": stats.get("p10_hu", float("nan")),
                     "median_hu": stats.get("median_hu", float("nan")),
                     "p90_hu": stats.get("p90_hu", float("nan")),
                     "label": int(label),
                     "flag": mapping.flags[k] if k < len(mapping.flags) else ""})
    return rows


def relabel(result: SegmentationResult, mapping: LabelMapping, *, refine: Optional[bool] = None,
            refine_options: Optional[dict] = None,
            progress=None) -> tuple[SegmentationResult, np.ndarray]:
    """Labels under ``mapping`` (and refinement settings) from the cached cluster posteriors.

    Returns the updated result (its mapping and refinement options replaced) and the labels.
    """
    params = dict(result.params)
    if refine is not None:
        params["refine"] = bool(refine)
    if refine_options is not None:
        params["refine_options"] = dict(refine_options)
    updated = replace(result, mapping=mapping, params=params)
    labels = apply_mapping(updated, mapping, progress=progress)
    updated.labels = labels
    return updated, labels


def preview_slice(result: SegmentationResult, z: int, *, refine: bool,
                  refine_options: dict) -> np.ndarray:
    """(Y, X) labels of slice ``z`` with or without Sobel-Diffusion Fusion."""
    from diffseglung_core.viewer_support import refine_slice

    probs = label_probabilities(result.posteriors, result.mapping, **_gates(result))
    if refine:
        return refine_slice(probs, result.lung, result.hu, result.spacing, z, **refine_options)
    from diffseglung_core.segment.refine import argmax_labels

    per_z = (np.asarray(result.lung) > 0).reshape(result.lung.shape[0], -1).sum(1)
    start = int(per_z[:z].sum())
    return argmax_labels(probs[start:start + int(per_z[z])], result.lung[z:z + 1])[0]


def _gates(result: SegmentationResult) -> dict:
    """The per-voxel density gates ``apply_mapping`` passes to ``label_probabilities``."""
    gates = {"smooth_hu": result.smooth_hu}
    if getattr(result, "context_hu", None) is not None:
        gates["context_hu"] = result.context_hu
    return gates
