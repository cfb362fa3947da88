"""Synthetic chest CT with known ground truth.

:func:`make_phantom` draws a chest CT in HU (body, fat, chest wall, ribs,
spine, mediastinum, heart, great vessels, trachea and main bronchi, two lungs
with branching vessels and airways) and lesions of the four pathologies with
their typical densities and textures, then blurs it (partial volume) and adds
CT noise. It returns the ground truth with it: a label map in the project's
convention (:class:`~diffseglung_core.labels.Tissue`) and a left/right lung
mask. Deterministic from the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage as ndi

from ..progress import ProgressCallback, report
from ..volume import CTVolume, ScanSource
from .anatomy import BLOOD, build_chest
from .grid import NOMINAL_FOV, Grid
from .lesions import FRACTIONS, PATHOLOGIES, LungPoints, draw_parenchyma
from .noise import ct_noise
from .trees import draw_tubes, grow_tree

__all__ = ["Phantom", "make_phantom", "PATHOLOGIES", "FRACTIONS", "default_spacing"]

_STREAMS = ("anatomy", "trees", "healthy", *PATHOLOGIES, "noise")


@dataclass(frozen=True)
class Phantom:
    """A synthetic chest CT and its ground truth.

    Attributes
    ----------
    volume : CTVolume
        HU float32 ``(Z, Y, X)`` in the canonical layout, ``source.format == "phantom"``.
    labels : (Z, Y, X) uint8 ndarray
        0 outside lung, 1 healthy, 2 GGO, 3 fibrosis, 4 emphysema, 5 consolidation:
        the lesion regions before blur and noise.
    lung : (Z, Y, X) uint8 ndarray
        0 outside, 1 right lung (low ``x``), 2 left lung.
    """

    volume: CTVolume
    labels: np.ndarray
    lung: np.ndarray


def default_spacing(shape: Sequence[int]) -> tuple[float, float, float]:
    """Voxel size (mm) of a 300 x 350 x 350 mm (z, y, x) chest field of view sampled on ``shape``."""
    return tuple(f / int(n) for f, n in zip(NOMINAL_FOV, shape))  # type: ignore[return-value]


def make_phantom(shape: Sequence[int] = (48, 128, 128), spacing: Optional[Sequence[float]] = None, *,
                 seed: int = 0, pathologies: Sequence[str] = PATHOLOGIES,
                 noise_hu: float = 18.0, blur_mm: float = 0.7,
                 fractions: Optional[dict[str, float]] = None,
                 progress: Optional[ProgressCallback] = None) -> Phantom:
    """Make a synthetic chest CT with known lung, lesion and tissue labels.

    The grid always covers the same chest (300 mm along z, a field of view the
    body fills to 83-96 %, the patient's size varying with the seed); ``shape``
    only sets how finely it is sampled.

    Parameters
    ----------
    shape : (Z, Y, X) int
        Grid size; ``(1, Y, X)`` gives one axial slice through the mid chest.
    spacing : (z, y, x) float, optional
        Voxel size in mm written in the volume (default :func:`default_spacing`).
    seed : int
        Everything is a deterministic function of ``seed`` (and the other
        arguments); leaving a pathology out does not move the others.
    pathologies : sequence of str
        Any of ``"emphysema"``, ``"ggo"``, ``"fibrosis"``, ``"consolidation"``.
    noise_hu : float
        Standard deviation of the added CT noise, HU.
    blur_mm : float
        Standard deviation of the Gaussian partial-volume blur, mm.
    fractions : dict, optional
        Share of the lung per pathology (default about 7-10 % each, see
        :data:`FRACTIONS`), each varied by +-15 % with the seed.
    progress : ProgressCallback, optional
        Called as ``progress(done, total, stage)``.

    Returns
    -------
    Phantom
        ``volume`` (HU float32), ``labels`` and ``lung`` (uint8), all ``(Z, Y, X)``.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be 3 positive ints (z, y, x), got {shape}")
    if min(shape[1:]) < 16:
        raise ValueError(f"shape {shape}: need at least 16 voxels in y and x")
    unknown = set(pathologies) - set(PATHOLOGIES)
    if unknown:
        raise ValueError(f"unknown pathologies {sorted(unknown)}; choose from {PATHOLOGIES}")
    spacing = default_spacing(shape) if spacing is None else tuple(float(s) for s in spacing)
    seqs = np.random.SeedSequence(int(seed)).spawn(len(_STREAMS))
    rngs = {name: np.random.default_rng(s) for name, s in zip(_STREAMS, seqs)}
    # patient size and build vary with the seed: the body spans 83-96 % of the field of view
    size = rngs["anatomy"].uniform(1.0, 1.15, 2)
    grid = Grid(shape, fov=(NOMINAL_FOV[0], NOMINAL_FOV[1] * size[0], NOMINAL_FOV[2] * size[1]))
    total = 6

    report(progress, 0, total, "anatomy")
    chest = build_chest(grid)
    hu, lung = chest.hu, chest.lung

    report(progress, 1, total, "lung parenchyma and lesions")
    pts = _lung_points(grid, lung)
    par = draw_parenchyma(grid, pts, tuple(pathologies), rngs, fractions)
    flat = hu.reshape(-1)
    flat[pts.index] = par.hu
    labels = np.zeros(shape, np.uint8)
    labels.reshape(-1)[pts.index] = par.labels

    report(progress, 2, total, "vessels and airways")
    _draw_trees(grid, hu, lung, labels, chest, pts, par, rngs["trees"])

    report(progress, 4, total, "blur and noise")
    sigma = [0.0 if n == 1 else blur_mm / s for n, s in zip(shape, spacing)]
    if blur_mm > 0 and any(s > 0.05 for s in sigma):
        hu = ndi.gaussian_filter(hu, sigma, output=np.float32)
    hu += ct_noise(shape, spacing, noise_hu, rngs["noise"])
    np.clip(hu, -1024.0, 3071.0, out=hu)

    origin = (spacing[2] * (shape[2] - 1) / 2, spacing[1] * (shape[1] - 1) / 2,
              -spacing[0] * (shape[0] - 1) / 2)
    source = ScanSource(format="phantom", native_shape=shape,
                        description=f"synthetic chest phantom, seed {seed}, "
                                    f"{', '.join(pathologies) or 'no pathology'}",
                        metadata={"seed": int(seed), "pathologies": list(pathologies),
                                  "noise_hu": float(noise_hu), "blur_mm": float(blur_mm)})
    volume = CTVolume.from_array(hu, spacing, origin=origin, source=source)
    report(progress, total, total, "done")
    return Phantom(volume=volume, labels=labels, lung=lung)


def _lung_points(grid: Grid, lung: np.ndarray) -> LungPoints:
    """Lung voxels with their nominal position, side and distance to the lung border."""
    index = np.flatnonzero(lung)
    mm = grid.coords(index)
    # distance to the border on a grid of about 2 mm: cheap for large phantoms
    f = [max(1, int(np.ceil(2.0 / s - 1e-3))) if n > 1 else 1 for s, n in zip(grid.step, grid.shape)]
    small = lung[::f[0], ::f[1], ::f[2]] > 0
    step = [s * k for s, k in zip(grid.step, f)]
    padded = np.pad(small, [(0, 0) if n == 1 else (1, 1) for n in grid.shape])
    dist = ndi.distance_transform_edt(padded, sampling=step).astype(np.float32)
    dist = dist[tuple(slice(0, None) if n == 1 else slice(1, -1) for n in grid.shape)]
    zyx = np.unravel_index(index, grid.shape)
    coords = [(zyx[a] - (f[a] - 1) / 2) / f[a] for a in range(3)]
    pleura = ndi.map_coordinates(dist, coords, order=1, mode="nearest").astype(np.float32)
    return LungPoints(index=index, mm=mm, side=lung.reshape(-1)[index], pleura=pleura)


def _draw_trees(grid: Grid, hu: np.ndarray, lung: np.ndarray, labels: np.ndarray, chest, pts: LungPoints,
                par, rng: np.random.Generator) -> None:
    """Pulmonary arteries and veins (blood), bronchi (wall and air), air bronchograms."""
    occ = np.zeros(grid.shape, np.float32)
    n_targets = int(np.clip(len(pts.index) // 20, 16, 900))
    # a target lies anywhere in its voxel along z (thick slices: vessels cross them obliquely)
    jitter = min(grid.step[0] / 2, 40.0)

    def targets(own: np.ndarray, n: int) -> np.ndarray:
        out = pts.mm[rng.choice(own, size=min(n, own.size), replace=False)].astype(np.float64)
        out[:, 0] += rng.uniform(-jitter, jitter, len(out))
        return out

    vessels, airways = [], []
    for side in (1, 2):
        own = np.flatnonzero(pts.side == side)
        if own.size < 4:
            continue
        roots = chest.hila[side]
        for kind, radius in (("artery", 8.5), ("vein", 7.5)):
            vessels += grow_tree(roots[kind], radius, targets(own, n_targets))
        airways += grow_tree(roots["airway"], 5.5, targets(own, n_targets // 4), min_radius=1.0)
    inside = (lung > 0) | chest.mediastinum
    # vessels: blood, but none through bullae
    draw_tubes(occ, grid, vessels)
    occ[~inside] = 0
    occ.reshape(-1)[pts.index[par.avascular]] = 0
    hu += occ * (BLOOD - hu)
    # bronchi: a thin soft-tissue wall around an air lumen
    occ[:] = 0
    draw_tubes(occ, grid, airways)
    occ[~inside] = 0
    hu += occ * (-60.0 - hu)
    occ[:] = 0
    draw_tubes(occ, grid, airways, scale=0.72)
    occ[~inside] = 0
    hu += occ * (-1000.0 - hu)
    # air bronchograms: air lumens inside consolidation only
    if par.bronchograms:
        occ[:] = 0
        draw_tubes(occ, grid, par.bronchograms)
        occ[labels != 5] = 0
        hu += occ * (-960.0 - hu)
