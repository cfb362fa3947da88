"""Relabel a result without computing features again: another mapping, other refinement, one slice.

:func:`~.engine.segment_volume` keeps the cluster posteriors of every lung
voxel, so the interactive operations of a viewer (a cluster given another
label, refinement switched or tuned, a preview of one slice) are cheap: they
start from those posteriors and the per-voxel density gates.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Optional, Union

import numpy as np

from ..progress import ProgressCallback
from .assign import LabelMapping, label_probabilities
from .engine import SegmentationResult, apply_mapping, region_patterns
from .options import RefineOptions
from .refine import argmax_labels, refine_slice

__all__ = ["relabel", "preview_slice", "label_gates", "cluster_rows"]

RefineSettings = Union[RefineOptions, Mapping[str, Any], None]


def _as_kwargs(options: RefineSettings) -> dict[str, Any]:
    if options is None:
        return {}
    return options.to_dict() if isinstance(options, RefineOptions) else dict(options)


def label_gates(result: SegmentationResult) -> dict[str, np.ndarray]:
    """The per-voxel density gates :func:`~.engine.apply_mapping` gives :func:`~.assign.label_probabilities`.

    Returns
    -------
    dict
        ``smooth_hu`` and, when the result has them, ``context_hu`` ((N,) float32)
        and ``evidence`` (:class:`~.evidence.TissueEvidence`).
    """
    gates = {"smooth_hu": result.smooth_hu}
    if getattr(result, "context_hu", None) is not None:
        gates["context_hu"] = result.context_hu
    if getattr(result, "evidence", None) is not None:
        gates["evidence"] = result.evidence
    return gates


def relabel(result: SegmentationResult, mapping: LabelMapping, *, refine: Optional[bool] = None,
            refine_options: RefineSettings = None,
            progress: Optional[ProgressCallback] = None) -> tuple[SegmentationResult, np.ndarray]:
    """Labels under ``mapping`` (and refinement settings) from the cached cluster posteriors.

    Parameters
    ----------
    result : SegmentationResult
    mapping : LabelMapping
        The cluster -> label mapping to apply.
    refine : bool, optional
        Run Sobel-Diffusion Fusion; default as in ``result``.
    refine_options : RefineOptions or dict, optional
        Its parameters; default as in ``result``.
    progress : callable, optional
        ``progress(done, total, stage)``.

    Returns
    -------
    updated : SegmentationResult
        A copy with the mapping, refinement settings and labels replaced.
    labels : (Z, Y, X) uint8 ndarray
    """
    params = dict(result.params)
    if refine is not None:
        params["refine"] = bool(refine)
    if refine_options is not None:
        params["refine_options"] = _as_kwargs(refine_options)
    updated = replace(result, mapping=mapping, params=params)
    labels = apply_mapping(updated, mapping, progress=progress)
    updated.labels = labels
    return updated, labels


def preview_slice(result: SegmentationResult, z: int, *, refine: bool,
                  refine_options: RefineSettings = None) -> np.ndarray:
    """Labels of one axial slice under the result's mapping, refined or not.

    Parameters
    ----------
    result : SegmentationResult
    z : int
        The slice.
    refine : bool
        Sobel-Diffusion Fusion (on a slab around ``z``, see
        :func:`~.refine.refine_slice`) or the plain argmax; then the patterns of
        regions (:func:`~.engine.region_patterns`), read with the other slices
        unrefined.
    refine_options : RefineOptions or dict, optional
        Parameters of the refinement.

    Returns
    -------
    (Y, X) uint8 ndarray
    """
    probs = label_probabilities(result.posteriors, result.mapping, **label_gates(result))
    labels = argmax_labels(probs, result.lung)
    if refine:
        labels[z] = refine_slice(probs, result.lung, result.hu, result.spacing, z,
                                 **_as_kwargs(refine_options),
                                 keep_emphysema=result.emphysema_as_regions)
    # the patterns of regions reach across slices: read on the whole volume (its other slices
    # unrefined), as applying the settings does
    return region_patterns(result, labels, result.mapping)[z]


def cluster_rows(mapping: LabelMapping) -> list[dict[str, Any]]:
    """One table row per cluster: voxels, mean and percentile HU, label, flag.

    Returns
    -------
    list of dict
        Keys ``cluster``, ``voxels``, ``mean_hu``, ``p10_hu``, ``median_hu``,
        ``p90_hu`` (NaN when unknown), ``label`` and ``flag`` (why the cluster
        fits no tissue well, or "").
    """
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
