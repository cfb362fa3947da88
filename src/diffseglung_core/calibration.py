"""HU calibration from air that is really there; padding never calibrates anything.

Air should read -1000 HU. A scan whose air reads otherwise (a miscalibrated
scanner, some reconstruction kernels) moves every density threshold of the
assignment, so the engine subtracts an offset measured on the scan itself, but
only when the measurement clearly supports it.

Four steps:

1. **Padding** (:func:`detect_padding`). Outside the reconstruction circle the
   image holds no measurement: one constant value (DICOM PixelPaddingValue,
   often -1024, -2000, -2048 or -3024 HU after the rescale, or whatever a
   converter wrote). Padding is the region of one exact value (or, with DICOM
   PixelPaddingRangeLimit, of a range of values) connected to the image border,
   per slice; candidates are the values the reader found in the file, each
   slice's minimum and the value filling much of its border. Real air is
   noisy: isolated voxels that happen to equal the padding value (air clipped
   at -1024 HU) are not padding, because padding is grown only from whole
   3 x 3 blocks of the value.
2. **Air measurement** (:func:`measure_air`). Two places hold air: the air
   around the patient inside the field of view (voxels below ``air_below`` HU
   connected to the edge of the field of view, minus the lung, eroded away
   from the skin and the edge of the field of view) and, when an airway mask is
   given, the trachea and main bronchi (eroded away from their walls). Each is
   summarised by the air peak of its histogram: the mode, the spread of the
   peak's low side (nothing is less dense than air, so blankets and clothes
   only widen the high side) and the median of the voxels within ``+-2.5``
   spreads of the mode. The air around the patient is read in eight
   directions from the slice centre; directions reading clearly denser than
   the lowest one (the table and its mattress, usually behind the patient)
   are left out, and at least two directions must agree.
3. **Decision** (:func:`calibrate_hu`). The offset ``air - nominal_air`` is
   applied only when a source has enough voxels, a tight peak holding most of
   its voxels (when the two sources disagree, only the shift both support: the
   smaller one, none when they point opposite ways; a source that reads more
   than ``max_offset`` HU from air while the other does not is no air, e.g. a
   small bronchus read with its wall), and the offset lies within
   ``max_offset`` HU (a 1024 HU shift, raw scanner units, is never corrected
   here: that is the reader's ``hu_offset``). An offset within ``tolerance``
   HU of zero is not applied either. Otherwise the offset is 0, and
   :attr:`HUCalibration.reason` says why.
4. **A second reference for the trachea alone** (:func:`measure_fat`). Air
   in the trachea reads above air (partial volume with its wall, scatter):
   a crop of the real CIP chest, whose air outside the body reads -998 HU in
   the whole scan, shows -971 HU in its trachea. When the trachea is the only
   air, the fat of the body (subcutaneous, mediastinal; about -100 HU) is read
   too, and only the shift both support is applied (none when the fat reads
   as it should).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence, Union

import numpy as np
from scipy import ndimage as ndi

from .binary import label
from .parallel import thread_map

__all__ = ["Padding", "AirMeasurement", "HUCalibration", "detect_padding", "measure_air",
           "measure_fat", "calibrate_hu", "padding_from_metadata", "NOMINAL_AIR_HU", "NOMINAL_FAT_HU"]

#: HU of air.
NOMINAL_AIR_HU = -1000.0

#: HU of fat (subcutaneous and mediastinal adipose tissue, about -100 HU at the usual
#: 100-140 kVp), the second reference of a scan whose only air is its trachea.
NOMINAL_FAT_HU = -100.0

_SQUARE = np.ones((3, 3), bool)
_CROSS = ndi.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class Padding:
    """Voxels outside the reconstructed field of view.

    Attributes
    ----------
    mask : (Z, Y, X) bool ndarray
        True on padding.
    values : tuple of float
        The padding values found (HU), ascending.
    """

    mask: np.ndarray
    values: tuple[float, ...] = ()

    @property
    def fraction(self) -> float:
        """Fraction of the voxels that are padding."""
        return float(self.mask.mean()) if self.mask.size else 0.0


@dataclass(frozen=True)
class AirMeasurement:
    """The air peak of one source.

    Attributes
    ----------
    source : str
        ``"outside air"`` or ``"trachea"``.
    n_voxels : int
        Voxels measured (below ``air_below`` HU).
    median_hu : float
        Median HU of the voxels within ``+-2.5 spread_hu`` of the peak (NaN when empty).
    spread_hu : float
        Robust standard deviation of the peak (HU): 1.4826 times the median
        distance below the mode of the voxels below it (NaN when empty).
    peak_fraction : float
        Fraction of the voxels within ``+-2.5 spread_hu`` of the mode.
    usable : bool
        Whether this source alone passes the checks of :func:`calibrate_hu`.
    note : str
        Why it is not usable ("" when it is).
    sector_hu : tuple of float
        Outside air only: the air reading in each direction around the slice
        centre (NaN where too few voxels or no tight peak).
    sectors_used : int
        Outside air only: directions pooled into ``median_hu``.
    """

    source: str
    n_voxels: int
    median_hu: float = float("nan")
    spread_hu: float = float("nan")
    peak_fraction: float = 0.0
    usable: bool = False
    note: str = ""
    sector_hu: tuple[float, ...] = ()
    sectors_used: int = 0

    def to_dict(self) -> dict:
        d = {"source": self.source, "n_voxels": int(self.n_voxels),
             "median_hu": _num(self.median_hu), "spread_hu": _num(self.spread_hu),
             "peak_fraction": float(self.peak_fraction), "usable": bool(self.usable),
             "note": self.note}
        if self.sector_hu:
            d["sector_hu"] = [_num(v) for v in self.sector_hu]
            d["sectors_used"] = int(self.sectors_used)
        return d


@dataclass(frozen=True)
class HUCalibration:
    """What the calibration measured and decided.

    Attributes
    ----------
    offset_hu : float
        HU to subtract from the scan (0 unless ``applied``).
    applied : bool
        Whether a non-zero offset is applied.
    source : str
        ``"outside air"``, ``"trachea"``, ``"outside air and trachea"`` (the air
        reading the decision was made on) or ``"none"``.
    n_voxels : int
        Air voxels behind ``median_hu``.
    median_hu : float
        Air reading (HU) the decision was made on; NaN when none.
    spread_hu : float
        Robust standard deviation (HU) of that air peak; NaN when none.
    measured_offset_hu : float
        ``median_hu - nominal_air_hu``, applied or not; NaN when none.
    padding_hu : tuple of float
        Padding values found (HU).
    padding_fraction : float
        Fraction of the examined voxels that are padding.
    reason : str
        One sentence saying what was found and why the offset is or is not applied.
    measurements : tuple of AirMeasurement
        Every source examined.
    nominal_air_hu : float
        HU air should read.
    fat_hu : float
        The fat peak (HU) read when the trachea was the only air
        (:func:`measure_fat`); NaN when it was not read or showed no peak.
    """

    offset_hu: float
    applied: bool
    source: str
    n_voxels: int
    median_hu: float
    spread_hu: float
    measured_offset_hu: float
    padding_hu: tuple[float, ...]
    padding_fraction: float
    reason: str
    measurements: tuple[AirMeasurement, ...] = field(default=())
    nominal_air_hu: float = NOMINAL_AIR_HU
    fat_hu: float = float("nan")

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN written as None)."""
        return {"offset_hu": float(self.offset_hu), "applied": bool(self.applied),
                "source": self.source, "n_voxels": int(self.n_voxels),
                "median_hu": _num(self.median_hu), "spread_hu": _num(self.spread_hu),
                "measured_offset_hu": _num(self.measured_offset_hu),
                "nominal_air_hu": float(self.nominal_air_hu),
                "padding_hu": [float(v) for v in self.padding_hu],
                "padding_fraction": float(self.padding_fraction), "reason": self.reason,
                "measurements": [m.to_dict() for m in self.measurements],
                "fat_hu": _num(self.fat_hu)}


def _num(v: float):
    return float(v) if np.isfinite(v) else None


def padding_from_metadata(
        metadata: Optional[Mapping]) -> tuple[tuple[float, ...], Optional[tuple[float, float]]]:
    """Padding values and range (HU) a reader stored in ``ScanSource.metadata``.

    Parameters
    ----------
    metadata : mapping or None
        ``"padding_hu"``: a number or a list of numbers (HU);
        ``"padding_range_hu"``: ``[low, high]`` (HU, inclusive), from DICOM
        PixelPaddingValue and PixelPaddingRangeLimit.

    Returns
    -------
    (values, range) : tuple of float, and ``(low, high)`` or None.
    """
    if not metadata:
        return (), None
    raw = metadata.get("padding_hu")
    if raw is None:
        values: tuple[float, ...] = ()
    elif np.ndim(raw) == 0:
        values = (float(raw),)
    else:
        values = tuple(float(v) for v in raw)
    rng = metadata.get("padding_range_hu")
    if rng is not None and len(rng) == 2:
        lo, hi = sorted(float(v) for v in rng)
        return values, (lo, hi)
    return values, None


def _as_3d(hu: np.ndarray) -> np.ndarray:
    hu = np.asarray(hu)
    if hu.ndim == 2:
        return hu[None]
    if hu.ndim != 3:
        raise ValueError(f"expected a (Z, Y, X) or (Y, X) array, got shape {hu.shape}")
    return hu


def _border_connected(mask: np.ndarray) -> np.ndarray:
    """The parts of a 2D ``mask`` connected (4-neighbours) to the image border."""
    lab, n = label(mask, structure=_CROSS)
    if n == 0:
        return np.zeros_like(mask)
    edge = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
    keep = np.zeros(n + 1, bool)
    keep[edge] = True
    keep[0] = False
    return keep[lab]


def _grown(core: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The 4-connected parts of ``mask`` that hold ``core`` (thin edges and corners of padding)."""
    lab, n = label(mask, structure=_CROSS)
    keep = np.zeros(n + 1, bool)
    keep[lab[core]] = True
    keep[0] = False
    return keep[lab]


def _slice_padding(sl: np.ndarray, values: Sequence[float], rng: Optional[tuple[float, float]],
                   min_voxels: int) -> tuple[np.ndarray, list[float]]:
    """Padding of one (Y, X) slice and the values it holds."""
    pad = np.zeros(sl.shape, bool)
    found: list[float] = []
    candidates = [(float(v), True) for v in values]
    frame = np.concatenate([sl[0], sl[-1], sl[1:-1, 0], sl[1:-1, -1]])
    common, counts = np.unique(frame, return_counts=True)
    guesses = [float(sl.min())]
    if counts.max() >= 0.1 * frame.size:  # one value fills much of the image border
        guesses.append(float(common[counts.argmax()]))
    for g in guesses:
        if not any(g == v for v, _ in candidates):
            candidates.append((g, False))
    for v, known in candidates:
        equal = sl == v
        core = _border_connected(ndi.binary_opening(equal, structure=_SQUARE))
        if core.sum() >= (1 if known else min_voxels):
            pad |= _grown(core, equal)
            found.append(v)
    if rng is not None:
        inside = (sl >= rng[0]) & (sl <= rng[1])
        region = _grown(_border_connected(ndi.binary_opening(inside, structure=_SQUARE)), inside) & ~pad
        if region.any():
            pad |= region
            found.extend((float(sl[region].min()), float(sl[region].max())))
    return pad, found


def detect_padding(hu: np.ndarray, *, padding_hu: Union[None, float, Sequence[float]] = None,
                   padding_range_hu: Optional[tuple[float, float]] = None,
                   min_fraction: float = 0.002, slices: Optional[Sequence[int]] = None) -> Padding:
    """Find the padding outside the reconstructed field of view, slice by slice.

    Parameters
    ----------
    hu : (Z, Y, X) or (Y, X) numeric ndarray
        The scan in HU.
    padding_hu : float or sequence of float, optional
        Padding values known from the file (HU, e.g. DICOM PixelPaddingValue
        after the rescale). Kept wherever they fill whole 3 x 3 blocks connected
        to the border, however small.
    padding_range_hu : (low, high), optional
        Inclusive HU range of padding (DICOM PixelPaddingValue and
        PixelPaddingRangeLimit after the rescale).
    min_fraction : float
        A value guessed from the slice (its minimum, or the value filling at
        least 10% of its border) counts as padding only when its solid region
        connected to the border covers at least this fraction of the slice
        (and at least 64 voxels).
    slices : sequence of int, optional
        Examine only these slices (others are left False in the mask).

    Returns
    -------
    Padding
        ``mask`` (Z, Y, X) bool (or (1, Y, X) for a 2D input) and the values found.
    """
    vol = _as_3d(hu)
    known: tuple[float, ...] = () if padding_hu is None else (
        (float(padding_hu),) if np.ndim(padding_hu) == 0 else tuple(float(v) for v in padding_hu))
    mask = np.zeros(vol.shape, bool)
    found: set[float] = set()
    area = vol.shape[1] * vol.shape[2]
    min_voxels = max(64, int(np.ceil(min_fraction * area)))
    zs = list(range(vol.shape[0]) if slices is None else slices)
    for z, (slice_mask, vals) in zip(zs, thread_map(
            lambda z: _slice_padding(vol[z], known, padding_range_hu, min_voxels), zs)):
        mask[z] = slice_mask
        found.update(vals)
    return Padding(mask=mask, values=tuple(sorted(found)))


def _air_peak(vals: np.ndarray) -> tuple[float, float, float]:
    """(median near the mode, low-side robust SD, fraction within +-2.5 SD of it) of air HU.

    The window starts at the histogram mode and is re-centred on its median.
    The values are sorted once: every set whose median is taken below is a
    contiguous run of them (the same medians as ``np.median``, without a
    selection per step).
    """
    vals = np.sort(np.asarray(vals)).astype(np.float64)  # (float32 to float64 keeps the order)
    n = vals.size
    # a pile of identical values at the minimum is clipped air: censored, not a peak
    n_pile = int(np.searchsorted(vals, vals[0], side="right"))
    hist_vals = vals[n_pile:] if n_pile / n > 0.005 and n_pile < n else vals
    edges = np.arange(np.floor(hist_vals[0]) - 1.0, np.ceil(hist_vals[-1]) + 3.0, 2.0)
    # np.histogram(hist_vals, edges), counted on the sorted values
    hist = np.diff(np.concatenate([np.searchsorted(hist_vals, edges[:-1], side="left"),
                                   np.searchsorted(hist_vals, edges[-1:], side="right")]))
    smooth = ndi.gaussian_filter1d(hist.astype(np.float64), 3.0, mode="constant")
    centre = float(edges[int(smooth.argmax())] + 1.0)
    for _ in range(3):  # re-centre the window: a mode from few voxels is off by a few HU
        below = int(np.searchsorted(vals, centre, side="right"))  # vals[:below] <= centre
        # the median of centre - vals[:below], read from its two middle values
        spread = max(float(1.4826 * _sorted_median(centre - vals[:below][::-1])) if below else 1.0, 1.0)
        near = np.abs(vals - centre) <= 2.5 * spread  # a contiguous run of the sorted values
        first = int(np.argmax(near))
        centre = float(_sorted_median(vals[first:first + int(np.count_nonzero(near))]))
    return centre, spread, float(near.mean())


def _sorted_median(v: np.ndarray) -> float:
    """``np.median`` of an ascending array without sorting it again."""
    m = v.size // 2
    return float(v[m]) if v.size % 2 else float(np.mean(v[m - 1:m + 1]))


def _in_plane() -> np.ndarray:
    """(3, 3, 3) structure: 4-neighbours within the slice only."""
    st = np.zeros((3, 3, 3), bool)
    st[1] = _CROSS
    return st


def _outside_air(sl: np.ndarray, pad: np.ndarray, exclude: Optional[np.ndarray], air_below: float,
                 erode: int) -> np.ndarray:
    """Air around the patient in one (Y, X) slice: below ``air_below``, touching the field-of-view edge."""
    air = (sl < air_below) & ~pad
    if exclude is not None:
        air &= ~exclude
    edge = ndi.binary_dilation(pad, structure=_SQUARE)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = True
    lab, n = label(air, structure=_CROSS)
    if n == 0:
        return air
    keep = np.zeros(n + 1, bool)
    keep[lab[edge & air]] = True
    keep[0] = False
    out = keep[lab]
    if erode > 0:
        # away from the skin and from the edge of the field of view (both are not-air here)
        out = ndi.binary_erosion(out, structure=_SQUARE, iterations=erode, border_value=0)
    return out


def _peak_note(source: str, n: int, spread: float, frac: float, *, min_voxels: int,
               max_spread: float, min_peak_fraction: float) -> str:
    if n < min_voxels:
        return f"only {n} {source} voxels (at least {min_voxels} needed)"
    if spread > max_spread:
        return f"the {source} peak is {spread:.0f} HU wide (at most {max_spread:.0f} HU)"
    if frac < min_peak_fraction:
        return (f"only {100 * frac:.0f}% of the {source} voxels lie in its air peak "
                f"(at least {100 * min_peak_fraction:.0f}% needed)")
    return ""


def _trachea_measurement(vals: np.ndarray, *, min_voxels: int, max_spread: float,
                         min_peak_fraction: float) -> AirMeasurement:
    n = int(vals.size)
    if n == 0:
        return AirMeasurement("trachea", 0, note="no trachea voxels below the air threshold")
    median, spread, frac = _air_peak(vals)
    note = _peak_note("trachea", n, spread, frac, min_voxels=min_voxels, max_spread=max_spread,
                      min_peak_fraction=min_peak_fraction)
    return AirMeasurement("trachea", n, median, spread, frac, usable=not note, note=note)


def _outside_measurement(vals: np.ndarray, sector: np.ndarray, n_sectors: int, *, min_voxels: int,
                         max_spread: float, min_peak_fraction: float,
                         agreement: float) -> AirMeasurement:
    """Outside air, read direction by direction around the patient.

    Table, mattress, clothes and blankets read denser than air: a direction
    whose air peak is wide, or that reads more than ``agreement`` HU above the
    lowest-reading direction, is left out; at least two directions must remain.
    """
    source = "outside air"
    n_all = int(vals.size)
    if n_all == 0:
        return AirMeasurement(source, 0, note="no air around the patient inside the field of view "
                                              "(a crop, or the body fills the field of view)")
    min_sector = max(50, min_voxels // n_sectors)

    def reading(k: int) -> float:  # the directions on threads
        v = vals[sector == k]
        if v.size < min_sector:
            return np.nan
        median, spread, frac = _air_peak(v)
        return median if spread <= max_spread and frac >= min_peak_fraction else np.nan

    readings = np.array(thread_map(reading, range(n_sectors)), float)
    sector_hu = tuple(float(r) for r in readings)
    ok = np.isfinite(readings)
    if not ok.any():
        median, spread, frac = _air_peak(vals)
        note = _peak_note(source, n_all, spread, frac, min_voxels=min_voxels, max_spread=max_spread,
                          min_peak_fraction=min_peak_fraction) or \
            f"no direction around the patient holds {min_sector} voxels of a tight air peak"
        return AirMeasurement(source, n_all, median, spread, frac, note=note, sector_hu=sector_hu)
    low = float(np.nanmin(readings))
    chosen = np.flatnonzero(ok & (readings <= low + agreement))
    pooled = vals[np.isin(sector, chosen)]
    median, spread, frac = _air_peak(pooled)
    note = _peak_note(source, int(pooled.size), spread, frac, min_voxels=min_voxels,
                      max_spread=max_spread, min_peak_fraction=min_peak_fraction)
    if not note and chosen.size < 2:
        others = readings[ok & (readings > low + agreement)]
        seen = f" (elsewhere {np.min(others):.0f}..{np.max(others):.0f} HU)" if others.size else ""
        note = f"air reads {low:.0f} HU in one direction around the patient only{seen}"
    return AirMeasurement(source, int(pooled.size), median, spread, frac, usable=not note, note=note,
                          sector_hu=sector_hu, sectors_used=int(chosen.size))


def _sectors(shape: tuple[int, int], n_sectors: int) -> np.ndarray:
    """(Y, X) int: direction (0..n_sectors-1) of each pixel seen from the slice centre."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    ang = np.arctan2(yy - (shape[0] - 1) / 2.0, xx - (shape[1] - 1) / 2.0)
    return (np.floor((ang + np.pi) / (2 * np.pi / n_sectors)).astype(int)) % n_sectors


def measure_air(hu: np.ndarray, padding: Padding, *, lung: Optional[np.ndarray] = None,
                airway: Optional[np.ndarray] = None, slices: Optional[Sequence[int]] = None,
                air_below: float = -500.0, erode: int = 3, min_voxels: int = 500,
                min_airway_voxels: int = 100, max_spread: float = 60.0,
                min_peak_fraction: float = 0.5, agreement: float = 20.0,
                n_sectors: int = 8) -> tuple[AirMeasurement, ...]:
    """Measure the air around the patient and, if given, in the airways.

    Parameters
    ----------
    hu : (Z, Y, X) or (Y, X) numeric ndarray
        The scan in HU.
    padding : Padding
        From :func:`detect_padding` (same shape as ``hu`` made 3D).
    lung : (Z, Y, X) array, optional
        Lung mask (nonzero inside); never counted as outside air.
    airway : (Z, Y, X) bool array, optional
        Trachea and main bronchi (lumen, nonzero inside).
    slices : sequence of int, optional
        Slices searched for outside air (default all).
    air_below : float
        HU below which a voxel may be air.
    erode : int
        Voxels (in-plane) dropped next to the skin and the edge of the field of view.
    min_voxels, min_airway_voxels : int
        Voxels a source needs to be usable.
    max_spread : float
        Widest usable peak spread (robust SD, HU).
    min_peak_fraction : float
        Smallest usable fraction of a source's voxels within its air peak.
    agreement : float
        Outside air is read in ``n_sectors`` directions around the slice
        centre; directions reading more than ``agreement`` HU above the lowest
        reading (table, mattress, clothes) are left out.
    n_sectors : int
        Number of directions.

    Returns
    -------
    tuple of AirMeasurement
        ``"outside air"`` first, then ``"trachea"`` when ``airway`` is given.
    """
    vol = _as_3d(hu)
    lung3 = None if lung is None else _as_3d(np.asarray(lung)) > 0
    airway3 = None if airway is None else _as_3d(np.asarray(airway)) > 0
    for name, m in (("lung", lung3), ("airway", airway3), ("padding", padding.mask)):
        if m is not None and m.shape != vol.shape:
            raise ValueError(f"{name} mask shape {m.shape} != scan shape {vol.shape}")
    sector_map = _sectors(vol.shape[1:], n_sectors)

    def outside(z: int) -> tuple[np.ndarray, np.ndarray]:  # slices on threads
        excl = None
        if lung3 is not None or airway3 is not None:
            excl = np.zeros(vol.shape[1:], bool)
            if lung3 is not None:
                excl |= lung3[z]
            if airway3 is not None:
                excl |= airway3[z]
        out = _outside_air(vol[z], padding.mask[z], excl, air_below, erode)
        return vol[z][out], sector_map[out]

    pieces = thread_map(outside, range(vol.shape[0]) if slices is None else slices)
    vals, sectors = [p[0] for p in pieces], [p[1] for p in pieces]
    v = np.concatenate(vals) if vals else np.zeros(0, np.float32)
    sec = np.concatenate(sectors) if sectors else np.zeros(0, int)
    found = [_outside_measurement(v, sec, n_sectors, min_voxels=min_voxels, max_spread=max_spread,
                                  min_peak_fraction=min_peak_fraction, agreement=agreement)]
    if airway3 is not None:
        lumen = ndi.binary_erosion(airway3 & ~padding.mask, structure=_in_plane(), border_value=0)
        tv = vol[lumen]
        found.append(_trachea_measurement(tv[tv < air_below], min_voxels=min_airway_voxels,
                                          max_spread=max_spread, min_peak_fraction=min_peak_fraction))
    return tuple(found)


def measure_fat(hu: np.ndarray, padding: Padding, *, lung: Optional[np.ndarray] = None,
                slices: Optional[Sequence[int]] = None, window: tuple[float, float] = (-200.0, -30.0),
                half_width: float = 25.0, min_voxels: int = 500) -> float:
    """The fat peak of a scan (HU), or NaN when it shows none.

    The mode of the histogram (2 HU bins, smoothed) of the voxels between
    ``window`` HU, outside the padding and the lung, must lie at least 10 HU
    inside the window (a mode at its edge is the shoulder of air's partial
    volume or of soft tissue, not a peak) and have ``min_voxels`` within
    ``half_width`` HU; the peak is the median of those.

    Parameters
    ----------
    hu : (Z, Y, X) or (Y, X) numeric ndarray
        The scan in HU.
    padding : Padding
        From :func:`detect_padding` (same shape as ``hu`` made 3D).
    lung : (Z, Y, X) array, optional
        Lung mask (nonzero inside), left out (its partial volume with vessels).
    slices : sequence of int, optional
        Slices read (default all).
    window : (low, high) float
        HU where the peak is looked for.
    half_width : float
        Half-width (HU) of the peak.
    min_voxels : int
        Voxels the peak needs.

    Returns
    -------
    float
        Median HU of the peak's voxels (NaN when none).
    """
    vol = _as_3d(hu)
    zs = list(range(vol.shape[0])) if slices is None else list(slices)
    lo, hi = window
    keep = ~padding.mask[zs]
    if lung is not None:
        keep &= ~(_as_3d(np.asarray(lung))[zs] > 0)
    v = vol[zs][keep]
    v = np.sort(v[(v >= lo) & (v <= hi)]).astype(np.float64)
    if v.size < min_voxels:
        return float("nan")
    edges = np.arange(lo, hi + 2.0, 2.0)
    hist = np.diff(np.searchsorted(v, edges, side="left"))
    mode = float(edges[int(ndi.gaussian_filter1d(hist.astype(np.float64), 3.0).argmax())] + 1.0)
    near = v[np.abs(v - mode) <= half_width]
    if not lo + 10.0 <= mode <= hi - 10.0 or near.size < min_voxels:
        return float("nan")
    return _sorted_median(near)


def _sample_slices(n: int, max_slices: Optional[int]) -> list[int]:
    if max_slices is None or n <= max_slices:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, max_slices).round().astype(int).tolist()))


def calibrate_hu(hu: np.ndarray, lung: Optional[np.ndarray] = None, *,
                 airway: Optional[np.ndarray] = None, metadata: Optional[Mapping] = None,
                 padding_hu: Union[None, float, Sequence[float]] = None,
                 padding_range_hu: Optional[tuple[float, float]] = None,
                 nominal_air: float = NOMINAL_AIR_HU, max_offset: float = 100.0,
                 tolerance: float = 5.0, agreement: float = 20.0, max_spread: float = 60.0,
                 min_voxels: int = 500, min_airway_voxels: int = 100,
                 min_peak_fraction: float = 0.5, air_below: float = -500.0,
                 max_slices: Optional[int] = 64) -> HUCalibration:
    """HU offset of a scan, from air that is really in it, applied only when clearly supported.

    Parameters
    ----------
    hu : (Z, Y, X) or (Y, X) numeric ndarray
        The scan in HU (float32 or int16).
    lung : (Z, Y, X) array, optional
        Lung mask (nonzero inside), excluded from outside air.
    airway : (Z, Y, X) bool array, optional
        Trachea and main bronchi lumen: a second air source.
    metadata : mapping, optional
        ``ScanSource.metadata``; its ``"padding_hu"`` / ``"padding_range_hu"``
        (see :func:`padding_from_metadata`) are added to ``padding_hu`` / ``padding_range_hu``.
    padding_hu : float or sequence of float, optional
        Known padding values (HU).
    padding_range_hu : (low, high), optional
        Known padding range (HU, inclusive).
    nominal_air : float
        HU air should read.
    max_offset : float
        Largest offset (HU) ever applied; a larger measured offset is refused.
        The default admits the +75 HU of the cted-open HRCT slices (bone
        kernel; outside air and trachea both read about -925 HU) and refuses
        what is not a calibration error: lung read as air (about +150 HU),
        raw scanner units or a rescale applied twice (1024 HU).
    tolerance : float
        Offsets within ``+-tolerance`` HU are not applied (air reads as it should).
    agreement : float
        Largest difference (HU) between the outside-air and trachea readings
        pooled (beyond it, only the smaller shift is applied), and between the
        directions of outside air pooled (see :func:`measure_air`).
    max_spread, min_voxels, min_airway_voxels, min_peak_fraction, air_below :
        see :func:`measure_air`.
    max_slices : int or None
        Outside air is searched on at most this many evenly spaced slices.

    Returns
    -------
    HUCalibration
        ``offset_hu`` is what to subtract (0 unless ``applied``).
    """
    vol = _as_3d(hu)
    meta_values, meta_range = padding_from_metadata(metadata)
    known = list(meta_values)
    if padding_hu is not None:
        known += [float(padding_hu)] if np.ndim(padding_hu) == 0 else [float(v) for v in padding_hu]
    rng = padding_range_hu if padding_range_hu is not None else meta_range
    zs = _sample_slices(vol.shape[0], max_slices)
    padding = detect_padding(vol, padding_hu=sorted(set(known)), padding_range_hu=rng, slices=zs)
    pad_frac = float(padding.mask[zs].mean()) if zs else 0.0
    found = measure_air(vol, padding, lung=lung, airway=airway, slices=zs, air_below=air_below,
                        min_voxels=min_voxels, min_airway_voxels=min_airway_voxels,
                        max_spread=max_spread, min_peak_fraction=min_peak_fraction,
                        agreement=agreement)

    fat = float("nan")

    def result(offset: float, source: str, used: Sequence[AirMeasurement], reason: str,
               median: float = float("nan")) -> HUCalibration:
        n = int(sum(m.n_voxels for m in used))
        spread = float(max((m.spread_hu for m in used), default=float("nan")))
        if not np.isfinite(median) and len(used) == 1:
            median = used[0].median_hu
        return HUCalibration(offset_hu=float(offset), applied=bool(offset != 0.0), source=source,
                             n_voxels=n, median_hu=float(median), spread_hu=spread,
                             measured_offset_hu=float(median - nominal_air) if np.isfinite(median)
                             else float("nan"),
                             padding_hu=padding.values, padding_fraction=pad_frac, reason=reason,
                             measurements=found, nominal_air_hu=float(nominal_air), fat_hu=fat)

    usable = [m for m in found if m.usable]
    if not usable:
        fov = vol[zs][~padding.mask[zs]]
        if fov.size and float(fov.min()) >= air_below:
            return result(0.0, "none", [], f"no value below {air_below:.0f} HU inside the field of view "
                          f"(lowest {float(fov.min()):.0f} HU): no air to calibrate on; the scan may be "
                          f"in raw scanner units (HU + 1024), which needs hu_offset=-1024 "
                          f"(--hu-offset -1024) when reading it; no offset applied")
        notes = "; ".join(m.note for m in found)
        return result(0.0, "none", [], f"no trustworthy air reading: {notes}; no offset applied")
    discarded = ""
    if len(usable) == 2:
        plausible = [m for m in usable if abs(m.median_hu - nominal_air) <= max_offset]
        if len(plausible) == 1:
            # one reading is no air at all (a small bronchus read with its wall): the other decides
            gone = next(m for m in usable if m not in plausible)
            discarded = (f" ({gone.source} reads {gone.median_hu:.0f} HU, more than {max_offset:.0f} HU "
                         f"from {nominal_air:.0f} HU: not air, not used)")
            usable = plausible
    if len(usable) == 2:
        a, b = usable
        source = "outside air and trachea"
        if abs(a.median_hu - b.median_hu) > agreement:
            # which one is right is not clear: only the shift both support
            shifts = (a.median_hu - nominal_air, b.median_hu - nominal_air)
            common = min(shifts, key=abs) if shifts[0] * shifts[1] > 0 else 0.0
            median = nominal_air + common
            where = (f"outside air reads {a.median_hu:.0f} HU but the trachea {b.median_hu:.0f} HU: "
                     f"they disagree by more than {agreement:.0f} HU, and only the smaller shift, "
                     f"{common:+.0f} HU, has the support of both")
        else:
            median = float(np.mean([a.median_hu, b.median_hu]))
            where = f"{source} reads {median:.0f} HU"
    else:
        source = usable[0].source
        median = usable[0].median_hu
        where = f"{source} reads {median:.0f} HU{discarded}"
        if source == "trachea":
            # tracheal air reads above air (partial volume with the wall): the fat of the
            # body must show the shift too
            fat = measure_fat(vol, padding, lung=lung, slices=zs)
            if np.isfinite(fat):
                shifts = (median - nominal_air, fat - NOMINAL_FAT_HU)
                common = min(shifts, key=abs) if shifts[0] * shifts[1] > 0 else 0.0
                median = nominal_air + common
                where += (f" and fat {fat:.0f} HU ({shifts[1]:+.0f} HU from {NOMINAL_FAT_HU:.0f} HU; "
                          f"no air around the patient to read, and tracheal air reads above air "
                          f"with its wall): only the shift both support, {common:+.0f} HU, is kept")
    offset = float(np.round(median - nominal_air))
    if abs(offset) > max_offset:
        hint = ""
        if abs(abs(offset) - 1024.0) <= 100.0:
            hint = (" (a 1024 HU shift: raw scanner units or a rescale applied twice; give the "
                    "reader's hu_offset instead)")
        return result(0.0, source, usable, f"{where}, {offset:+.0f} HU from {nominal_air:.0f} HU: more "
                      f"than the {max_offset:.0f} HU a calibration may correct{hint}; no offset applied",
                      median)
    if abs(offset) <= tolerance:
        return result(0.0, source, usable, f"{where}, within {tolerance:.0f} HU of {nominal_air:.0f} HU: "
                      "no offset needed", median)
    return result(offset, source, usable, f"{where} (spread {max(m.spread_hu for m in usable):.0f} HU, "
                  f"{sum(m.n_voxels for m in usable)} voxels): {offset:+.0f} HU subtracted", median)
