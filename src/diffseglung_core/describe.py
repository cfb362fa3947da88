"""What a scan is, in numbers and in a few lines for users (``diffseglung info``, Load CT)."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .gravity import POSITIONS
from .volume import CTVolume

__all__ = ["volume_facts", "describe_volume", "position_note"]


def volume_facts(volume: CTVolume) -> dict[str, Any]:
    """Format, grid, orientation and HU range of a volume.

    Parameters
    ----------
    volume : CTVolume

    Returns
    -------
    dict
        ``path``, ``format``, ``shape_zyx``, ``spacing_zyx_mm``, ``stored_shape``,
        ``stored_orientation``, ``origin_ras_mm``, ``hu_min``, ``hu_p1``,
        ``hu_p99``, ``hu_max``, ``volume_ml``, ``description``, ``modality``.
    """
    src = volume.source
    lo, p1, p99, hi = np.percentile(volume.hu, [0, 1, 99, 100])
    return {
        "path": src.path,
        "format": src.format,
        "shape_zyx": list(volume.shape),
        "spacing_zyx_mm": [round(s, 6) for s in volume.spacing],
        "stored_shape": list(src.native_shape),
        "stored_orientation": src.orientation,
        "origin_ras_mm": [round(float(v), 3) for v in volume.affine[:3, 3]],
        "hu_min": float(lo), "hu_p1": float(p1), "hu_p99": float(p99), "hu_max": float(hi),
        "volume_ml": round(volume.voxel_volume_ml * volume.hu.size, 1),
        "description": src.description,
        "modality": src.metadata.get("modality", ""),
        "patient_position": src.metadata.get("patient_position", ""),
    }


def describe_volume(volume: CTVolume) -> str:
    """A few lines for users: size, spacing, extent, orientation, HU range, description."""
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
    note = position_note(src.metadata.get("patient_position", ""))
    if note:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def position_note(code: str) -> Optional[str]:
    """What a reader should know when the patient did not lie supine.

    The rules for dependent lung (the denser band under the dependent pleura,
    which is not disease, and where free pleural fluid collects) follow the
    patient's position (:mod:`~diffseglung_core.gravity`); most chest CT is
    supine, interstitial lung disease protocols add prone scans.

    Parameters
    ----------
    code : str
        DICOM PatientPosition (``"HFS"``, ``"HFP"``, ``"FFDL"``, ...); empty when unknown.

    Returns
    -------
    str or None
        None for a supine or an unknown position.
    """
    code = (code or "").strip().upper()
    if not code or POSITIONS.get(code, ("", ""))[0] == "supine":
        return None
    if code not in POSITIONS:
        return (f"the patient lay in position {code} (DICOM PatientPosition), which is not a known "
                "position: the rules for dependent lung assume a supine patient (dependent lung at "
                "the back)")
    lying, side = POSITIONS[code]
    where = {"front": "in front", "right": "on the right", "left": "on the left"}[side]
    return (f"the patient lay {lying} (DICOM PatientPosition {code}): the dependent lung lies {where}, "
            "where the thin denser band under the pleura is taken for dependent density (not "
            "disease) and free pleural fluid is looked for, and the healthy lung's density is read "
            "in bands across that direction")
