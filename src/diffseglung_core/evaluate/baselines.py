"""Baselines and ablations, run through the same interface as the engine.

Every method takes ``(volume, lung)`` and returns ``(Z, Y, X)`` uint8 labels in
the project's convention:

* :func:`density_mask_labels`: fixed HU thresholds, no clustering (the
  clinical density mask): emphysema below -950, healthy up to -700, GGO up to
  -250, consolidation above; no fibrosis.
* :func:`kmeans_radiomics_labels`: K-means on radiomic (and density) features,
  clusters named by the same HU-guided assignment as the engine.
* :data:`METHODS`: the engine, the baselines and the ablations by name (see
  :func:`run_method`): ``"engine"``, ``"density-mask"``, ``"kmeans-radiomics"``,
  ``"no-hu-preservation"``, ``"no-sdf"`` (no Sobel-Diffusion Fusion),
  ``"density-only"``, and with a checkpoint ``"diffusion"`` (density, radiomic
  and diffusion features), ``"diffusion-alone"`` (density and diffusion
  features, no radiomics), ``"diffusion-one-timestep"``; ``"diffusion-no-distillation"`` and
  ``"diffusion-no-hu-preservation"`` are ``"diffusion"`` run with a stage-1
  checkpoint (trained with and without HU preservation): the caller passes
  that checkpoint.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..labels import Tissue
from ..volume import CTVolume

__all__ = ["density_mask_labels", "kmeans_radiomics_labels", "run_method", "METHODS"]


def density_mask_labels(hu: np.ndarray, lung: np.ndarray, *, emphysema_below: float = -950.0,
                        healthy_below: float = -700.0, ggo_below: float = -250.0) -> np.ndarray:
    """(Z, Y, X) uint8 labels from fixed HU thresholds inside ``lung``."""
    hu = np.asarray(hu)
    inside = np.asarray(lung) > 0
    out = np.zeros(hu.shape, np.uint8)
    out[inside] = Tissue.CONSOLIDATION
    out[inside & (hu < ggo_below)] = Tissue.GGO
    out[inside & (hu < healthy_below)] = Tissue.HEALTHY
    out[inside & (hu < emphysema_below)] = Tissue.EMPHYSEMA
    return out


def kmeans_radiomics_labels(volume: CTVolume, lung: np.ndarray, *, k: int = 8, seed: int = 0,
                            radiomics: bool = True) -> np.ndarray:
    """K-means on radiomic + density features, HU-guided names, no refinement."""
    from sklearn.cluster import KMeans

    from ..calibration import calibrate_hu
    from ..segment.assign import assign_labels, label_probabilities
    from ..segment.features import density_features, radiomic_features, robust_standardize
    from ..segment.refine import argmax_labels

    inside = np.asarray(lung) > 0
    dens = density_features(volume.hu, inside, volume.spacing)
    blocks = [robust_standardize(dens)]
    if radiomics:
        blocks.append(radiomic_features(volume.hu, inside, volume.spacing, n_components=None))
    x = np.concatenate(blocks, 1)
    rng = np.random.default_rng(seed)
    sub = x[rng.choice(len(x), min(len(x), 100_000), replace=False)]
    km = KMeans(k, n_init=3, random_state=seed).fit(sub)
    hard = km.predict(x)
    post = np.eye(k, dtype=np.float32)[hard]
    mapping = assign_labels(dens[:, 0] * 100, post, texture=dens[:, 2] * 100,
                            calibration=calibrate_hu(volume.hu, inside,
                                                     metadata=volume.source.metadata))
    return argmax_labels(label_probabilities(post, mapping), inside)


def _engine(**kw):
    def run(volume, lung, checkpoint=None):
        from ..segment.engine import segment_volume

        opts = dict(kw)
        if opts.get("features") in ("diffusion", "both"):
            if checkpoint is None:
                return None
            opts["checkpoint"] = checkpoint
        return segment_volume(volume, lung_mask=lung, device="cpu", **opts).labels
    return run


def _array(lung) -> np.ndarray:
    """The label map of a lung mask given as an array or a ``LungSegmentation``."""
    return getattr(lung, "labels", lung)


#: name -> callable(volume, lung, checkpoint=None) -> labels (None when it needs a missing checkpoint);
#: ``lung`` is a mask array or a ``LungSegmentation`` (the engine then calibrates on its airways too).
METHODS = {
    "engine": _engine(features="radiomics"),
    "no-evidence": _engine(features="radiomics", evidence=False),
    "density-only": _engine(features="density"),
    "no-sdf": _engine(features="radiomics", refine=False),
    "no-hu-preservation": _engine(features="radiomics", hu_preservation=False),
    "density-mask": lambda volume, lung, checkpoint=None: density_mask_labels(volume.hu, _array(lung)),
    "kmeans-radiomics": lambda volume, lung, checkpoint=None: kmeans_radiomics_labels(volume, _array(lung)),
    "diffusion": _engine(features="both"),
    "diffusion-alone": _engine(features="diffusion"),
    "diffusion-one-timestep": _engine(features="both", timesteps=(150,)),
    "diffusion-no-distillation": _engine(features="both"),
    "diffusion-no-hu-preservation": _engine(features="both"),
}


def run_method(name: str, volume: CTVolume, lung: np.ndarray,
               checkpoint: Optional[str] = None) -> Optional[np.ndarray]:
    """Labels of ``volume`` by the method ``name`` of :data:`METHODS` (None if it cannot run)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {sorted(METHODS)}")
    return METHODS[name](volume, lung, checkpoint=checkpoint)
