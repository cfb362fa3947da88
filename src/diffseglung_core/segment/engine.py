"""Segment a CT volume: features -> GMM -> HU-guided labels -> Sobel-Diffusion Fusion.

:func:`segment_volume` is the one entry point of the command line and the
napari plugin. Only lung voxels are processed; every per-voxel array in the
result has one row per lung voxel in ``np.nonzero(lung)`` order. The result
keeps the cluster posteriors, so :func:`apply_mapping` relabels a scan after a
user edits the :class:`~.assign.LabelMapping` without computing any feature
again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import numpy as np

from ..errors import NoLungFoundError
from ..progress import ProgressCallback, report, scaled
from ..volume import CTVolume
from ..calibration import calibrate_hu
from .assign import AssignmentRules, LabelMapping, assign_labels, label_probabilities
from .features import density_features, robust_standardize
from .gmm import GaussianMixture, fit_gmm
from .refine import argmax_labels, refine_labels

__all__ = ["SegmentationResult", "segment_volume", "apply_mapping", "DEFAULT_TIMESTEPS",
           "FEATURE_SETS"]

#: Diffusion timesteps of the default feature (see docs/results.md): a nearly
#: clean input (fine density detail), a middle one (texture), a noisy one (context).
DEFAULT_TIMESTEPS = (50, 150, 300)
FEATURE_SETS = ("auto", "density", "radiomics", "diffusion", "both")


@dataclass
class SegmentationResult:
    """What :func:`segment_volume` found.

    Attributes
    ----------
    labels : (Z, Y, X) uint8, 0 outside lung, 1..5 tissues (:class:`~diffseglung_core.labels.Tissue`).
    lung : (Z, Y, X) uint8 lung mask used (nonzero inside).
    posteriors : (N, K) float16 cluster posteriors of the N lung voxels.
    clusters : name -> (N,) int16 most probable cluster of each lung voxel, for
        the final clustering (``"final"``) and for each feature set / timestep alone.
    mapping : the cluster -> label :class:`~.assign.LabelMapping`.
    smooth_hu : (N,) float32 smoothed HU of the lung voxels (voxel emphysema gate).
    context_hu : (N,) float32 large-scale masked mean HU of the lung voxels (vessel gate).
    hu : (Z, Y, X) HU the segmentation was computed on (a reference, not a copy).
    spacing : mm ``(z, y, x)``.
    gmm : the fitted :class:`~.gmm.GaussianMixture`.
    timings : stage -> seconds.
    params : the options used.
    """

    labels: np.ndarray
    lung: np.ndarray
    posteriors: np.ndarray
    clusters: dict
    mapping: LabelMapping
    smooth_hu: np.ndarray
    hu: np.ndarray
    spacing: tuple
    context_hu: Optional[np.ndarray] = None
    gmm: Optional[GaussianMixture] = None
    timings: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)

    def cluster_map(self, name: str = "final") -> np.ndarray:
        """(Z, Y, X) int16 cluster ids + 1 (0 outside the lung), for display."""
        out = np.zeros(self.lung.shape, np.int16)
        out[self.lung > 0] = self.clusters[name].astype(np.int16) + 1
        return out


def apply_mapping(result: SegmentationResult, mapping: LabelMapping, *,
                  refine: Optional[bool] = None,
                  progress: Optional[ProgressCallback] = None) -> np.ndarray:
    """Labels of ``result`` under another mapping, without recomputing features.

    ``refine`` (default: as in the original run) re-runs Sobel-Diffusion Fusion
    (seconds on a full scan); ``refine=False`` is a plain argmax (instant).

    Returns
    -------
    (Z, Y, X) uint8 labels.
    """
    probs = label_probabilities(result.posteriors, mapping, smooth_hu=result.smooth_hu,
                                context_hu=result.context_hu)
    refine = result.params.get("refine", True) if refine is None else refine
    if refine:
        return refine_labels(probs, result.lung, result.hu, result.spacing,
                             **result.params.get("refine_options", {}), progress=progress)
    return argmax_labels(probs, result.lung)


def _resolve_features(features: str, checkpoint) -> str:
    if features not in FEATURE_SETS:
        raise ValueError(f"features must be one of {FEATURE_SETS}, got {features!r}")
    if features == "auto":
        return "both" if checkpoint is not None else "radiomics"
    return features


def _strip_hu(hu: np.ndarray, lung: np.ndarray) -> np.ndarray:
    """Ablation 'no HU preservation': lung HU standardised per scan (absolute density lost).

    The lung HU are mapped to a fixed median (-850) and interquartile range
    (100 HU) whatever the scan, so density only counts relative to the scan's own lung.
    """
    vals = hu[lung]
    q25, med, q75 = np.percentile(vals, [25, 50, 75])
    scale = 100.0 / max(q75 - q25, 1.0)
    return ((hu - med) * scale - 850.0).astype(np.float32)


def segment_volume(
    volume: CTVolume,
    *,
    lung_mask: Optional[np.ndarray] = None,
    features: str = "auto",
    checkpoint=None,
    timesteps: Sequence[int] = DEFAULT_TIMESTEPS,
    k: int = 8,
    covariance_type: str = "diag",
    n_init: int = 3,
    device: str = "auto",
    refine: bool = True,
    refine_options: Optional[dict] = None,
    rules: AssignmentRules = AssignmentRules(),
    hu_preservation: bool = True,
    seed: int = 0,
    progress: Optional[ProgressCallback] = None,
) -> SegmentationResult:
    """Unsupervised segmentation of the lung tissues of a CT volume.

    Parameters
    ----------
    volume : CTVolume (HU, spacing in mm).
    lung_mask : (Z, Y, X) lung mask (nonzero inside), or None to compute it.
    features : ``"auto"`` (``"both"`` with a checkpoint, else ``"radiomics"``),
        ``"density"`` (local HU statistics only, fastest), ``"radiomics"``
        (density + radiomic voxel maps), ``"diffusion"`` (density + diffusion
        bottleneck at ``timesteps``) or ``"both"``.
    checkpoint : path of a trained model, ``"default"`` for the shipped one, or None.
    timesteps : diffusion timesteps whose features are concatenated.
    k : number of GMM components (over-clustering: several clusters may share a label).
    covariance_type : ``"diag"`` or ``"full"``.
    device : ``"auto" | "cpu" | "cuda" | "mps"``.
    refine : run Sobel-Diffusion Fusion (else argmax of the label posteriors).
    refine_options : keyword arguments of :func:`~.refine.refine_labels`.
    rules : HU boundaries of the assignment.
    hu_preservation : False is an ablation: lung HU are standardised per scan first.
    seed : seed of the GMM and of the diffusion noise.
    progress : ``progress(done, total, stage)``; raise ``Cancelled`` in it to stop.

    Returns
    -------
    SegmentationResult
    """
    timings: dict = {}
    t0 = time.perf_counter()
    features = _resolve_features(features, checkpoint)
    hu = volume.hu
    if lung_mask is None:
        from ..lung import compute_lung_mask

        lung_u8 = compute_lung_mask(hu, volume.spacing, progress=scaled(progress, 0.0, 0.15))
        timings["lung_mask"] = time.perf_counter() - t0
    else:
        lung_u8 = np.asarray(lung_mask).astype(np.uint8)
        if lung_u8.shape != hu.shape:
            from ..errors import GridMismatchError

            raise GridMismatchError(f"lung mask shape {lung_u8.shape} != scan shape {hu.shape}")
    lung = lung_u8 > 0
    if lung.sum() < max(k * 10, 50):
        raise NoLungFoundError(f"only {int(lung.sum())} lung voxels: too few to segment")
    if not hu_preservation:
        hu = _strip_hu(hu, lung)

    # -- features -----------------------------------------------------------------
    t = time.perf_counter()
    dens = density_features(hu, lung, volume.spacing, progress=scaled(progress, 0.15, 0.3))
    smooth_hu = dens[:, 0] * 100.0
    texture = dens[:, 2] * 100.0
    sets: dict[str, np.ndarray] = {"density": dens}
    timings["density_features"] = time.perf_counter() - t
    if features in ("radiomics", "both"):
        t = time.perf_counter()
        from .features import radiomic_features

        sets["radiomics"] = radiomic_features(hu, lung, volume.spacing, device=device,
                                              progress=scaled(progress, 0.3, 0.55))
        timings["radiomic_features"] = time.perf_counter() - t
    if features in ("diffusion", "both"):
        t = time.perf_counter()
        from .diffusion import diffusion_features

        per_t = diffusion_features(hu, lung, checkpoint=checkpoint, timesteps=timesteps,
                                   device=device, seed=seed,
                                   progress=scaled(progress, 0.3, 0.7))
        for tt, f in zip(timesteps, per_t):
            sets[f"diffusion_t{tt}"] = f
        timings["diffusion_features"] = time.perf_counter() - t

    # -- clustering ---------------------------------------------------------------
    t = time.perf_counter()
    from ..device import get_device

    dev = str(get_device(device))
    report(progress, 720, 1000, "clustering")
    # density columns stay in HU/100 (absolute density drives the clusters);
    # learned and radiomic columns are standardised and down-weighted so that
    # their many columns count about half as much as the density block in total.
    blocks = [dens]
    for name, f in sets.items():
        if name == "density":
            continue
        blocks.append(robust_standardize(f) * np.float32(0.5 * np.sqrt(dens.shape[1] / f.shape[1])))
    x = np.concatenate(blocks, axis=1) if len(blocks) > 1 else dens
    gmm = fit_gmm(x, k, covariance_type=covariance_type, n_init=n_init, seed=seed, device=dev)
    post = gmm.predict_proba(x, device=dev)
    clusters = {"final": post.argmax(1).astype(np.int16)}
    if len(sets) > 1:  # each feature set alone, for previews
        for name, f in sets.items():
            g = fit_gmm(f, k, covariance_type="diag", n_init=1, seed=seed, device=dev,
                        subsample=50_000)
            clusters[name] = g.predict(f, device=dev).astype(np.int16)
    del x
    timings["clustering"] = time.perf_counter() - t

    # -- labels -------------------------------------------------------------------
    t = time.perf_counter()
    calibration = calibrate_hu(hu, lung, metadata=volume.source.metadata) if hu_preservation else None
    mapping = assign_labels(hu[lung], post, texture=texture, calibration=calibration, rules=rules)
    timings["assignment"] = time.perf_counter() - t
    report(progress, 800, 1000, "labels")

    params = {"features": features, "feature_sets": list(sets), "k": int(k),
              "covariance_type": covariance_type, "timesteps": [int(v) for v in timesteps]
              if features in ("diffusion", "both") else [], "refine": bool(refine),
              "refine_options": dict(refine_options or {}), "hu_preservation": hu_preservation,
              "seed": int(seed), "checkpoint": None if checkpoint is None else str(checkpoint),
              "device": str(dev)}
    result = SegmentationResult(labels=np.zeros(hu.shape, np.uint8), lung=lung_u8,
                                posteriors=post.astype(np.float16), clusters=clusters,
                                mapping=mapping, smooth_hu=smooth_hu.astype(np.float32), hu=hu,
                                context_hu=(dens[:, 3] * 100.0).astype(np.float32),
                                spacing=tuple(volume.spacing), gmm=gmm, timings=timings,
                                params=params)
    t = time.perf_counter()
    result.labels = apply_mapping(result, mapping, progress=scaled(progress, 0.8, 1.0))
    timings["refine" if refine else "argmax"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    report(progress, 1000, 1000, "done")
    return result
