"""Real-anatomy test bed: lesions of known extent inserted into real chest CT.

The synthetic phantom shares its makers with the labelling rules, so scores on
it prove little. Here lesions are drawn with their own tissue models
(:mod:`.testbed_lesions`) into the lung of *real* scans, keeping the real
vessels, noise and texture where the lesion does not replace them, so that a
method is tested on real anatomy with a known truth.

Pipeline of :func:`insert_lesions`:

1. :func:`prepare_scan` measures the scan once: noise level per slice and
   in-plane noise spectrum (:func:`.testbed_noise.estimate_noise`), the HU of
   air, the signed distance to the pleura (mm), the native dense structures to
   stay away from (solid or thick components, e.g. a tumour) and a coarse grid
   of candidate centres.
2. Each :class:`LesionSpec` (kind, diameter, subpleural or central, zone) is
   placed at random among the candidates that satisfy it (depth below the
   pleura, zone of the lung, distance to native dense tissue and to the other
   lesions); a lesion that does not fit is shrunk (by 15 % at a time, at most
   6 times) and skipped if it still does not fit.
3. Its model is drawn on a fine grid (about 1 mm), averaged to the voxel
   (partial volume at the scan's own resolution) and blended into the scan as
   ``K * native + A``; synthetic noise with the scan's own spectrum and
   per-slice level, of standard deviation ``sigma * sqrt(1 - K**2)``, restores
   the noise the lesion replaced (:mod:`.testbed_noise`). Values are clipped to
   the native scan's range (a scanner stores nothing below its floor, -1024 HU).
4. The truth label is the lesion's class where its averaged extent is at least
   one half, inside the given lung mask; the rest of the lung is healthy (1).

Everything is deterministic from the seed. :func:`standard_cases` builds the
fixed cases of the shared real CT folder (A0001 one case per class and one
mixed case, the CIP whole chest at 4 mm and the CIP two-slice crop).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from ..labels import Tissue
from ..volume import CTVolume
from .testbed_burden import dilate_mm, thick_part
from .testbed_lesions import KIND_LABEL, RENDERERS, FineGrid, LesionContext
from .testbed_noise import NoiseModel, estimate_noise, synthesize_noise

__all__ = [
    "KINDS",
    "STANDARD_CASES",
    "InsertedLesion",
    "LesionSpec",
    "ScanContext",
    "TestBedCase",
    "build_case",
    "default_data_dir",
    "insert_lesions",
    "load_a0001",
    "load_cip64",
    "load_cip_crop",
    "load_scan",
    "native_dense",
    "native_hazy",
    "native_lucent",
    "prepare_scan",
    "scan_missing",
    "standard_cases",
    "unknown_tissue",
]

#: Lesion kinds and their truth label.
KINDS = dict(KIND_LABEL)
_ALWAYS_SUBPLEURAL = {"paraseptal", "reticulation", "honeycombing"}


@dataclass(frozen=True)
class LesionSpec:
    """A lesion to insert.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`: ``"ggo"``; ``"consolidation"`` (with air
        bronchograms), ``"mass"`` (solid); ``"centrilobular"``,
        ``"paraseptal"``, ``"panlobular"`` (emphysema); ``"reticulation"``,
        ``"honeycombing"`` (fibrosis).
    diameter_mm : float
        Nominal diameter (mm). A subpleural lesion is cut by the pleura, so its
        extent inside the lung is smaller.
    subpleural : bool
        Against the pleura (True) or central, clear of it (False). Paraseptal
        emphysema and fibrosis are always subpleural.
    zone : str
        Space-separated constraints on the centre: ``"upper"`` / ``"lower"``
        (half / lower 45 % of the lung's height), ``"posterior"`` (dorsal
        half), ``"right"`` / ``"left"`` (lung side); ``""`` for anywhere.
    """

    kind: str
    diameter_mm: float
    subpleural: bool = False
    zone: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown lesion kind {self.kind!r}; choose from {sorted(KINDS)}")
        if self.diameter_mm <= 0:
            raise ValueError(f"diameter must be positive, got {self.diameter_mm}")
        unknown = set(self.zone.split()) - {"upper", "lower", "posterior", "right", "left"}
        if unknown:
            raise ValueError(f"unknown zone word(s) {sorted(unknown)}; use upper, lower, posterior, "
                             "right, left")


@dataclass
class InsertedLesion:
    """Record of one inserted lesion.

    Attributes
    ----------
    index : int, its value in :attr:`TestBedCase.lesion_map`.
    kind : str; label : int (truth class); name : str (class name).
    centre_voxel : (z, y, x) float voxel index of the centre.
    centre_mm : (z, y, x) float, mm in the scan grid frame (index * spacing).
    centre_ras : (3,) float, world RAS mm.
    diameter_mm : float, nominal diameter after any shrinking.
    requested_diameter_mm : float.
    subpleural : bool, as requested; ``touches_pleura`` : bool, measured (a
        truth voxel within one voxel of the lung border).
    volume_ml : float, truth volume (mL) inside the lung mask.
    voxels : int, truth voxels.
    mean_hu : float, mean HU of its truth voxels in the output scan.
    params : dict, what the model drew (target HU, cell sizes...).
    """

    index: int
    kind: str
    label: int
    name: str
    centre_voxel: tuple
    centre_mm: tuple
    centre_ras: tuple
    diameter_mm: float
    requested_diameter_mm: float
    subpleural: bool
    touches_pleura: bool = False
    volume_ml: float = 0.0
    voxels: int = 0
    mean_hu: float = float("nan")
    params: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["params"] = {k: (float(v) if isinstance(v, (np.floating, float)) else v)
                       for k, v in self.params.items()}
        return d


@dataclass
class TestBedCase:
    """A real scan with inserted lesions and its truth.

    Attributes
    ----------
    name : str
    volume : CTVolume, the modified scan (HU float32, same grid as the input).
    truth : (Z, Y, X) uint8, 0 outside ``lung``, 1 healthy, 2..5 lesions.
    lung : (Z, Y, X) uint8, 0/1 lung mask the truth is defined on.
    lesion_map : (Z, Y, X) int16, 0 or the lesion's ``index`` (its truth voxels).
    lesions : list of InsertedLesion.
    ignore : (Z, Y, X) bool, native tissue of unknown class (dense: a tumour,
        thick hilar structures; lucent: emphysema the scan may show; hazy: a
        tumour's halo, partial volume of a dome) and a
        margin, outside any inserted lesion: leave it out of scores.
    noise : NoiseModel of the input scan.
    seed : int.
    skipped : list of (LesionSpec, reason) that could not be placed.
    description : str.
    """

    __test__ = False  # not a pytest class

    name: str
    volume: CTVolume
    truth: np.ndarray
    lung: np.ndarray
    lesion_map: np.ndarray
    lesions: list
    ignore: np.ndarray
    noise: NoiseModel
    seed: int
    skipped: list = field(default_factory=list)
    description: str = ""

    @property
    def scored(self) -> np.ndarray:
        """(Z, Y, X) bool: truth lung minus :attr:`ignore` (where Dice is measured)."""
        return (self.lung > 0) & ~self.ignore


# --------------------------------------------------------------------------- scan preparation


def native_dense(hu: np.ndarray, lung: np.ndarray, spacing: Sequence[float], *,
                 dense_hu: float = -400.0, thin_mm: float = 3.0, min_ml: float = 1.0) -> np.ndarray:
    """Native dense tissue of a lung that is not a thin vessel: a tumour, a blob, large hilar vessels.

    Voxels above ``dense_hu`` inside the lung, opened by a ball of ``thin_mm``
    (thin structures removed), in 3D components of at least ``min_ml``.

    Returns
    -------
    (Z, Y, X) bool
    """
    m = thick_part((np.asarray(hu) > dense_hu) & (np.asarray(lung) > 0), spacing, thin_mm)
    return _components_of_at_least(m, spacing, min_ml)


def native_lucent(hu: np.ndarray, lung: np.ndarray, spacing: Sequence[float], *,
                  lucent_hu: float = -950.0, smooth_mm: float = 2.0, min_ml: float = 1.0) -> np.ndarray:
    """Native low-attenuation regions of a lung: emphysema the scan may already show.

    Voxels of the lung whose HU, averaged over the lung by a Gaussian of
    ``smooth_mm`` (noise averaged out; the chest wall and the mediastinum
    outside the lung take no part, so a subpleural region is read as what it
    is), is below ``lucent_hu``, in 3D components of at least ``min_ml``: the
    regions a density reading (LAA-950) would call emphysema, never the
    scattered voxels that noise alone pushes below the threshold.

    Returns
    -------
    (Z, Y, X) bool
    """
    lung_b = np.asarray(lung) > 0
    smooth = _mean_over(hu, lung_b, spacing, smooth_mm)
    return _components_of_at_least((smooth < lucent_hu) & lung_b, spacing, min_ml)


def native_hazy(hu: np.ndarray, lung: np.ndarray, spacing: Sequence[float], *,
                hazy_hu: float = -700.0, dense_hu: float = -400.0, smooth_mm: float = 2.0,
                min_ml: float = 1.0) -> np.ndarray:
    """Native hazy lung: parenchyma that reads as ground glass (a tumour's halo, a dome's partial volume).

    The parenchyma is the lung at or below ``dense_hu`` less, in each slice, the
    voxels next to what is not parenchyma (a vessel, a wall, the lung's border):
    those hold part of it (partial volume), which on a coarse grid lifts a whole
    rim around the lung and the hila. Its voxels whose HU, averaged over the
    parenchyma by a Gaussian of ``smooth_mm``, is above ``hazy_hu`` (the lower
    bound of the ground-glass range of quantitative CT, -700 to -300 HU), in 3D
    components of at least ``min_ml``, are hazy.

    Returns
    -------
    (Z, Y, X) bool
    """
    hu = np.asarray(hu)
    parenchyma = (np.asarray(lung) > 0) & (hu <= dense_hu)
    parenchyma = ndi.binary_erosion(parenchyma, structure=np.ones((1, 3, 3), bool))
    smooth = _mean_over(hu, parenchyma, spacing, smooth_mm)
    return _components_of_at_least((smooth > hazy_hu) & parenchyma, spacing, min_ml)


def unknown_tissue(hu: np.ndarray, lung: np.ndarray, spacing: Sequence[float], *,
                   dense: np.ndarray | None = None, margin_mm: float = 5.0) -> np.ndarray:
    """Native tissue of unknown class, to leave out of scores: :func:`native_dense`,
    :func:`native_lucent` and :func:`native_hazy` grown by ``margin_mm``, inside the lung.

    ``dense``: the scan's :func:`native_dense`, when already computed.

    Returns
    -------
    (Z, Y, X) bool
    """
    lung_b = np.asarray(lung) > 0
    if dense is None:
        dense = native_dense(hu, lung_b, spacing)
    unknown = dense | native_lucent(hu, lung_b, spacing) | native_hazy(hu, lung_b, spacing)
    return dilate_mm(unknown, spacing, margin_mm) & lung_b


def _mean_over(hu: np.ndarray, within: np.ndarray, spacing: Sequence[float], smooth_mm: float) -> np.ndarray:
    """(Z, Y, X) float32: the Gaussian mean (``smooth_mm``) of ``hu`` over the voxels of ``within`` only."""
    sigma = [smooth_mm / s for s in spacing]
    total = ndi.gaussian_filter(np.where(within, np.asarray(hu, np.float32), 0.0), sigma)
    return total / np.maximum(ndi.gaussian_filter(within.astype(np.float32), sigma), 1e-3)


def _components_of_at_least(mask: np.ndarray, spacing: Sequence[float], min_ml: float) -> np.ndarray:
    """(Z, Y, X) bool: the 26-connected components of ``mask`` of at least ``min_ml``."""
    lab, n = ndi.label(mask, structure=np.ones((3, 3, 3), bool))
    if not n:
        return mask
    sizes = np.bincount(lab.ravel(), minlength=n + 1) * float(np.prod(spacing)) / 1000.0
    sizes[0] = 0
    return sizes[lab] >= min_ml


def _signed_depth(lung: np.ndarray, spacing, margin_mm: float = 12.0) -> np.ndarray:
    """Signed distance (mm) to the lung border, > 0 inside; the scan's edges are not pleura.

    Computed on the lung's bounding box grown by ``margin_mm``; where the box
    reaches the edge of the scan, the mask is extended by repeating its edge
    (a lung cut by the field of view goes on). Scans thinner than 30 mm use a
    2D distance per slice. Outside values are clipped at ``-margin_mm`` (only
    the few mm outside the pleura matter).
    """
    sp = np.asarray(spacing, float)
    out = np.full(lung.shape, -margin_mm, np.float32)
    if not lung.any():
        return out
    half = 0.5 * float(sp.min())
    if lung.shape[0] * sp[0] < 30.0:
        for z in range(lung.shape[0]):
            m = lung[z]
            if not m.any():
                continue
            pad = [int(np.ceil(margin_mm / s)) for s in sp[1:]]
            mp = np.pad(m, [(p, p) for p in pad], mode="edge")
            d_in = ndi.distance_transform_edt(mp, sampling=sp[1:])
            d_out = ndi.distance_transform_edt(~mp, sampling=sp[1:])
            sd = np.where(mp, d_in - half, -(d_out - half))
            out[z] = np.maximum(sd[pad[0]:pad[0] + m.shape[0], pad[1]:pad[1] + m.shape[1]], -margin_mm)
        return out
    m_vox = [int(np.ceil(margin_mm / s)) for s in sp]
    sl, pads = [], []
    for ax in range(3):
        nz = np.flatnonzero(lung.any(axis=tuple(i for i in range(3) if i != ax)))
        lo, hi = nz[0] - m_vox[ax], nz[-1] + 1 + m_vox[ax]
        sl.append(slice(max(0, lo), min(lung.shape[ax], hi)))
        pads.append((max(0, -lo), max(0, hi - lung.shape[ax])))
    m = np.pad(lung[tuple(sl)], pads, mode="edge")
    d_in = ndi.distance_transform_edt(m, sampling=sp)
    d_out = ndi.distance_transform_edt(~m, sampling=sp)
    sd = np.where(m, d_in - half, -(d_out - half)).astype(np.float32)
    crop = tuple(slice(p[0], p[0] + (s.stop - s.start)) for p, s in zip(pads, sl))
    out[tuple(sl)] = np.maximum(sd[crop], -margin_mm)
    return out


@dataclass
class ScanContext:
    """Measurements of one scan shared by all the cases built on it (see :func:`prepare_scan`).

    Attributes
    ----------
    volume : CTVolume (input, unmodified).
    lung : (Z, Y, X) bool.
    noise : NoiseModel.
    air_hu : float, HU of air outside the body (median, clipped to -1024..-980).
    depth : (Z, Y, X) float32, signed distance to the lung border (mm, > 0 inside).
    dense : (Z, Y, X) bool, :func:`native_dense` tissue.
    ignore : (Z, Y, X) bool, ``dense``, :func:`native_lucent` and
        :func:`native_hazy` regions grown by 5 mm, inside the lung.
    step : (3,) int, stride of the coarse candidate grid.
    dense_dist : coarse float32, mm from each coarse voxel to native dense tissue.
    components : coarse int32, lung component of each coarse voxel (0 outside).
    hilum : dict component -> (3,) mm, medial point of each lung component.
    z_range, y_mid, x_mid : lung extent along z (mm) and mid points (mm).
    hu_range : (min, max) HU of the native scan; inserted values are clipped to it.
    """

    volume: CTVolume
    lung: np.ndarray
    noise: NoiseModel
    air_hu: float
    depth: np.ndarray
    dense: np.ndarray
    ignore: np.ndarray
    step: np.ndarray
    dense_dist: np.ndarray
    components: np.ndarray
    hilum: dict
    z_range: tuple
    y_mid: float
    x_mid: float
    hu_range: tuple = (-1024.0, 3071.0)


def _air_hu(hu: np.ndarray) -> float:
    """HU of air: median of the voxels below -900 HU connected to the image border in their slice."""
    vals = []
    for z in np.linspace(0, hu.shape[0] - 1, min(hu.shape[0], 8)).round().astype(int):
        air = hu[z] < -900
        lab, n = ndi.label(air)
        if not n:
            continue
        border = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
        border = border[border > 0]
        sel = np.isin(lab, border)
        if sel.sum() > 50:
            vals.append(hu[z][sel])
    if not vals:
        return -1000.0
    return float(np.clip(np.median(np.concatenate(vals)), -1024.0, -980.0))


def prepare_scan(volume: CTVolume, lung: np.ndarray, *, coarse_mm: float = 2.5) -> ScanContext:
    """Measure a scan once for the cases built on it.

    Parameters
    ----------
    volume : CTVolume (HU).
    lung : (Z, Y, X) lung mask on the scan's grid (nonzero inside).
    coarse_mm : spacing (mm) of the grid of candidate lesion centres.

    Returns
    -------
    ScanContext
    """
    lung_b = np.asarray(lung) > 0
    if lung_b.shape != volume.shape:
        raise ValueError(f"lung mask shape {lung_b.shape} != scan shape {volume.shape}")
    if not lung_b.any():
        raise ValueError("empty lung mask")
    sp = np.asarray(volume.spacing, float)
    hu = volume.hu
    noise = estimate_noise(hu, sp)
    depth = _signed_depth(lung_b, sp)
    dense = native_dense(hu, lung_b, sp)
    step = np.maximum(1, np.round(coarse_mm / sp)).astype(int)
    cs = tuple(slice(None, None, int(s)) for s in step)
    dense_dist = ndi.distance_transform_edt(~dense[cs], sampling=sp * step).astype(np.float32) \
        if dense.any() else np.full(lung_b[cs].shape, np.inf, np.float32)
    comps, n = ndi.label(lung_b[cs], structure=np.ones((3, 3, 3), bool))
    zz, yy, xx = np.nonzero(lung_b)
    x_mid = float(np.median(xx)) * sp[2]
    hilum = {}
    for c in range(1, n + 1):
        cz, cy, cx = np.nonzero(comps == c)
        pts = np.stack([cz, cy, cx], 1) * step * sp
        side = np.sign(np.median(pts[:, 2]) - x_mid) or 1.0
        medial = np.percentile(pts[:, 2], 10 if side > 0 else 90)
        hilum[c] = np.array([np.median(pts[:, 0]), np.median(pts[:, 1]), medial])
    return ScanContext(volume=volume, lung=lung_b, noise=noise, air_hu=_air_hu(hu), depth=depth,
                       dense=dense, ignore=unknown_tissue(hu, lung_b, sp, dense=dense), step=step,
                       dense_dist=dense_dist, components=comps, hilum=hilum,
                       z_range=(float(zz.min() * sp[0]), float(zz.max() * sp[0])),
                       y_mid=float(np.median(yy)) * sp[1], x_mid=x_mid,
                       hu_range=(float(hu.min()), float(hu.max())))


# --------------------------------------------------------------------------- placement


def _candidates(ctx: ScanContext, spec: LesionSpec, radius: float, placed: list) -> np.ndarray:
    """(n, 3) coarse voxel indices where the centre of a lesion of ``radius`` may go."""
    sp = np.asarray(ctx.volume.spacing, float)
    st = ctx.step
    cs = tuple(slice(None, None, int(s)) for s in st)
    d = ctx.depth[cs]
    tol = 0.5 * float((sp * st)[1:].max())
    subpleural = spec.subpleural or spec.kind in _ALWAYS_SUBPLEURAL
    if spec.kind in _ALWAYS_SUBPLEURAL:
        ok = (d > 0) & (d <= max(4.0, tol + 1.0))
    elif subpleural:
        ok = (d >= 0.3 * radius - tol) & (d <= 0.6 * radius + tol) & (d > 0)
    else:
        ok = d >= radius + max(5.0, tol)
    ok &= ctx.dense_dist >= 1.25 * radius + 5.0
    zc = np.arange(d.shape[0])[:, None, None] * st[0] * sp[0]
    yc = np.arange(d.shape[1])[None, :, None] * st[1] * sp[1]
    xc = np.arange(d.shape[2])[None, None, :] * st[2] * sp[2]
    z0, z1 = ctx.z_range
    tall = (z1 - z0) > 60.0
    words = spec.zone.split()
    if "upper" in words and tall:
        ok &= zc >= z0 + 0.5 * (z1 - z0)
    if "lower" in words and tall:
        ok &= zc <= z0 + 0.45 * (z1 - z0)
    if "posterior" in words:
        ok &= yc >= ctx.y_mid
    if "right" in words:
        ok &= xc < ctx.x_mid
    if "left" in words:
        ok &= xc >= ctx.x_mid
    for c_mm, r_mm in placed:
        dist2 = (zc - c_mm[0]) ** 2 + (yc - c_mm[1]) ** 2 + (xc - c_mm[2]) ** 2
        ok &= dist2 >= (1.15 * (radius + r_mm) + 5.0) ** 2
    return np.argwhere(ok)


def _box(ctx: ScanContext, centre_mm: np.ndarray, radius: float, factors) -> FineGrid:
    sp = np.asarray(ctx.volume.spacing, float)
    half = 1.6 * radius + 8.0
    lo = np.floor((centre_mm - half) / sp).astype(int)
    hi = np.ceil((centre_mm + half) / sp).astype(int) + 1
    lo = np.clip(lo, 0, ctx.volume.shape)
    hi = np.clip(hi, 0, ctx.volume.shape)
    return FineGrid(lo=lo, hi=hi, factors=np.asarray(factors, int), spacing=sp)


def _fine_factors(spacing, fine_mm: float = 1.0) -> np.ndarray:
    return np.maximum(1, np.round(np.asarray(spacing, float) / fine_mm)).astype(int)


def insert_lesions(volume: CTVolume, lung: np.ndarray, specs: Sequence[LesionSpec], *, seed: int = 0,
                   name: str = "", context: ScanContext | None = None,
                   fine_mm: float = 1.0) -> TestBedCase:
    """Insert lesions of known extent into a real scan.

    Parameters
    ----------
    volume : CTVolume
        The real scan (HU); it is not modified.
    lung : (Z, Y, X) integer or bool
        Lung mask on the scan's grid (nonzero inside); the truth lives on it.
    specs : sequence of LesionSpec
        Inserted in order (later lesions never overlap earlier ones).
    seed : int
        Everything random (placement, shapes, noise) follows from it.
    name : str
        Case name.
    context : ScanContext, optional
        :func:`prepare_scan` of this scan and mask, to share between cases.
    fine_mm : float
        Size (mm) of the fine cells lesions are drawn on before averaging to the voxel.

    Returns
    -------
    TestBedCase
    """
    ctx = context if context is not None else prepare_scan(volume, lung)
    if ctx.volume is not volume and ctx.volume.shape != volume.shape:
        raise ValueError("context was prepared for another scan")
    sp = np.asarray(volume.spacing, float)
    lung_b = ctx.lung
    hu = volume.hu.copy()
    truth = np.where(lung_b, np.uint8(Tissue.HEALTHY), np.uint8(0)).astype(np.uint8)
    lesion_map = np.zeros(volume.shape, np.int16)
    factors = _fine_factors(sp, fine_mm)
    streams = np.random.SeedSequence(seed).spawn(len(specs))
    placed, records, skipped = [], [], []
    for i, spec in enumerate(specs):
        r_place, r_draw, r_noise = (np.random.default_rng(s) for s in streams[i].spawn(3))
        radius = spec.diameter_mm / 2.0
        cand = np.zeros((0, 3), int)
        for _ in range(7):
            cand = _candidates(ctx, spec, radius, placed)
            if len(cand):
                break
            radius *= 0.85
        if not len(cand):
            skipped.append((spec, "no room for it in this lung"))
            continue
        ci = cand[r_place.integers(len(cand))]
        centre = (ci * ctx.step + r_place.uniform(-0.5, 0.5, 3) * (ctx.step - 1)) * sp
        grid = _box(ctx, centre, radius, factors)
        comp = int(ctx.components[tuple(ci)])
        hilum = ctx.hilum.get(comp, np.array([np.mean(ctx.z_range), ctx.y_mid, ctx.x_mid]))
        box = grid.slices
        lctx = LesionContext(grid=grid, centre=centre, radius=radius,
                             depth=grid.upsample(ctx.depth[box]), native=hu[box], lung=lung_b[box],
                             air_hu=ctx.air_hu, hilum=hilum, rng=r_draw)
        rend = RENDERERS[spec.kind](lctx)
        inside = lung_b[box]
        k = np.where(inside, np.clip(rend.keep, 0, 1), 1.0).astype(np.float32)
        a = np.where(inside, rend.add, 0.0).astype(np.float32)
        cur = hu[box]
        blend = k * cur + a
        noise = synthesize_noise(cur.shape, ctx.noise, r_noise, z0=int(grid.lo[0]))
        new = blend + noise * np.sqrt(np.clip(1.0 - k * k, 0, 1))
        if rend.raise_only:
            new = np.where(blend > cur, new, cur)
        hu[box] = np.clip(new, ctx.hu_range[0], ctx.hu_range[1])    # the scanner's own floor (-1024)
        lab = KINDS[spec.kind]
        sel = (rend.extent >= 0.5) & inside
        truth[box][sel] = lab
        lesion_map[box][sel] = i + 1
        placed.append((centre, radius))
        ras = volume.affine @ np.array([*(centre / sp), 1.0])
        records.append(InsertedLesion(
            index=i + 1, kind=spec.kind, label=int(lab), name=Tissue(lab).name.lower(),
            centre_voxel=tuple(float(v) for v in centre / sp), centre_mm=tuple(float(v) for v in centre),
            centre_ras=tuple(float(v) for v in ras[:3]), diameter_mm=float(2 * radius),
            requested_diameter_mm=float(spec.diameter_mm),
            subpleural=bool(spec.subpleural or spec.kind in _ALWAYS_SUBPLEURAL),
            params=dict(rend.params)))
    voxel_ml = float(np.prod(sp)) / 1000.0
    border = float(sp.max())
    for rec in records:
        m = lesion_map == rec.index
        rec.voxels = int(m.sum())
        rec.volume_ml = rec.voxels * voxel_ml
        rec.mean_hu = float(hu[m].mean()) if rec.voxels else float("nan")
        rec.touches_pleura = bool(rec.voxels and (ctx.depth[m] <= border).any())
    ignore = ctx.ignore & (lesion_map == 0)
    out_vol = replace(volume, hu=hu.astype(np.float32))
    return TestBedCase(name=name, volume=out_vol, truth=truth, lung=lung_b.astype(np.uint8),
                       lesion_map=lesion_map, lesions=records, ignore=ignore, noise=ctx.noise,
                       seed=int(seed), skipped=skipped,
                       description=f"{len(records)} lesions in {volume.source.path or 'a scan'}")


# --------------------------------------------------------------------------- data


def default_data_dir() -> Path:
    """The shared real CT folder: ``$DIFFSEGLUNG_DATA`` or ``<project>/../shared/data``."""
    env = os.environ.get("DIFFSEGLUNG_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def _cip_lung(labels: np.ndarray) -> np.ndarray:
    """CIP label map (value = type << 8 | region) to a 0/1 lung mask (any lung region 1..14)."""
    region = np.asarray(labels).astype(np.int64) & 0xFF
    return ((region >= 1) & (region <= 14)).astype(np.uint8)


def _read_mask_matching(path: Path, reference: CTVolume) -> np.ndarray:
    """A label map stored on a larger grid than ``reference``: the sub-block at the scan's position."""
    from ..errors import GridMismatchError
    from ..io import read_mask
    from ..io.orientation import to_canonical
    from ..io.registry import reader_for

    try:
        return read_mask(path, reference)
    except GridMismatchError:
        pass                                    # a larger grid: take the scan's block below
    native = reader_for(path).read(path, spacing=reference.spacing, series=None, role="labels",
                                   progress=None)
    a_ref = np.asarray(reference.source.native_affine, float)
    m = np.linalg.inv(np.asarray(native.affine, float)) @ a_ref
    if not np.allclose(m[:3, :3], np.eye(3), atol=1e-3):
        raise ValueError(f"{path}: grid is not a translate of the scan's")
    off = np.round(m[:3, 3]).astype(int)
    if not np.allclose(m[:3, 3], off, atol=1e-2):
        raise ValueError(f"{path}: grid is offset by a fraction of a voxel")
    shape = reference.source.native_shape
    if np.any(off < 0) or np.any(off + np.asarray(shape) > native.data.shape):
        raise ValueError(f"{path}: the scan lies outside the label map")
    sub = native.data[tuple(slice(o, o + s) for o, s in zip(off, shape))]
    lab, _, _ = to_canonical(sub, a_ref)
    return np.asarray(lab)


def load_a0001(data_dir=None, *, lung_fn: Callable | None = None):
    """The A0001 chest CT and its lung mask.

    Parameters
    ----------
    data_dir : folder of the shared real CT (default :func:`default_data_dir`).
    lung_fn : ``f(hu, spacing) -> (Z, Y, X) mask``; default
        :func:`diffseglung_core.lung.compute_lung_mask` (no labels come with this scan).

    Returns
    -------
    (CTVolume, (Z, Y, X) uint8 0/1 lung mask)
    """
    from ..io import read_scan

    d = Path(data_dir) if data_dir else default_data_dir()
    vol = read_scan(d / "lung-pet-ct-dx-A0001" / "dicom")
    if lung_fn is None:
        from ..lung import compute_lung_mask as lung_fn
    lung = (np.asarray(lung_fn(vol.hu, vol.spacing)) > 0).astype(np.uint8)
    return vol, lung


def load_cip64(data_dir=None, *, mask: str = "wholeLung-64.nrrd"):
    """The CIP whole chest at ~4 mm (``ct-64.nrrd``) and its CIP lung map (0/1)."""
    from ..io import read_mask, read_scan

    d = (Path(data_dir) if data_dir else default_data_dir()) / "cip-chest"
    vol = read_scan(d / "ct-64.nrrd")
    return vol, _cip_lung(read_mask(d / mask, vol))


def load_cip_crop(data_dir=None):
    """The CIP two-slice full-resolution crop and its lung map (the two matching slices, 0/1)."""
    from ..io import read_scan

    d = (Path(data_dir) if data_dir else default_data_dir()) / "cip-chest"
    vol = read_scan(d / "crop_ct_2slices.nrrd")
    return vol, _cip_lung(_read_mask_matching(d / "crop_ct_partialLungLabelMap.nrrd", vol))


# --------------------------------------------------------------------------- standard cases

S = LesionSpec
#: case name -> (scan, seed, lesion specs). Scans: "a0001", "cip64", "cipcrop".
STANDARD_CASES: dict[str, tuple[str, int, tuple]] = {
    "a0001-ggo": ("a0001", 101, (
        S("ggo", 15), S("ggo", 30, True, "upper"), S("ggo", 50), S("ggo", 90, True, "lower"))),
    "a0001-consolidation": ("a0001", 102, (
        S("consolidation", 90, True, "lower"), S("consolidation", 35, True), S("mass", 20),
        S("mass", 45))),
    "a0001-emphysema": ("a0001", 103, (
        S("centrilobular", 25, False, "upper"), S("centrilobular", 45, False, "upper"),
        S("paraseptal", 40, True, "upper"), S("panlobular", 60, False, "lower"),
        S("panlobular", 20))),
    "a0001-fibrosis": ("a0001", 104, (
        S("honeycombing", 70, True, "lower posterior left"),
        S("reticulation", 60, True, "lower posterior right"),
        S("honeycombing", 40, True, "lower"), S("reticulation", 30, True))),
    "a0001-mixed": ("a0001", 105, (
        S("honeycombing", 60, True, "lower posterior"), S("consolidation", 50, True, "lower"),
        S("ggo", 40, True), S("centrilobular", 30, False, "upper"), S("paraseptal", 30, True, "upper"),
        S("mass", 25))),
    "cip64-mixed": ("cip64", 201, (
        S("honeycombing", 70, True, "lower posterior"), S("consolidation", 60, True, "lower"),
        S("ggo", 50), S("panlobular", 50, False, "upper"), S("mass", 30))),
    "cipcrop-mixed": ("cipcrop", 301, (
        S("reticulation", 40, True, "posterior"), S("consolidation", 35, True), S("ggo", 30),
        S("centrilobular", 35), S("paraseptal", 30, True), S("mass", 15))),
}
del S

_LOADERS = {"a0001": load_a0001, "cip64": load_cip64, "cipcrop": load_cip_crop}


def load_scan(scan: str, data_dir=None) -> tuple[CTVolume, np.ndarray]:
    """``(volume, truth lung)`` of a test-bed scan: ``"a0001"``, ``"cip64"`` or ``"cipcrop"``."""
    return _LOADERS[scan](data_dir)


def build_case(name: str, volume: CTVolume, lung: np.ndarray, *, context: ScanContext | None = None,
               seed: int | None = None) -> TestBedCase:
    """One of :data:`STANDARD_CASES` on an already loaded scan (``seed`` overrides the fixed one)."""
    _, fixed_seed, specs = STANDARD_CASES[name]
    return insert_lesions(volume, lung, specs, seed=fixed_seed if seed is None else seed, name=name,
                          context=context)


def standard_cases(data_dir=None, names: Sequence[str] | None = None, *,
                   a0001_lung_fn: Callable | None = None) -> dict[str, TestBedCase]:
    """Build the standard test-bed cases from the shared real CT folder.

    Parameters
    ----------
    data_dir : folder of the shared real CT (default :func:`default_data_dir`).
    names : subset of :data:`STANDARD_CASES` (default all).
    a0001_lung_fn : lung mask function for A0001 (see :func:`load_a0001`).

    Returns
    -------
    dict name -> TestBedCase (cases whose scan is missing are left out).
    """
    names = list(STANDARD_CASES) if names is None else list(names)
    d = Path(data_dir) if data_dir else default_data_dir()
    out: dict[str, TestBedCase] = {}
    scans: dict[str, tuple] = {}
    for name in names:
        scan = STANDARD_CASES[name][0]
        if scan not in scans:
            if scan_missing(d, scan):
                scans[scan] = None
                continue
            if scan == "a0001":
                vol, lung = load_a0001(d, lung_fn=a0001_lung_fn)
            else:
                vol, lung = load_scan(scan, d)
            scans[scan] = (vol, lung, prepare_scan(vol, lung))
        if scans.get(scan) is None:
            continue
        vol, lung, ctx = scans[scan]
        out[name] = build_case(name, vol, lung, context=ctx)
    return out


def scan_missing(d: Path, scan: str) -> bool:
    """Whether a file of the test-bed scan ``scan`` is missing from the data folder ``d``."""
    paths = {"a0001": [d / "lung-pet-ct-dx-A0001" / "dicom"],
             "cip64": [d / "cip-chest" / "ct-64.nrrd", d / "cip-chest" / "wholeLung-64.nrrd"],
             "cipcrop": [d / "cip-chest" / "crop_ct_2slices.nrrd",
                         d / "cip-chest" / "crop_ct_partialLungLabelMap.nrrd"]}[scan]
    return not all(p.exists() for p in paths)
