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

from .volume import CTVolume, ScanSource, canonical_affine

__all__ = [
    "VOLUME_KEY",
    "layer_geometry",
    "reference_volume",
    "describe_volume",
    "HandEdits",
    "correction_mask",
    "refine_slice",
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


def correction_mask(shape: Sequence[int], slices: Sequence[int] = (), *,
                    edited: Optional[np.ndarray] = None,
                    within: Optional[np.ndarray] = None) -> np.ndarray:
    """Voxels a user vouched for: the axial slices marked as checked, plus painted voxels.

    Parameters
    ----------
    shape : (Z, Y, X) of the label map.
    slices : indices of the axial slices the user confirmed.
    edited : (Z, Y, X) bool mask of the voxels painted by hand (kept whole).
    within : (Z, Y, X) mask (nonzero inside) limiting the confirmed slices,
        e.g. the lung; None: the whole slice.

    Returns
    -------
    (Z, Y, X) bool ndarray.
    """
    shape = tuple(int(s) for s in shape)
    out = np.zeros(shape, dtype=bool)
    for z in slices:
        z = int(z)
        if not 0 <= z < shape[0]:
            raise IndexError(f"slice {z} outside 0..{shape[0] - 1}")
        out[z] = True if within is None else np.asarray(within[z]) > 0
    if edited is not None:
        if np.shape(edited) != shape:
            raise ValueError(f"edited mask {np.shape(edited)} != labels {shape}")
        out |= np.asarray(edited, dtype=bool)
    return out


def refine_slice(label_prob_vox: np.ndarray, lung: np.ndarray, hu: np.ndarray,
                 spacing: Sequence[float], z: int, **options) -> np.ndarray:
    """Sobel-Diffusion Fusion of one axial slice, for a quick preview.

    Runs :func:`~diffseglung_core.segment.refine.refine_labels` on the slab of
    slices within ``iterations + 2`` of ``z`` only (the diffusion cannot reach
    further), so a preview costs a few slices, not the scan. The small-component
    clean-up sees only the slab, so a preview may differ from the full
    refinement where a component crosses the slab's ends.

    Parameters
    ----------
    label_prob_vox : (N, 6) label posteriors of the lung voxels, ``np.nonzero(lung)`` order.
    lung : (Z, Y, X) lung mask (nonzero inside).
    hu : (Z, Y, X) HU.
    spacing : mm ``(z, y, x)``.
    z : the slice.
    **options : keyword arguments of ``refine_labels`` (``kappa``, ``iterations``, ...).

    Returns
    -------
    (Y, X) uint8 labels of slice ``z``.
    """
    from .segment.refine import refine_labels

    lung = np.asarray(lung) > 0
    if not 0 <= z < lung.shape[0]:
        raise IndexError(f"slice {z} outside 0..{lung.shape[0] - 1}")
    halo = int(options.get("iterations", 4)) + 2
    a, b = max(0, z - halo), min(lung.shape[0], z + halo + 1)
    if not lung[z].any():
        return np.zeros(lung.shape[1:], np.uint8)
    per_z = lung.reshape(lung.shape[0], -1).sum(1)
    start = int(per_z[:a].sum())
    rows = np.asarray(label_prob_vox)[start:start + int(per_z[a:b].sum())]
    slab = refine_labels(rows, lung[a:b], np.asarray(hu)[a:b], spacing, **options)
    return slab[z - a]
