"""Hand edits and confirmed voxels: what a user changed or vouched for on a label map.

A label map shown to a user starts as the engine's automatic labels; voxels
painted by hand differ from them and must survive every later relabelling
(:class:`HandEdits`). Axial slices the user checked and voxels they painted are
the "confirmed" voxels a correction head learns from, and are never
overwritten by its prediction (:func:`confirmed_voxels`, :func:`merge_prediction`).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

__all__ = ["HandEdits", "correction_mask", "confirmed_voxels", "merge_prediction",
           "changed_voxels"]


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
    shape : (3,) sequence of int
        ``(Z, Y, X)`` of the label map.
    slices : sequence of int
        Indices of the axial slices the user confirmed.
    edited : (Z, Y, X) bool ndarray, optional
        Voxels painted by hand (kept whole).
    within : (Z, Y, X) ndarray, optional
        Mask (nonzero inside) limiting the confirmed slices, e.g. the lung;
        None: the whole slice.

    Returns
    -------
    (Z, Y, X) bool ndarray
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


def _usable(edits: Optional[HandEdits], shape: tuple) -> bool:
    return edits is not None and edits.auto.shape == shape


def confirmed_voxels(shown: np.ndarray, slices: Sequence[int] = (), *,
                     edits: Optional[HandEdits] = None,
                     lung: Optional[np.ndarray] = None) -> np.ndarray:
    """The voxels to learn from: confirmed slices (lung or labelled part) and painted voxels.

    Parameters
    ----------
    shown : (Z, Y, X) integer ndarray
        The labels the user sees, strokes included.
    slices : sequence of int
        Axial slices the user confirmed.
    edits : HandEdits, optional
        The layer's hand edits; updated with ``shown``.
    lung : (Z, Y, X) ndarray, optional
        Lung mask (nonzero inside); default the labelled voxels of ``shown``.

    Returns
    -------
    (Z, Y, X) bool ndarray
    """
    shown = np.asarray(shown)
    lung = shown > 0 if lung is None else np.asarray(lung) > 0
    painted = None
    if _usable(edits, shown.shape):
        edits.update(shown)
        painted = edits.mask.copy()
    return correction_mask(shown.shape, slices, edited=painted, within=lung | (shown > 0))


def merge_prediction(shown: np.ndarray, prediction: np.ndarray, slices: Sequence[int] = (), *,
                     edits: Optional[HandEdits] = None) -> tuple[np.ndarray, int]:
    """Put a prediction into shown labels, except on confirmed slices and painted voxels.

    Parameters
    ----------
    shown : (Z, Y, X) integer ndarray
        The labels the user sees now.
    prediction : (Z, Y, X) integer ndarray
        New labels (e.g. of a correction head).
    slices : sequence of int
        Axial slices the user confirmed: kept whole.
    edits : HandEdits, optional
        Hand edits: painted voxels are kept; the prediction becomes the
        automatic reference.

    Returns
    -------
    labels : (Z, Y, X) ndarray of ``shown``'s dtype
    n_kept : int
        Voxels kept from ``shown`` (confirmed slices and painted voxels).
    """
    shown = np.asarray(shown)
    keep = correction_mask(shown.shape, slices)
    new_auto = np.where(keep, shown, prediction)
    if _usable(edits, shown.shape):
        out = edits.remap(shown, new_auto)
        return out, int(keep.sum() + (edits.mask & ~keep).sum())
    return new_auto.astype(shown.dtype), int(keep.sum())


def changed_voxels(before: np.ndarray, after: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Indices of the voxels that differ and their new values (``before``'s dtype).

    Suits an undoable in-place update such as napari's ``Labels.data_setitem``.
    """
    before = np.asarray(before)
    where = np.nonzero(np.asarray(after) != before)
    return where, np.asarray(after)[where].astype(before.dtype)
