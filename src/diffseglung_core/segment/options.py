"""Settings of the segmentation engine, and the one place their defaults are written.

:class:`SegmentOptions` holds every setting of
:func:`~diffseglung_core.segment.engine.segment_volume`;
:class:`RefineOptions` those of Sobel-Diffusion Fusion
(:func:`~diffseglung_core.segment.refine.refine_labels`). The command line
builds its arguments and the napari widgets their forms from these fields, so
a default changed here changes everywhere. A field's ``metadata`` says what a
form needs: ``help`` (one line), ``choices`` (a tuple, or a function returning
one), ``range`` and ``step`` (numbers), ``auto`` (the minimum of the range
stands for None: the engine decides).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

from ..device import DEVICES
from .assign import AssignmentRules

__all__ = ["DEFAULT_TIMESTEPS", "RefineOptions", "SegmentOptions", "option_choices"]

#: Diffusion timesteps of the default feature (see docs/results.md): a nearly
#: clean input (fine density detail), a middle one (texture), a noisy one (context).
DEFAULT_TIMESTEPS: tuple[int, ...] = (50, 150, 300)


def _feature_choices() -> tuple[str, ...]:
    from .engine import feature_choices

    return feature_choices()


@dataclass(frozen=True)
class RefineOptions:
    """Parameters of Sobel-Diffusion Fusion (:func:`~.refine.refine_labels`).

    Attributes
    ----------
    kappa : float or None
        Edge threshold of the diffusion (HU/mm of the Sobel gradient); None
        follows the scan's noise (``kappa_noise`` x the median gradient).
    kappa_noise : float
        Multiple of the median lung gradient used when ``kappa`` is None.
    iterations : int
        Diffusion iterations.
    step : float
        Time step of the diffusion (at most 1/6 in 3D).
    smooth_mm : float
        Gaussian smoothing (mm) of the HU before the Sobel gradient.
    min_component_mm3 : float
        Connected components of one label smaller than this are merged away.
    """

    kappa: Optional[float] = field(default=None, metadata={
        "help": "edge threshold (HU/mm); auto: kappa noise x the median gradient",
        "range": (0.0, 1000.0), "step": 5.0, "auto": True})
    kappa_noise: float = field(default=3.0, metadata={
        "help": "edge threshold in multiples of the median gradient",
        "range": (0.1, 20.0), "step": 0.5})
    iterations: int = field(default=4, metadata={
        "help": "diffusion iterations", "range": (0, 50), "step": 1})
    step: float = field(default=1.0 / 6.0, metadata={
        "help": "diffusion time step", "range": (0.01, 1.0 / 6.0), "step": 0.01})
    smooth_mm: float = field(default=0.7, metadata={
        "help": "smoothing before the gradient (mm)", "range": (0.0, 5.0), "step": 0.1})
    min_component_mm3: float = field(default=20.0, metadata={
        "help": "smallest kept component (mm^3)", "range": (0.0, 10000.0), "step": 5.0})

    def to_dict(self) -> dict[str, Any]:
        """The options as keyword arguments of :func:`~.refine.refine_labels`."""
        return asdict(self)


@dataclass(frozen=True)
class SegmentOptions:
    """Every setting of :func:`~diffseglung_core.segment.engine.segment_volume`.

    Attributes
    ----------
    features : str
        ``"auto"`` (``"both"`` with a model file of one's own, else
        ``"radiomics"``: :func:`~.engine.resolve_features`),
        ``"density"`` (local HU statistics only, fastest), ``"radiomics"``
        (density + radiomic voxel maps), ``"diffusion"`` (density + diffusion
        bottleneck at ``timesteps``) or ``"both"``; see
        :func:`~diffseglung_core.segment.engine.feature_choices`.
    checkpoint : str or None
        Trained model for diffusion features: a path, ``"default"`` for the
        shipped one, or None (weight-free).
    timesteps : tuple of int
        Diffusion timesteps whose features are concatenated.
    k : int
        Number of GMM components (over-clustering: several clusters may share a label).
    covariance_type : str
        ``"diag"`` or ``"full"``.
    n_init : int
        GMM restarts; the best likelihood wins.
    device : str
        ``"auto" | "cpu" | "cuda" | "mps"`` (or ``"cuda:N"``).
    refine : bool
        Run Sobel-Diffusion Fusion (else argmax of the label posteriors).
    refine_options : RefineOptions or None
        Its parameters; None: the defaults of :class:`RefineOptions`.
    rules : AssignmentRules
        HU boundaries of the cluster -> label assignment.
    hu_preservation : bool
        False is an ablation: lung HU are standardised per scan first.
    evidence : bool
        The structure around each voxel (vessels, solid components, low-attenuation
        regions, walls; :mod:`.evidence`) decides over the names of the clusters.
        False is an ablation: cluster names with two density gates.
    seed : int
        Seed of the GMM and of the diffusion noise.
    cluster_previews : bool
        Also cluster each feature set alone (``SegmentationResult.clusters``, shown
        as hidden layers in napari, written by ``segment --save-clusters``); extra work
        that the labels do not use, off by default.
    """

    features: str = field(default="auto", metadata={
        "help": "feature set (auto: both with a model file of your own, else radiomics; the "
                "shipped model finds lesions less well, docs/results.md)",
        "choices": _feature_choices})
    checkpoint: Optional[str] = field(default=None, metadata={
        "help": "trained model for diffusion features ('default' for the shipped one)"})
    timesteps: tuple[int, ...] = field(default=DEFAULT_TIMESTEPS, metadata={
        "help": "diffusion timesteps (default " + " ".join(map(str, DEFAULT_TIMESTEPS)) + ")"})
    k: int = field(default=8, metadata={
        "help": "number of GMM clusters (default 8)", "range": (2, 20), "step": 1})
    covariance_type: str = field(default="diag", metadata={"choices": ("diag", "full")})
    n_init: int = 3
    device: str = field(default="auto", metadata={
        "help": "where to run torch work (default: auto)", "choices": DEVICES})
    refine: bool = field(default=True, metadata={"help": "Sobel-Diffusion Fusion"})
    refine_options: Optional[RefineOptions] = None
    rules: AssignmentRules = AssignmentRules()
    hu_preservation: bool = True
    evidence: bool = field(default=True, metadata={
        "help": "structure evidence (vessels, solid components, emphysema regions, walls) "
                "decides over cluster names"})
    seed: int = 0
    cluster_previews: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "timesteps", tuple(int(t) for t in self.timesteps))
        if isinstance(self.refine_options, dict):  # keyword arguments of refine_labels
            object.__setattr__(self, "refine_options", RefineOptions(**self.refine_options))

    def refine_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~.refine.refine_labels` (empty for the defaults)."""
        return {} if self.refine_options is None else self.refine_options.to_dict()


def option_choices(cls: type, name: str) -> Optional[tuple[str, ...]]:
    """The allowed values of field ``name`` of an options class, or None when free."""
    meta = next(f.metadata for f in fields(cls) if f.name == name)
    choices = meta.get("choices")
    return tuple(choices()) if callable(choices) else choices
