"""A synthetic chest CT with known ground truth.

The test bed of the project: real CT with pixel labels for ground-glass
opacity, fibrosis and consolidation is not at hand, so segmentation,
radiomics, training and the napari plugin are checked on this phantom.

Anatomy (canonical layout of :mod:`diffseglung_core.volume`: ``z`` inferior to
superior, ``y`` anterior to posterior, ``x`` patient right to left): air around
a body of soft tissue with a subcutaneous fat layer, spine and ribs, heart and
mediastinum, two lungs that narrow to the apex, trachea and main bronchi, and
a branching vessel tree in each lung. Lesions, placed where they usually are:

========================  ==============  ==========================================
class (label)             HU              texture and place
========================  ==============  ==========================================
emphysema (4)             -990 .. -940    centrilobular holes in the upper lobes,
                                          paraseptal bullae under the pleura
ground glass (2)          -700 .. -450    hazy patch, vessels visible through it
fibrosis (3)              -950 .. -100    reticular walls and honeycomb cysts,
                                          basal and subpleural
consolidation (5)         -60 .. +70      against the pleura, with air bronchograms
========================  ==============  ==========================================

Ground-truth labels are the lesion regions before partial-volume blur and
noise. Vessels are part of whatever tissue surrounds them (healthy lung or
the lesion they cross), as in a radiologist's outline; trachea and main
bronchi are outside the lung (label 0), as in a lung mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage as ndi

from .labels import Tissue
from .volume import CTVolume, ScanSource, canonical_affine

PATHOLOGIES = ("emphysema", "ggo", "fibrosis", "consolidation")

#: Transverse field of view (mm) of the default spacing.
FIELD_OF_VIEW_MM = 350.0


@dataclass(frozen=True)
class Phantom:
    """A synthetic scan and its ground truth.

    Attributes
    ----------
    volume : CTVolume
        HU (z, y, x) float32 with spacing and affine.
    labels : (Z, Y, X) uint8
        0 outside lung, 1 healthy, 2 GGO, 3 fibrosis, 4 emphysema, 5 consolidation.
    lung : (Z, Y, X) uint8
        0 outside, 1 right lung, 2 left lung.
    """

    volume: CTVolume
    labels: np.ndarray
    lung: np.ndarray


def default_spacing(shape: Sequence[int]) -> tuple[float, float, float]:
    """Spacing (mm) covering a 350 mm field of view and about 300 mm of chest."""
    z, y, x = shape
    slice_mm = float(np.clip(300.0 / max(z, 1), 0.625, 5.0))
    return (slice_mm, FIELD_OF_VIEW_MM / y, FIELD_OF_VIEW_MM / x)


def make_phantom(shape: Sequence[int] = (48, 128, 128), spacing: Optional[Sequence[float]] = None,
                 *, seed: int = 0, pathologies: Sequence[str] = PATHOLOGIES,
                 noise_hu: float = 18.0, blur_mm: float = 0.8) -> Phantom:
    """Make a synthetic chest CT with ground-truth tissue labels.

    Parameters
    ----------
    shape : (Z, Y, X) voxels, from (1, 48, 48) up to (300, 512, 512) and more.
    spacing : (z, y, x) voxel size in mm; default :func:`default_spacing`.
    seed : the phantom is a deterministic function of the seed and the other arguments.
    pathologies : which of ``"emphysema", "ggo", "fibrosis", "consolidation"`` to include.
    noise_hu : standard deviation of the (slightly correlated) CT noise, HU.
    blur_mm : standard deviation of the partial-volume blur, mm.

    Returns
    -------
    Phantom
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be three positive sizes (z, y, x), got {shape}")
    unknown = set(pathologies) - set(PATHOLOGIES)
    if unknown:
        raise ValueError(f"unknown pathologies {sorted(unknown)}; choose from {PATHOLOGIES}")
    spacing = tuple(float(s) for s in (spacing or default_spacing(shape)))
    rng = np.random.default_rng(seed)
    grid = _Grid(shape, spacing)

    hu, lung = _anatomy(grid, rng)
    labels = np.where(lung > 0, np.uint8(Tissue.HEALTHY), np.uint8(Tissue.OUTSIDE))
    hu = np.where(lung > 0, _parenchyma(grid, rng), hu).astype(np.float32)

    painters = {"ggo": _ggo, "fibrosis": _fibrosis, "emphysema": _emphysema,
                "consolidation": _consolidation}
    for name in PATHOLOGIES:  # fixed order: the result does not depend on the caller's order
        lesion_rng = np.random.default_rng([seed, PATHOLOGIES.index(name)])
        if name in pathologies:
            painters[name](grid, hu, labels, lung, lesion_rng)

    _vessels(grid, hu, lung, labels, np.random.default_rng([seed, 99]))

    if blur_mm > 0:
        hu = ndi.gaussian_filter(hu, [blur_mm / s for s in spacing], mode="nearest")
    if noise_hu > 0:
        noise = rng.standard_normal(shape, dtype=np.float32)
        noise = ndi.gaussian_filter(noise, [0.0 if shape[0] == 1 else 0.4, 0.6, 0.6])
        noise *= noise_hu / max(float(noise.std()), 1e-6)
        hu += noise
    hu = np.clip(hu, -1024.0, 3071.0).astype(np.float32)

    source = ScanSource(format="phantom", native_shape=shape,
                        description=f"synthetic chest phantom, seed {seed}, "
                                    f"pathologies: {', '.join(p for p in PATHOLOGIES if p in pathologies) or 'none'}")
    volume = CTVolume(hu=hu, spacing=spacing, affine=canonical_affine(spacing), source=source)
    return Phantom(volume=volume, labels=labels, lung=lung)


class _Grid:
    """Normalised coordinates of the voxel grid, broadcastable (z, y, x).

    ``u`` (patient right -1 .. left +1) and ``v`` (anterior -1 .. posterior +1)
    are in units of half the field of view; ``w`` runs 0 (inferior) .. 1
    (superior). ``mm`` converts a length in mm to units of ``u``.
    """

    def __init__(self, shape, spacing):
        self.shape, self.spacing = shape, spacing
        z, y, x = shape
        half_y, half_x = y * spacing[1] / 2, x * spacing[2] / 2
        self.u = ((np.arange(x, dtype=np.float32) + 0.5) * spacing[2] - half_x)[None, None, :] / half_x
        self.v = ((np.arange(y, dtype=np.float32) + 0.5) * spacing[1] - half_y)[None, :, None] / half_y
        self.w = (np.linspace(0.0, 1.0, z, dtype=np.float32) if z > 1
                  else np.array([0.45], np.float32))[:, None, None]
        self.half = half_x
        self.z_mm = self.w * max(z - 1, 1) * spacing[0]

    def mm(self, length_mm: float) -> float:
        return length_mm / self.half

    def sigma(self, length_mm: float, z_too: bool = True) -> list[float]:
        """Gaussian sigma in voxels for a length in mm."""
        s = [length_mm / sp for sp in self.spacing]
        if self.shape[0] == 1 or not z_too:
            s[0] = 0.0
        return s


def _smooth_noise(grid: _Grid, rng, scale_mm: float) -> np.ndarray:
    """Gaussian random field, unit variance, correlation length ``scale_mm``."""
    field = rng.standard_normal(grid.shape, dtype=np.float32)
    field = ndi.gaussian_filter(field, grid.sigma(scale_mm), mode="wrap")
    return field / max(float(field.std()), 1e-6)


def _lung_scale(w):
    """Transverse size of the lungs along z: broad at the base, narrow at the apex."""
    return np.sqrt(np.clip(1.0 - ((w - 0.38) / 0.66) ** 2, 0.0, 1.0))


def _anatomy(grid: _Grid, rng) -> tuple[np.ndarray, np.ndarray]:
    u, v, w = grid.u, grid.v, grid.w
    shape = grid.shape
    hu = np.full(shape, -1000.0, np.float32)
    body = (u / 0.88) ** 2 + (v / 0.64) ** 2
    hu[np.broadcast_to(body < 1.0, shape)] = -90.0  # fat
    hu[np.broadcast_to((u / 0.82) ** 2 + (v / 0.58) ** 2 < 1.0, shape)] = 45.0  # muscle, organs
    inner = (u / 0.74) ** 2 + (v / 0.52) ** 2
    hu[np.broadcast_to(inner < 1.0, shape)] = 35.0  # mediastinum and chest cavity
    # ribs: a shell outside the lungs, one every ~25 mm along z
    rib_phase = np.sin(2 * np.pi * grid.z_mm / 25.0) > 0.55
    ribs = (inner > 1.0) & (inner < 1.17) & rib_phase & (v > -0.45)
    hu[np.broadcast_to(ribs, shape)] = 650.0
    # spine: vertebral body with cortical rim, behind the mediastinum
    spine = (u / 0.11) ** 2 + ((v - 0.40) / 0.11) ** 2
    hu[np.broadcast_to(spine < 1.0, shape)] = 750.0
    hu[np.broadcast_to(spine < 0.6, shape)] = 280.0
    aorta = ((u - 0.1) / 0.07) ** 2 + ((v - 0.22) / 0.07) ** 2 < 1.0
    hu[np.broadcast_to(aorta, shape)] = 40.0

    s = _lung_scale(w)
    lung = np.zeros(shape, np.uint8)
    wobble = 0.03 * _smooth_noise(grid, rng, 30.0)
    for label, centre, radius_u in ((1, -0.37, 0.30), (2, 0.38, 0.28)):
        d = ((u - centre) / (radius_u * s + 1e-6)) ** 2 + ((v + 0.02) / (0.44 * s + 1e-6)) ** 2
        lung[(d + wobble < 1.0) & (s > 0.05)] = label
    # heart pushes into the left lung in the lower chest
    heart = ((u - 0.12) / 0.27) ** 2 + ((v + 0.14) / 0.28) ** 2 + ((w - 0.22) / 0.42) ** 2 < 1.0
    lung[heart] = 0
    hu[heart] = 40.0
    lung[np.broadcast_to(spine < 1.3, shape)] = 0

    # trachea above the carina, main bronchi to each hilum (air, outside the lung label)
    carina_w = 0.62
    r_trachea = grid.mm(8.0)
    trachea = (u ** 2 + (v + 0.12) ** 2 < r_trachea ** 2) & (w > carina_w)
    airway = np.broadcast_to(trachea, shape).copy()
    for side in (-1.0, 1.0):
        t = np.clip((carina_w - w) / 0.14, 0.0, 1.0)  # 0 at the carina, 1 at the hilum
        cu, cv = side * 0.16 * t, -0.12 + 0.08 * t
        r = grid.mm(6.0)
        airway |= ((u - cu) ** 2 + (v - cv) ** 2 < r ** 2) & (w <= carina_w) & (w > carina_w - 0.14)
    hu[airway] = -1000.0
    wall = ndi.binary_dilation(airway, iterations=1) & ~airway
    hu[wall & (lung == 0)] = 20.0
    lung[airway | wall] = 0
    return hu, lung


def _parenchyma(grid: _Grid, rng) -> np.ndarray:
    """Healthy lung: about -860 HU, denser posteriorly (gravity), fine texture."""
    texture = 14.0 * _smooth_noise(grid, rng, 1.5) + 8.0 * _smooth_noise(grid, rng, 6.0)
    return (-865.0 + 45.0 * np.clip(grid.v + 0.2, 0, None) + texture).astype(np.float32)


def _blob(grid: _Grid, rng, centre, radii_mm, roughness: float = 0.35) -> np.ndarray:
    """An irregular ellipsoidal region; ``centre`` in (w, u, v)."""
    cw, cu, cv = centre
    rz = radii_mm[0] / (max(grid.shape[0] - 1, 1) * grid.spacing[0])
    d = (((grid.w - cw) / max(rz, 1e-6)) ** 2 + ((grid.u - cu) / grid.mm(radii_mm[1])) ** 2
         + ((grid.v - cv) / grid.mm(radii_mm[2])) ** 2)
    return d + roughness * _smooth_noise(grid, rng, min(radii_mm) / 2) < 1.0


def _in_lung(lung: np.ndarray, side: int) -> np.ndarray:
    return lung == side


def _ggo(grid, hu, labels, lung, rng) -> None:
    region = _blob(grid, rng, (0.52, 0.42, -0.12), (55, 42, 48)) & _in_lung(lung, 2)
    haze = -590.0 + 45.0 * _smooth_noise(grid, rng, 3.0)
    hu[region] = np.clip(haze, -700, -450)[region]
    labels[region] = Tissue.GGO


def _fibrosis(grid, hu, labels, lung, rng) -> None:
    # basal, subpleural: the outer rim of the lower right lung
    dist_in = ndi.distance_transform_edt(lung == 1, sampling=grid.spacing)
    zone = (lung == 1) & (dist_in < 16.0) & (grid.w < 0.42) & (grid.v > -0.35)
    zone &= _blob(grid, rng, (0.2, -0.45, 0.2), (70, 70, 90), roughness=0.2)
    walls = np.abs(_smooth_noise(grid, rng, 2.0)) < 0.35  # reticular network
    cysts = _smooth_noise(grid, rng, 2.2) > 1.0           # honeycomb cysts
    texture = np.where(walls, -180.0, -720.0) + 40.0 * _smooth_noise(grid, rng, 1.0)
    texture = np.where(cysts & ~walls, -950.0, texture)
    hu[zone] = texture[zone]
    labels[zone] = Tissue.FIBROSIS


def _emphysema(grid, hu, labels, lung, rng) -> None:
    region = np.zeros(grid.shape, bool)
    # centrilobular: clustered small holes in both upper lobes
    upper = (lung > 0) & (grid.w > 0.55)
    holes = (_smooth_noise(grid, rng, 2.5) > 0.9) & _blob(grid, rng, (0.78, -0.35, -0.05),
                                                          (70, 55, 70), roughness=0.2)
    region |= holes & upper
    holes_l = (_smooth_noise(grid, rng, 2.5) > 1.0) & _blob(grid, rng, (0.75, 0.38, 0.0),
                                                            (60, 45, 60), roughness=0.2)
    region |= holes_l & upper
    # paraseptal bullae: under the anterior pleura of the right upper lobe
    dist_in = ndi.distance_transform_edt(lung == 1, sampling=grid.spacing)
    bullae = (_smooth_noise(grid, rng, 4.0) > 0.7) & (dist_in < 9.0) & (lung == 1) & (grid.w > 0.5)
    region |= bullae & (grid.v < 0.0)
    region &= labels == Tissue.HEALTHY
    hu[region] = (-968.0 + 10.0 * _smooth_noise(grid, rng, 2.0))[region]
    labels[region] = Tissue.EMPHYSEMA


def _consolidation(grid, hu, labels, lung, rng) -> None:
    # posterior-lateral lower left lung, touching the chest wall
    region = _blob(grid, rng, (0.27, 0.6, 0.27), (60, 40, 48), roughness=0.25) & (lung == 2)
    if not region.any():
        return
    solid = 35.0 + 15.0 * _smooth_noise(grid, rng, 4.0)
    # air bronchograms: thin tubes running along z through the consolidation
    bronchi = np.zeros(grid.shape, bool)
    for du in (-0.04, 0.03):
        tube = ((grid.u - 0.58 - du) ** 2 + (grid.v - 0.26 - du / 2) ** 2) < grid.mm(2.0) ** 2
        bronchi |= np.broadcast_to(tube, grid.shape)
    values = np.where(bronchi, -930.0, solid)
    hu[region] = values[region]
    labels[region] = Tissue.CONSOLIDATION


def _vessels(grid, hu, lung, labels, rng) -> None:
    """A branching vessel tree from each hilum (+40 HU), inside the lungs."""
    z, y, x = grid.shape
    sz, sy, sx = grid.spacing
    centres: list[tuple[np.ndarray, float]] = []  # (points in mm (N, 3), radius mm)
    extent = np.array([max(z - 1, 1) * sz, y * sy, x * sx])

    def branch(start, direction, length, radius, depth):
        n = max(int(length / (0.5 * min(grid.spacing))), 2)
        pts = start + np.linspace(0, length, n)[:, None] * direction
        centres.append((pts, radius))
        if depth == 0 or radius < 0.8:
            return
        for _ in range(2):
            d = direction + rng.normal(0, 0.55, 3)
            d /= np.linalg.norm(d)
            branch(pts[-1], d, length * 0.72, radius * 0.72, depth - 1)

    for side in (-1, 1):
        hilum = np.array([0.5 * extent[0], 0.48 * extent[1], (0.5 + side * 0.1) * extent[2]])
        for _ in range(6):
            d = np.array([rng.normal(0, 0.9), rng.normal(0, 0.6), side * 1.0])
            branch(hilum, d / np.linalg.norm(d), 0.11 * extent[2], 3.5, 5)

    vessel = np.zeros(grid.shape, bool)
    bins = [(0.0, 1.2), (1.2, 2.2), (2.2, 10.0)]
    for lo, hi in bins:
        pts = [p for p, r in centres if lo <= r < hi]
        if not pts:
            continue
        radius = max(r for _, r in centres if lo <= r < hi)
        idx = np.round(np.concatenate(pts) / np.array(grid.spacing) - [0, 0.5, 0.5]).astype(int)
        if z == 1:
            idx[:, 0] = 0
            keep = np.abs(np.concatenate(pts)[:, 0] - grid.z_mm.ravel()[0]) < radius
            idx = idx[keep]
        idx = idx[np.all((idx >= 0) & (idx < grid.shape), axis=1)]
        if len(idx) == 0:
            continue
        seeds = np.ones(grid.shape, bool)
        seeds[tuple(idx.T)] = False
        vessel |= ndi.distance_transform_edt(seeds, sampling=grid.spacing) < radius
    vessel &= lung > 0
    vessel &= (labels != Tissue.EMPHYSEMA) & (labels != Tissue.CONSOLIDATION)
    hu[vessel] = np.maximum(hu[vessel], 40.0)
