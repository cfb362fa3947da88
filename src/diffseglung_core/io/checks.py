"""Sanity checks on what a reader found: dimensions, geometry and HU values.

Every check raises :class:`~diffseglung_core.errors.ScanReadError` with one line
that says what is wrong and, where there is one, how to fix it.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import ScanReadError

#: Modalities that are not CT, with a name users know.
OTHER_MODALITIES = {"MR": "an MR", "PT": "a PET", "NM": "a nuclear-medicine", "US": "an ultrasound",
                    "CR": "a radiograph (CR)", "DX": "a radiograph (DX)", "MG": "a mammogram",
                    "SEG": "a segmentation", "RTSTRUCT": "a structure set", "SR": "a report"}


def squeeze_to_3d(path, data: np.ndarray) -> np.ndarray:
    """Drop trailing length-1 axes; refuse 4D data and anything below 2D.

    A 2D array is returned as it is (the caller decides whether one slice is
    allowed); several volumes along a fourth axis are an error.
    """
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim > 3:
        raise ScanReadError(path, f"{data.ndim}D image of shape {data.shape}: a single 3D CT is "
                                  "needed (split the series or pick one volume first)")
    if data.ndim < 2 or min(data.shape) == 0:
        raise ScanReadError(path, f"not an image: array of shape {data.shape}")
    return data


def require_3d(path, data: np.ndarray) -> np.ndarray:
    """Refuse a 2D array where a 3D volume is required."""
    data = squeeze_to_3d(path, data)
    if data.ndim == 2:
        raise ScanReadError(path, f"2D image of shape {data.shape}: a 3D volume is required "
                                  "(single slices can be read as TIFF with --spacing)")
    return data


def check_modality(path, modality: str) -> None:
    """Refuse a DICOM modality other than CT (``""`` means unknown and passes)."""
    modality = (modality or "").upper()
    if modality in OTHER_MODALITIES:
        raise ScanReadError(path, f"this is {OTHER_MODALITIES[modality]} series (Modality {modality}), "
                                  "not CT")


def check_spacing(path, spacing) -> None:
    """Refuse missing (zero, NaN) voxel sizes."""
    if not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ScanReadError(path, f"missing voxel spacing (found {tuple(spacing)}); give it with "
                                  "--spacing Z Y X (mm)")


#: Values below this are not HU even as padding (scanners pad with -1024, -2000, -2048 or -3024).
LOWEST_HU = -3100.0


def check_hu(path, hu: np.ndarray, *, whole_scan: bool = True) -> None:
    """Check that ``hu`` looks like CT in Hounsfield units.

    Always refused: NaN or infinite values, a constant image, values on a
    normalised scale (all within about -1..5), and values all below -500
    whose minimum lies under any HU (:data:`LOWEST_HU`).

    The other checks need a whole chest, which holds both air and tissue; a
    region of interest or a patch (a cube of lung, a nodule) need not:

    - no negative value (raw scanner units without their rescale, an MR or
      PET image, a mask): refused for a whole scan, a warning for a region;
    - no value above -500 HU (no tissue denser than air): a warning for a
      whole scan (a crop of the lung is still CT, but the lung mask and the
      calibration need the chest around it), nothing for a region.

    Parameters
    ----------
    path : str or Path
        The file, named in messages.
    hu : ndarray
        The values (any shape, float or integer), in HU.
    whole_scan : bool
        True for a scan (``read_scan``), False for a region of interest or a
        patch (``read_scan(..., whole_scan=False)``, used by ``radiomics``).

    Raises
    ------
    ScanReadError
        One line naming the file and the problem.

    Warns
    -----
    UserWarning
        Values that are CT but not what the caller usually gets (see above).
    """
    bad = ~np.isfinite(hu)
    if bad.any():
        kind = "NaN" if np.isnan(hu).any() else "infinite"
        raise ScanReadError(path, f"{int(bad.sum())} {kind} values: the image is corrupt or was "
                                  "saved from a failed computation")
    lo, hi = float(hu.min()), float(hu.max())
    if lo == hi:
        raise ScanReadError(path, f"empty image: every voxel is {lo:g}")
    if lo >= 0:
        problem = _non_negative_problem(hu, lo, hi)
        if whole_scan:
            raise ScanReadError(path, problem)
        warnings.warn(f"{path}: {problem}; fine for a region of soft tissue, wrong for lung",
                      UserWarning, stacklevel=3)
        return
    if lo >= -2 and hi <= 6:
        raise ScanReadError(path, f"values {lo:.3g}..{hi:.3g} look normalised, not HU (the model "
                                  "scale is (HU + 1000) / 700 - 1: store HU, or use the NPZ 'ct' key)")
    if hi >= -500:
        return
    if lo < LOWEST_HU:
        raise ScanReadError(path, f"values {lo:g}..{hi:g}: no tissue denser than air and values "
                                  f"below any HU (under {LOWEST_HU:g}, padding included): not a CT "
                                  "in HU")
    if whole_scan:
        warnings.warn(f"{path}: values {lo:g}..{hi:g}: no tissue denser than air, so this is a crop "
                      "of the lung, not a whole chest CT; the lung mask and the HU calibration "
                      "need the chest around the lung", UserWarning, stacklevel=3)


def _non_negative_problem(hu: np.ndarray, lo: float, hi: float) -> str:
    """Why values that are all >= 0 are probably not CT in HU (one line)."""
    sample = hu.ravel()[:: max(1, hu.size // 100_000)]
    if np.array_equal(sample, np.round(sample)) and np.unique(sample).size <= 32:
        return (f"values {lo:g}..{hi:g} in a few integer steps: this looks like a label map or mask, "
                "not a CT in HU")
    if hi <= 100:
        return f"values {lo:g}..{hi:g} are not CT in HU (a PET, a mask or a probability map?)"
    return (f"values look like raw scanner units {lo:g}..{hi:g}, not HU (or an MR/PET image): a CT "
            "without its rescale needs 1024 subtracted (--hu-offset -1024)")
