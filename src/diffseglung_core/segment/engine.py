"""Segment a CT volume: features -> GMM -> HU-guided labels -> Sobel-Diffusion Fusion.

:func:`segment_volume` is the one entry point of the command line and the
napari plugin; its settings are a :class:`~.options.SegmentOptions`. Only lung
voxels are processed; every per-voxel array in the result has one row per
lung voxel in ``np.nonzero(lung)`` order. The result keeps the cluster
posteriors, so :func:`apply_mapping` relabels a scan after a user edits the
:class:`~.assign.LabelMapping` without computing any feature again.

Feature sets
------------
Local density statistics are always clustered. Other voxel features join
them from :data:`FEATURE_SETS`, a registry of :class:`FeatureSet`; the
``features`` option names a combination of them (:data:`FEATURE_CHOICES`).
Adding a feature set is one :func:`register_feature_set` call here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional

import numpy as np

from .. import gravity
from ..calibration import calibrate_hu
from ..device import to_float16
from ..errors import NoLungFoundError, require_same_grid
from ..progress import ProgressCallback, report, scaled
from ..volume import CTVolume
from .assign import LabelMapping, assign_labels, label_probabilities
from .evidence import TissueEvidence, tissue_evidence
from .features import density_features, robust_standardize
from .gmm import GaussianMixture, fit_gmm
from .options import DEFAULT_TIMESTEPS, SegmentOptions
from .patterns import fibrosis_cells, fibrosis_regions, fibrotic_ground_glass, reticular_bands
from .refine import argmax_labels, refine_labels

__all__ = ["SegmentationResult", "SegmentOptions", "segment_volume", "apply_mapping", "label_map",
           "region_patterns",
           "DEFAULT_TIMESTEPS", "FeatureSet", "FEATURE_SETS", "FEATURE_CHOICES",
           "register_feature_set", "feature_choices", "resolve_features"]


# -- feature sets -------------------------------------------------------------------------

#: ``extract(hu, lung, spacing, options, progress) -> {block name: (N, C) float32}``
FeatureExtractor = Callable[..., "dict[str, np.ndarray]"]


@dataclass(frozen=True)
class FeatureSet:
    """Voxel features clustered beside the density block.

    Attributes
    ----------
    name : str
        Registry key, e.g. ``"radiomics"``.
    extract : callable
        ``extract(hu, lung, spacing, options, progress)`` with ``hu`` (Z, Y, X)
        HU, ``lung`` (Z, Y, X) bool, ``spacing`` mm and a :class:`SegmentOptions`;
        returns named ``(N, C)`` blocks, rows in ``np.nonzero(lung)`` order.
    span : (float, float)
        Share of the progress bar its work takes.
    timing : str
        Key of its time in ``SegmentationResult.timings``.
    uses_timesteps : bool
        Its blocks depend on ``options.timesteps`` (recorded in the params).
    """

    name: str
    extract: FeatureExtractor
    span: tuple[float, float] = (0.3, 0.55)
    timing: str = ""
    uses_timesteps: bool = False


def _radiomic_blocks(hu, lung, spacing, options: SegmentOptions, progress) -> dict:
    from .features import radiomic_features

    return {"radiomics": radiomic_features(hu, lung, spacing, device=options.device,
                                           progress=progress)}


def _diffusion_blocks(hu, lung, spacing, options: SegmentOptions, progress) -> dict:
    from .diffusion import diffusion_features

    per_t = diffusion_features(hu, lung, checkpoint=options.checkpoint,
                               timesteps=options.timesteps, device=options.device,
                               seed=options.seed, progress=progress)
    return {f"diffusion_t{t}": f for t, f in zip(options.timesteps, per_t)}


#: Registered feature sets, by name.
FEATURE_SETS: dict[str, FeatureSet] = {}
#: Values of the ``features`` option: name -> feature sets clustered beside density.
FEATURE_CHOICES: dict[str, tuple[str, ...]] = {"density": ()}


def register_feature_set(feature_set: FeatureSet, *, choice: bool = True) -> None:
    """Add a feature set to the engine.

    Parameters
    ----------
    feature_set : FeatureSet
        The set, registered under its name.
    choice : bool
        Offer its name as a value of ``features`` (density + this set).
    """
    FEATURE_SETS[feature_set.name] = feature_set
    if choice:
        FEATURE_CHOICES[feature_set.name] = (feature_set.name,)


register_feature_set(FeatureSet("radiomics", _radiomic_blocks, span=(0.3, 0.55),
                                timing="radiomic_features"))
register_feature_set(FeatureSet("diffusion", _diffusion_blocks, span=(0.3, 0.7),
                                timing="diffusion_features", uses_timesteps=True))
FEATURE_CHOICES["both"] = ("radiomics", "diffusion")


def feature_choices() -> tuple[str, ...]:
    """Values of the ``features`` option: ``"auto"`` and every key of :data:`FEATURE_CHOICES`."""
    return ("auto", *FEATURE_CHOICES)


def resolve_features(features: str, checkpoint: Optional[str]) -> str:
    """The feature choice ``"auto"`` stands for.

    ``"both"`` (density, radiomics and diffusion) with a model file of one's
    own, else ``"radiomics"``: without a checkpoint, and with the shipped one
    (``"default"``), with which lesions are found less well than with the
    weight-free features on the phantoms and the test bed of docs/results.md.

    Raises
    ------
    ValueError
        ``features`` is not one of :func:`feature_choices`.
    """
    if features not in feature_choices():
        raise ValueError(f"features must be one of {feature_choices()}, got {features!r}")
    if features == "auto":
        return "radiomics" if checkpoint in (None, "default") else "both"
    return features


# -- result -------------------------------------------------------------------------------


@dataclass
class SegmentationResult:
    """What :func:`segment_volume` found.

    Attributes
    ----------
    labels : (Z, Y, X) uint8 ndarray
        0 outside lung, 1..5 tissues (:class:`~diffseglung_core.labels.Tissue`).
    lung : (Z, Y, X) uint8 ndarray
        The lung mask used (nonzero inside).
    posteriors : (N, K) float16 ndarray
        Cluster posteriors of the N lung voxels.
    clusters : dict
        Name -> (N,) int16 most probable cluster of each lung voxel, for the
        final clustering (``"final"``) and, with ``cluster_previews``, for each
        feature set / timestep alone.
    mapping : LabelMapping
        The cluster -> label mapping (:class:`~.assign.LabelMapping`).
    smooth_hu : (N,) float32 ndarray
        Smoothed HU of the lung voxels (voxel emphysema gate).
    hu : (Z, Y, X) ndarray
        HU the segmentation was computed on (a reference, not a copy).
    spacing : tuple of float
        mm ``(z, y, x)``.
    context_hu : (N,) float32 ndarray, optional
        Large-scale masked mean HU of the lung voxels (vessel gate without evidence).
    evidence : TissueEvidence, optional
        Structure evidence of the lung voxels (:mod:`.evidence`); it decides over
        cluster names in :func:`~.assign.label_probabilities`.
    lung_segmentation : LungSegmentation, optional
        What the lung mask found beside the lungs (effusion, gas, airways, notes),
        when the engine computed the mask.
    gmm : GaussianMixture, optional
        The fitted mixture (:class:`~.gmm.GaussianMixture`).
    timings : dict
        Stage -> seconds.
    params : dict
        The options used (JSON-ready; written into reports).
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
    evidence: Optional[TissueEvidence] = None
    lung_segmentation: Optional[Any] = None
    gmm: Optional[GaussianMixture] = None
    timings: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)

    @property
    def emphysema_as_regions(self) -> bool:
        """Whether the structure evidence decided emphysema as regions (the refinement keeps them)."""
        return self.evidence is not None

    def cluster_map(self, name: str = "final") -> np.ndarray:
        """(Z, Y, X) int16 cluster ids + 1 (0 outside the lung), for display."""
        out = np.zeros(self.lung.shape, np.int16)
        out[self.lung > 0] = self.clusters[name].astype(np.int16) + 1
        return out


def apply_mapping(result: SegmentationResult, mapping: LabelMapping, *,
                  refine: Optional[bool] = None,
                  progress: Optional[ProgressCallback] = None) -> np.ndarray:
    """Labels of ``result`` under another mapping, without recomputing features.

    Parameters
    ----------
    result : SegmentationResult
    mapping : LabelMapping
        Cluster -> label mapping to apply.
    refine : bool, optional
        Re-run Sobel-Diffusion Fusion (seconds on a full scan) with the
        result's refinement options; False: plain argmax (instant). Default:
        as in the original run.
    progress : callable, optional
        ``progress(done, total, stage)``.

    Returns
    -------
    (Z, Y, X) uint8 ndarray
    """
    probs = label_probabilities(result.posteriors, mapping, smooth_hu=result.smooth_hu,
                                context_hu=result.context_hu,
                                evidence=getattr(result, "evidence", None))
    refine = result.params.get("refine", True) if refine is None else refine
    return label_map(result, probs, mapping, refine=refine,
                     refine_options=result.params.get("refine_options", {}), progress=progress)


def label_map(result: SegmentationResult, probs: np.ndarray, mapping: LabelMapping, *,
              refine: bool, refine_options: Optional[dict] = None,
              progress: Optional[ProgressCallback] = None) -> np.ndarray:
    """Label map of ``result`` from label probabilities of its lung voxels.

    Sobel-Diffusion Fusion (or the plain argmax), then, with structure evidence,
    the patterns of regions (:func:`region_patterns`; clusters a user named keep
    their label).

    Parameters
    ----------
    result : SegmentationResult
    probs : (N, 6) float
        Label probabilities, rows in ``np.nonzero(result.lung)`` order.
    mapping : LabelMapping
        The mapping behind ``probs`` (its rules and edited clusters).
    refine : bool
    refine_options : dict, optional
        Keyword arguments of :func:`~.refine.refine_labels`.
    progress : callable, optional

    Returns
    -------
    (Z, Y, X) uint8 ndarray
    """
    if refine:
        labels = refine_labels(probs, result.lung, result.hu, result.spacing,
                               **(refine_options or {}),
                               keep_emphysema=result.emphysema_as_regions, progress=progress)
    else:
        labels = argmax_labels(probs, result.lung)
    return region_patterns(result, labels, mapping)


def region_patterns(result: SegmentationResult, labels: np.ndarray, mapping: LabelMapping) -> np.ndarray:
    """``labels`` after the patterns of regions, with structure evidence only.

    Ground glass inside a fibrotic region is fibrosis
    (:func:`~.patterns.fibrotic_ground_glass`), and so is the dense lung of a
    dependent band that is largely fibrosis (:func:`~.patterns.reticular_bands`);
    then fibrosis smaller than a secondary pulmonary lobule takes the label
    around it (:func:`~.patterns.fibrosis_regions`), and the healthy-labelled
    cells of the remaining nets are fibrosis (:func:`~.patterns.fibrosis_cells`).
    Clusters a user named keep their label.

    Parameters
    ----------
    result : SegmentationResult
    labels : (Z, Y, X) uint8 ndarray
        Labels of ``result``'s lung (refined or not).
    mapping : LabelMapping
        The mapping behind ``labels`` (its rules and edited clusters).

    Returns
    -------
    (Z, Y, X) uint8 ndarray (``labels`` itself when nothing changes)
    """
    if getattr(result, "evidence", None) is None:
        return labels
    keep = None
    if mapping.edited:
        keep = np.zeros(labels.shape, bool)
        keep[np.asarray(result.lung) > 0] = np.isin(result.posteriors.argmax(1), mapping.edited)
    labels = fibrotic_ground_glass(labels, result.spacing, scale_mm=mapping.rules.fibrotic_mm,
                                   min_share=mapping.rules.fibrotic_share, keep=keep)
    ev = result.evidence
    if ev.dependent is not None:
        lung = np.asarray(result.lung) > 0
        band = np.zeros(labels.shape, bool)
        band[lung] = ev.dependent
        dense = np.zeros(labels.shape, bool)
        dense[lung] = ev.parenchyma_hu - ev.healthy_hu >= mapping.rules.ggo_margin_hu
        labels = reticular_bands(labels, band, dense, min_share=mapping.rules.fibrotic_share, keep=keep)
    # the regions as the patterns above completed them, with the cells of their nets
    labels = fibrosis_regions(labels, result.spacing, keep=keep)
    return fibrosis_cells(labels, result.spacing, keep=keep)


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
    options: Optional[SegmentOptions] = None,
    *,
    lung_mask: Optional[np.ndarray] = None,
    progress: Optional[ProgressCallback] = None,
    **changes: Any,
) -> SegmentationResult:
    """Unsupervised segmentation of the lung tissues of a CT volume.

    Parameters
    ----------
    volume : CTVolume
        HU and spacing (mm).
    options : SegmentOptions, optional
        The engine's settings (feature set, K, device, refinement, ...); the
        defaults of :class:`~.options.SegmentOptions` when None.
    lung_mask : (Z, Y, X) ndarray or LungSegmentation, optional
        Lung mask (nonzero inside); computed when None. A
        :class:`~diffseglung_core.lung.LungSegmentation` (of
        :func:`~diffseglung_core.lung.segment_scan_lungs`) brings its airways
        too, which the HU calibration reads as a second air source: the same
        result as computing it here.
    progress : callable, optional
        ``progress(done, total, stage)``; raise ``Cancelled`` in it to stop.
    **changes
        Fields of :class:`~.options.SegmentOptions` that replace those of
        ``options``, e.g. ``features="density", k=5``.

    Returns
    -------
    SegmentationResult

    References
    ----------
    .. [1] Khiati, Brillet, Fetita. DiffSegLung. arXiv:2605.11758.
    """
    options = replace(options or SegmentOptions(), **changes)
    features = resolve_features(options.features, options.checkpoint)
    k, seed, covariance_type = options.k, options.seed, options.covariance_type
    rules, hu_preservation, refine = options.rules, options.hu_preservation, options.refine
    timings: dict = {}
    t0 = time.perf_counter()
    hu = volume.hu
    from ..lung import LungSegmentation, segment_scan_lungs

    lung_seg = lung_mask if isinstance(lung_mask, LungSegmentation) else None
    if lung_mask is None:
        lung_seg = segment_scan_lungs(volume, progress=scaled(progress, 0.0, 0.15))
        timings["lung_mask"] = time.perf_counter() - t0
    lung_u8 = lung_seg.labels if lung_seg is not None else np.asarray(lung_mask).astype(np.uint8)
    require_same_grid(lung_u8.shape, hu.shape, "lung mask", "scan")
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
    used = [FEATURE_SETS[name] for name in FEATURE_CHOICES[features]]
    for feature_set in used:
        t = time.perf_counter()
        sets.update(feature_set.extract(hu, lung, volume.spacing, options,
                                        scaled(progress, *feature_set.span)))
        timings[feature_set.timing or feature_set.name] = time.perf_counter() - t

    # -- clustering ---------------------------------------------------------------
    t = time.perf_counter()
    from ..device import get_device

    dev = str(get_device(options.device))
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
    gmm = fit_gmm(x, k, covariance_type=covariance_type, n_init=options.n_init, seed=seed,
                  device=dev)
    post = gmm.predict_proba(x, device=dev)
    clusters = {"final": post.argmax(1).astype(np.int16)}
    if options.cluster_previews and len(sets) > 1:  # each feature set alone
        for name, f in sets.items():
            g = fit_gmm(f, k, covariance_type="diag", n_init=1, seed=seed, device=dev,
                        subsample=50_000)
            clusters[name] = g.predict(f, device=dev).astype(np.int16)
    # the columns beyond density (radiomic or diffusion features, and their standardised
    # copies: several times the density block) are not needed past here: free them
    feature_sets = list(sets)
    del x, blocks, sets
    timings["clustering"] = time.perf_counter() - t

    # -- labels -------------------------------------------------------------------
    t = time.perf_counter()
    airway = lung_seg.airway if lung_seg is not None else None
    calibration = calibrate_hu(hu, lung, airway=airway, metadata=volume.source.metadata) \
        if hu_preservation else None
    mapping = assign_labels(hu[lung], post, texture=texture, calibration=calibration, rules=rules)
    timings["assignment"] = time.perf_counter() - t
    evidence = None
    if hu_preservation and options.evidence:
        t = time.perf_counter()
        evidence = tissue_evidence(hu, lung, volume.spacing, airway=airway,
                                   hu_offset=mapping.hu_offset,
                                   dense_margin_hu=rules.ggo_margin_hu, device=dev,
                                   dependent_side=gravity.dependent_side(
                                       volume.source.metadata.get("patient_position", "")),
                                   progress=scaled(progress, 0.76, 0.8))
        timings["structure_evidence"] = time.perf_counter() - t
    report(progress, 800, 1000, "labels")

    checkpoint = options.checkpoint
    params = {"features": features, "feature_sets": feature_sets, "k": int(k),
              "covariance_type": covariance_type, "timesteps": [int(v) for v in options.timesteps]
              if any(fs.uses_timesteps for fs in used) else [], "refine": bool(refine),
              "refine_options": options.refine_kwargs(), "hu_preservation": hu_preservation,
              "evidence": evidence is not None,
              "seed": int(seed), "checkpoint": None if checkpoint is None else str(checkpoint),
              "device": str(dev)}
    result = SegmentationResult(labels=np.zeros(hu.shape, np.uint8), lung=lung_u8,
                                posteriors=to_float16(post), clusters=clusters,
                                mapping=mapping, smooth_hu=smooth_hu.astype(np.float32), hu=hu,
                                context_hu=(dens[:, 3] * 100.0).astype(np.float32),
                                evidence=evidence, lung_segmentation=lung_seg,
                                spacing=tuple(volume.spacing), gmm=gmm, timings=timings,
                                params=params)
    t = time.perf_counter()
    result.labels = apply_mapping(result, mapping, progress=scaled(progress, 0.8, 1.0))
    timings["refine" if refine else "argmax"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    report(progress, 1000, 1000, "done")
    return result
