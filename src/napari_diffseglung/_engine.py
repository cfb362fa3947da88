"""The plugin's only contact with the segmentation engine (diffseglung_core.segment).

Every widget calls these few functions, so the widgets do not depend on the
engine's internals.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from diffseglung_core.volume import CTVolume

from ._layers import labels_layer_data


def feature_choices() -> list[str]:
    return ["radiomics", "diffusion"]


def default_timesteps() -> tuple[int, ...]:
    return (50, 100, 200)


def run_engine(volume: CTVolume, lung_mask: Optional[np.ndarray], options, *, progress=None,
               cache: Optional[dict] = None):
    """Segment ``volume``; ``cache`` keeps features between runs on the same layer."""
    raise NotImplementedError("segment engine not wired yet")


def result_labels(result) -> np.ndarray:
    return result.labels


def result_lung(result) -> Optional[np.ndarray]:
    return getattr(result, "lung_mask", None)


def result_clusters(result) -> np.ndarray:
    return result.clusters


def current_mapping(result) -> dict[int, int]:
    return dict(result.mapping)


def default_mapping(result) -> dict[int, int]:
    return dict(result.default_mapping)


def remap(result, mapping: dict[int, int]) -> np.ndarray:
    """Labels for a new cluster -> label mapping, without recomputing features."""
    raise NotImplementedError


def cluster_layers(result, volume: CTVolume, name: str) -> list[tuple]:
    """One hidden Labels layer per timestep's cluster map."""
    return []


def with_mapping(result, mapping: dict[int, int]):
    """The result with its current mapping replaced (the default mapping is kept)."""
    raise NotImplementedError
