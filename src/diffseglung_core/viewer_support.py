"""Small pure helpers behind the napari plugin: layer geometry, hand edits, tables.

Arrays and volumes in, arrays, numbers and text out; no Qt and no napari, so
every piece is tested without a viewer. The plugin (``napari_diffseglung``)
only wires these to widgets.

Layer geometry
--------------
napari shows a ``(z, y, x)`` array in a world whose axes are the array axes
scaled by ``scale`` and shifted by ``translate``. For a :class:`CTVolume` in
the canonical layout those world axes are (S, P, L) in mm: superior,
posterior and patient left, so ``scale`` is the spacing and ``translate`` the
(S, P, L) position of voxel ``(0, 0, 0)`` read off the affine.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

from .labels import TISSUE_NAMES
from .volume import CTVolume, ScanSource, canonical_affine

__all__ = [
    "VOLUME_KEY",
    "layer_geometry",
    "reference_volume",
    "describe_volume",
    "HandEdits",
    "cluster_table",
    "class_volumes",
]

#: Key of the layer metadata entry holding the :class:`CTVolume` a layer belongs to.
VOLUME_KEY = "diffseglung_volume"

#: RAS world -> (S, P, L) world: the napari axes of a canonical (z, y, x) array.
_RAS_TO_SPL = np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [-1.0, 0.0, 0.0]])


def layer_geometry(volume: CTVolume) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``scale`` and ``translate`` (mm) of a napari layer showing ``volume.hu``.

    Returns
    -------
    scale : (3,) tuple of float
        The spacing in mm along ``(z, y, x)``.
    translate : (3,) tuple of float
        World position (S, P, L, mm) of voxel ``(0, 0, 0)``. For an oblique
        scan the rotation is dropped: the grid is shown axis-aligned.
    """
    origin = _RAS_TO_SPL @ np.asarray(volume.affine, dtype=float)[:3, 3]
    return tuple(float(s) for s in volume.spacing), tuple(float(t) + 0.0 for t in origin)


def reference_volume(shape: Sequence[int], metadata: Optional[Mapping] = None, *,
                     scale: Optional[Sequence[float]] = None,
                     translate: Optional[Sequence[float]] = None) -> CTVolume:
    """The volume a layer of ``shape`` belongs to, to write it on its source grid.

    The :class:`CTVolume` stored under :data:`VOLUME_KEY` in ``metadata`` wins
    when its shape matches. Otherwise an axis-aligned canonical volume is made
    from the layer's ``scale`` (spacing, mm) and ``translate`` (S, P, L, mm).
    The returned volume's ``hu`` is a zero-cost broadcast view, not real HU:
    use it for its geometry only.
    """
    shape = tuple(int(s) for s in shape)
    stored = (metadata or {}).get(VOLUME_KEY)
    if isinstance(stored, CTVolume) and stored.shape == shape:
        return stored
    spacing = tuple(scale) if scale is not None else (1.0, 1.0, 1.0)
    spl = np.asarray(translate if translate is not None else (0.0, 0.0, 0.0), dtype=float)
    origin = _RAS_TO_SPL.T @ spl  # the matrix is orthogonal: its transpose inverts it
    return CTVolume(hu=np.broadcast_to(np.float32(0), shape), spacing=spacing,
                    affine=canonical_affine(spacing, origin), source=ScanSource(format="memory"))


def describe_volume(volume: CTVolume) -> str:
    """A few lines for users: size, spacing, orientation, HU range, description."""
    z, y, x = volume.shape
    src = volume.source
    lo, hi = float(np.min(volume.hu)), float(np.max(volume.hu))
    lines = [
        f"size: {z} x {y} x {x} voxels (z, y, x)",
        "spacing: " + " x ".join(f"{s:.3g}" for s in volume.spacing) + " mm",
        f"extent: {z * volume.spacing[0]:.0f} x {y * volume.spacing[1]:.0f} x "
        f"{x * volume.spacing[2]:.0f} mm",
        f"stored orientation: {src.orientation or '?'} ({src.format})",
        f"HU range: {lo:.0f} .. {hi:.0f}",
    ]
    if src.description:
        lines.append(f"series: {src.description}")
    return "\n".join(lines)


class HandEdits:
    """Remember which voxels a user painted, so that re-mapping never loses them.

    The automatic labels are what the engine (or a re-mapping) produced. Any
    voxel of the shown labels that differs from the automatic labels was edited
    by hand; edits accumulate over re-mappings (a voxel painted to the label a
    later mapping would give it stays an edit).

    Parameters
    ----------
    auto : (Z, Y, X) integer ndarray
        The automatic labels first shown.
    """

    def __init__(self, auto: np.ndarray):
        self.auto = np.array(auto, copy=True)
        self.mask = np.zeros(self.auto.shape, dtype=bool)

    def update(self, shown: np.ndarray) -> None:
        """Record the voxels of ``shown`` that differ from the automatic labels."""
        if shown.shape != self.auto.shape:
            raise ValueError(f"shown labels {shown.shape} != automatic labels {self.auto.shape}")
        self.mask |= np.asarray(shown) != self.auto

    def remap(self, shown: np.ndarray, new_auto: np.ndarray) -> np.ndarray:
        """New labels: ``new_auto`` everywhere except the hand-edited voxels of ``shown``.

        Returns a new array of ``shown``'s dtype; ``new_auto`` becomes the
        automatic reference.
        """
        self.update(shown)
        out = np.array(new_auto, dtype=np.asarray(shown).dtype, copy=True)
        out[self.mask] = np.asarray(shown)[self.mask]
        self.auto = np.array(new_auto, copy=True)
        return out

    @property
    def n_edited(self) -> int:
        """Number of voxels edited by hand so far."""
        return int(self.mask.sum())


def cluster_table(hu: np.ndarray, clusters: np.ndarray, mapping: Mapping[int, int], *,
                  percentiles: Sequence[float] = (5, 50, 95), background: int = -1) -> list[dict]:
    """One row per cluster: id, voxel count, mean and percentile HU, assigned label.

    Parameters
    ----------
    hu : (Z, Y, X) float ndarray of HU.
    clusters : (Z, Y, X) integer ndarray
        Cluster ids; voxels equal to ``background`` (outside the lung) are skipped.
    mapping : dict
        Cluster id -> label (the project's label convention).
    percentiles : the HU percentiles reported, as ``p5``, ``p50``, ...

    Returns
    -------
    list of dict
        Keys ``cluster``, ``voxels``, ``mean_hu``, ``p<q>_hu`` for each
        percentile, ``label`` and ``label_name``; sorted by cluster id. Clusters
        of the mapping without voxels have zero voxels and NaN HU.
    """
    hu = np.asarray(hu)
    clusters = np.asarray(clusters)
    if hu.shape != clusters.shape:
        raise ValueError(f"hu {hu.shape} and clusters {clusters.shape} differ in shape")
    inside = clusters != background
    ids = set(np.unique(clusters[inside]).tolist()) | {int(c) for c in mapping}
    values = hu[inside]
    cids = clusters[inside]
    order = np.argsort(cids, kind="stable")
    cids, values = cids[order], values[order]
    rows = []
    for cid in sorted(ids):
        lo, hi = np.searchsorted(cids, [cid, cid + 1])
        v = values[lo:hi]
        label = int(mapping.get(cid, 0))
        row = {"cluster": int(cid), "voxels": int(v.size),
               "mean_hu": float(v.mean()) if v.size else float("nan")}
        qs = np.percentile(v, percentiles) if v.size else [float("nan")] * len(percentiles)
        for p, q in zip(percentiles, qs):
            row[f"p{p:g}_hu"] = float(q)
        row["label"] = label
        row["label_name"] = TISSUE_NAMES.get(label, str(label))
        rows.append(row)
    return rows


def class_volumes(labels: np.ndarray, spacing: Sequence[float],
                  classes: Optional[Sequence[int]] = None) -> list[dict]:
    """Volume of each class of a label map, in mL and in percent of the lung.

    Parameters
    ----------
    labels : (Z, Y, X) integer ndarray in the project's label convention.
    spacing : (z, y, x) voxel size in mm.
    classes : labels reported (default: every class but 0, outside the lung).

    Returns
    -------
    list of dict
        Keys ``label``, ``name``, ``voxels``, ``ml`` and ``percent`` (of all
        non-zero voxels; 0 when the lung is empty).
    """
    labels = np.asarray(labels)
    classes = [c for c in TISSUE_NAMES if c != 0] if classes is None else list(classes)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    counts = np.bincount(labels.ravel().astype(np.int64, copy=False), minlength=max(classes) + 1) \
        if labels.size and labels.min() >= 0 else None
    if counts is None:
        counts = np.array([np.count_nonzero(labels == c) for c in range(max(classes) + 1)])
    lung = int(np.count_nonzero(labels))
    return [{"label": int(c), "name": TISSUE_NAMES.get(c, str(c)), "voxels": int(counts[c]),
             "ml": counts[c] * voxel_ml, "percent": 100.0 * counts[c] / lung if lung else 0.0}
            for c in classes]
