"""False-positive burden of a label map on a scan without diffuse disease.

On a scan where no fibrosis, ground glass or emphysema is known (the lung
cancer patient A0001 of the shared data), everything labelled so is a false
positive. The two structures a density-driven method confuses most are
measured without any learned model:

* **thin dense structures**: voxels above ``dense_hu`` (-500 HU) inside the
  lung whose dense structure is thin, i.e. not within ``thin_mm`` of a voxel
  lying deeper than ``thin_mm`` inside it (a morphological opening done with
  two distance transforms in mm). These are vessels, bronchial walls and
  fissures in a normal lung.
* **solid components**: voxels above ``solid_hu`` (-100 HU) inside the lung,
  opened the same way (thin structures removed), in 3D components of at least
  ``min_ml``. The largest is taken as *the mass*. Nothing depends on where
  the tumour is in a given scan.

:func:`false_positive_burden` reports the share of the lung labelled GGO,
fibrosis and emphysema, the share of the thin dense voxels labelled any
pathology, and the share of the mass labelled consolidation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..labels import PATHOLOGIES, Tissue

__all__ = ["DenseStructures", "dense_structures", "dilate_mm", "false_positive_burden", "thick_part"]


@dataclass
class DenseStructures:
    """Dense structures of the lung found by density and thickness alone.

    Attributes
    ----------
    thin : (Z, Y, X) bool
        Thin dense voxels (vessel-like): above ``dense_hu``, in the lung, not in
        the thick part of the dense mask and not in or on the rim (``thin_mm / 2``,
        at least one voxel) of a solid component.
    solid : (Z, Y, X) bool
        Union of the solid components of at least ``min_ml``.
    mass : (Z, Y, X) bool
        The largest solid component (all False when none reaches ``min_ml``).
    component_ml : list of float
        Volumes (mL) of the solid components, largest first.
    """

    thin: np.ndarray
    solid: np.ndarray
    mass: np.ndarray
    component_ml: list


def _bbox(mask: np.ndarray, pad: int = 2) -> tuple[slice, ...]:
    out = []
    for ax in range(mask.ndim):
        other = tuple(i for i in range(mask.ndim) if i != ax)
        nz = np.flatnonzero(mask.any(axis=other))
        out.append(slice(max(0, nz[0] - pad), min(mask.shape[ax], nz[-1] + pad + 1)))
    return tuple(out)


def thick_part(mask: np.ndarray, spacing: Sequence[float], radius_mm: float) -> np.ndarray:
    """Morphological opening of a mask by a ball of ``radius_mm``, with distance transforms.

    A voxel is kept when it lies within ``radius_mm`` of a voxel whose distance
    to the outside of the mask exceeds ``radius_mm`` (distances between voxel
    centres, in mm, so anisotropic voxels are handled).

    Parameters
    ----------
    mask : (Z, Y, X) bool
    spacing : (3,) float, mm
    radius_mm : float

    Returns
    -------
    (Z, Y, X) bool
        The parts of ``mask`` at least about ``2 * radius_mm`` thick.
    """
    mask = np.asarray(mask, bool)
    out = np.zeros_like(mask)
    if not mask.any():
        return out
    box = _bbox(mask, pad=int(np.ceil(radius_mm / min(spacing))) + 2)
    m = mask[box]
    depth = ndi.distance_transform_edt(m, sampling=spacing)
    core = depth > radius_mm
    if not core.any():
        return out
    near = ndi.distance_transform_edt(~core, sampling=spacing) <= radius_mm
    out[box] = near & m
    return out


def dilate_mm(mask: np.ndarray, spacing: Sequence[float], radius_mm: float) -> np.ndarray:
    """Voxels within ``radius_mm`` (mm, between voxel centres) of ``mask``; (Z, Y, X) bool."""
    mask = np.asarray(mask, bool)
    out = np.zeros_like(mask)
    if not mask.any():
        return out
    box = _bbox(mask, pad=int(np.ceil(radius_mm / min(spacing))) + 1)
    out[box] = ndi.distance_transform_edt(~mask[box], sampling=spacing) <= radius_mm
    return out


def dense_structures(hu: np.ndarray, lung: np.ndarray, spacing: Sequence[float], *,
                     dense_hu: float = -500.0, thin_mm: float = 3.0, solid_hu: float = -100.0,
                     min_ml: float = 2.0) -> DenseStructures:
    """Thin dense (vessel-like) voxels and solid components (masses) of the lung.

    Parameters
    ----------
    hu : (Z, Y, X) float, HU
    lung : (Z, Y, X) lung mask (nonzero inside)
    spacing : (3,) float, mm
    dense_hu : HU above which a lung voxel is dense.
    thin_mm : radius (mm) below which a dense structure is thin.
    solid_hu : HU above which a lung voxel is solid (mass candidate).
    min_ml : smallest solid component (mL) kept.

    Returns
    -------
    DenseStructures
    """
    hu = np.asarray(hu)
    inside = np.asarray(lung) > 0
    voxel_ml = float(np.prod(spacing)) / 1000.0
    solid = (hu > solid_hu) & inside
    solid_thick = thick_part(solid, spacing, thin_mm)
    lab, n = ndi.label(solid_thick, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:] * voxel_ml if n else np.zeros(0)
    keep = np.flatnonzero(sizes >= min_ml) + 1
    order = keep[np.argsort(-sizes[keep - 1])]
    solid_big = np.isin(lab, order) if len(order) else np.zeros_like(inside)
    mass = lab == order[0] if len(order) else np.zeros_like(inside)
    dense = (hu > dense_hu) & inside
    rim = dilate_mm(solid_big, spacing, max(0.5 * thin_mm, min(spacing) * 1.01))
    thin = dense & ~thick_part(dense, spacing, thin_mm) & ~rim
    return DenseStructures(thin=thin, solid=solid_big, mass=mass,
                           component_ml=[float(sizes[i - 1]) for i in order])


def false_positive_burden(labels: np.ndarray, lung: np.ndarray, hu: np.ndarray,
                          spacing: Sequence[float], *, structures: DenseStructures | None = None,
                          mass_margin_mm: float = 10.0, unknown: np.ndarray | None = None,
                          **kwargs) -> dict:
    """How much of a lung without diffuse disease a label map calls diseased.

    Parameters
    ----------
    labels : (Z, Y, X) integer label map (project convention, 0..5).
    lung : (Z, Y, X) lung mask (nonzero inside): the denominator.
    hu : (Z, Y, X) float, HU of the scan the labels belong to.
    spacing : (3,) float, mm.
    structures : precomputed :func:`dense_structures` of ``hu`` and ``lung``.
    mass_margin_mm : the "away from the mass" shares leave out the solid
        components grown by this margin (their rim may be real opacity).
    unknown : (Z, Y, X) bool, optional: native tissue of unknown class (such as
        the test bed's ``ScanContext.ignore``: a tumour, its hazy halo, lucent
        regions, with a margin); the "outside unknown tissue" shares leave it out.
    **kwargs : passed to :func:`dense_structures`.

    Returns
    -------
    dict
        ``lung_ml``; ``percent_lung`` (class name -> % of the lung voxels, for
        GGO, fibrosis, emphysema and consolidation); ``percent_lung_away_from_mass``
        (same, leaving out the solid components and their margin);
        ``thin_dense_voxels``; ``thin_dense_pathology_fraction`` (share of the
        thin dense voxels labelled 2..5), the same away from the mass
        (``thin_dense_pathology_fraction_away_from_mass``: the strands and
        spicules around a tumour are thin too) and ``thin_dense_fraction_by_class``;
        ``mass_ml``, ``mass_consolidation_fraction`` (share of the mass labelled
        consolidation; NaN without a mass), ``solid_components_ml`` and
        ``solid_consolidation_fraction`` (all solid components together). With
        ``unknown``: ``percent_lung_outside_unknown`` and
        ``thin_dense_pathology_fraction_outside_unknown``.
    """
    labels = np.asarray(labels)
    inside = np.asarray(lung) > 0
    if labels.shape != inside.shape or np.shape(hu) != inside.shape:
        raise ValueError(f"labels {labels.shape}, lung {inside.shape} and hu {np.shape(hu)} differ")
    st = structures if structures is not None else dense_structures(hu, inside, spacing, **kwargs)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    n_lung = int(inside.sum())
    def pct(region: np.ndarray) -> dict:
        n = int(region.sum())
        return {k: (100.0 * float(((labels == v) & region).sum()) / n if n else float("nan"))
                for k, v in PATHOLOGIES.items()}

    away = inside.copy()
    if st.solid.any():
        away &= ~dilate_mm(st.solid, spacing, mass_margin_mm)
    n_thin = int(st.thin.sum())
    lab_thin = labels[st.thin]
    pathology = list(PATHOLOGIES.values())
    frac_thin = _share(lab_thin, pathology)
    thin_away = st.thin & away
    frac_thin_away = _share(labels[thin_away], pathology)
    by_class = {k: (float((lab_thin == v).mean()) if n_thin else float("nan"))
                for k, v in PATHOLOGIES.items()}
    n_mass = int(st.mass.sum())
    n_solid = int(st.solid.sum())
    out = {
        "lung_ml": n_lung * voxel_ml,
        "percent_lung": pct(inside),
        "percent_lung_away_from_mass": pct(away),
        "thin_dense_voxels": n_thin,
        "thin_dense_pathology_fraction": frac_thin,
        "thin_dense_pathology_fraction_away_from_mass": frac_thin_away,
        "thin_dense_fraction_by_class": by_class,
        "mass_ml": n_mass * voxel_ml,
        "mass_consolidation_fraction": (float((labels[st.mass] == Tissue.CONSOLIDATION).mean())
                                        if n_mass else float("nan")),
        "solid_components_ml": list(st.component_ml),
        "solid_consolidation_fraction": (float((labels[st.solid] == Tissue.CONSOLIDATION).mean())
                                         if n_solid else float("nan")),
    }
    if unknown is not None:
        outside = inside & ~np.asarray(unknown, bool)
        out["percent_lung_outside_unknown"] = pct(outside)
        out["thin_dense_pathology_fraction_outside_unknown"] = _share(labels[st.thin & outside], pathology)
    return out


def _share(values: np.ndarray, of: list) -> float:
    """Share of ``values`` in ``of`` (NaN when empty)."""
    return float(np.isin(values, of).mean()) if values.size else float("nan")
