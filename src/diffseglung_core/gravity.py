"""Which way gravity pulls in a scan: the lungs' dependent side, from the patient's position.

Lung is denser where it is dependent, dependent consolidation and free pleural
fluid collect there, and a supine patient's dependent side is the back. Most
chest CT is taken supine; interstitial lung disease protocols add prone scans
(on which dependent density clears from the back and gathers in front), and a
decubitus scan lies on one side. Arrays follow the project's frame: ``(Z, Y,
X)`` with ``y`` increasing towards the patient's back and ``x`` towards the
patient's left.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DEPENDENT_SIDES", "POSITIONS", "dependent_side", "gravity_axis", "dependent_of_centre"]

#: The sides a lung's dependent part can lie on.
DEPENDENT_SIDES = ("back", "front", "right", "left")

#: DICOM PatientPosition -> (the patient lay ..., dependent side).
POSITIONS = {"HFS": ("supine", "back"), "FFS": ("supine", "back"),
             "HFP": ("prone", "front"), "FFP": ("prone", "front"),
             "HFDR": ("on the right side", "right"), "FFDR": ("on the right side", "right"),
             "HFDL": ("on the left side", "left"), "FFDL": ("on the left side", "left")}


def dependent_side(position: str) -> str:
    """The dependent side of a scan from its DICOM PatientPosition.

    Parameters
    ----------
    position : str
        ``"HFS"``, ``"HFP"``, ``"FFDL"``, ...; empty when unknown.

    Returns
    -------
    str
        One of :data:`DEPENDENT_SIDES`; ``"back"`` (supine) for an unknown or
        unrecognised position, as in most chest CT.
    """
    return POSITIONS.get((position or "").strip().upper(), ("", "back"))[1]


def gravity_axis(side: str) -> tuple[int, int]:
    """``(axis, sign)`` of a ``(Z, Y, X)`` array along which ``side`` lies.

    ``sign`` is +1 when the dependent side lies towards larger indices.
    """
    try:
        return {"back": (1, 1), "front": (1, -1), "right": (2, -1), "left": (2, 1)}[side]
    except KeyError:
        raise ValueError(f"dependent side {side!r}: choose from {DEPENDENT_SIDES}") from None


def dependent_of_centre(mask: np.ndarray, side: str = "back") -> np.ndarray:
    """Voxels on the dependent side of the centre of ``mask`` in their axial slice.

    Parameters
    ----------
    mask : (Z, Y, X) bool
        A lung.
    side : str
        The dependent side (:data:`DEPENDENT_SIDES`).

    Returns
    -------
    (Z, Y, X) bool, broadcast: ``(Z, Y, 1)`` or ``(Z, 1, X)``
        True beyond the centre (a slice without ``mask`` has its centre at 0).
    """
    axis, sign = gravity_axis(side)
    coord = np.arange(mask.shape[axis], dtype=np.float64)
    counts = np.count_nonzero(mask, axis=3 - axis)  # (Z, n) voxels per row or column
    centre = counts @ coord / np.maximum(counts.sum(axis=1), 1)
    shape = [mask.shape[0], 1, 1]
    shape[axis] = mask.shape[axis]
    return (sign * (coord[None, :] - centre[:, None]) > 0).reshape(shape)
