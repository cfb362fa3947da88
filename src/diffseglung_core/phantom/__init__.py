"""Synthetic chest CT with known ground truth.

:func:`make_phantom` draws a chest CT in HU (body, fat, chest wall, ribs,
spine, mediastinum, heart, great vessels, trachea and main bronchi, two lungs
that fill the thoracic cavity, with branching vessels and airways, the
diaphragm and the upper abdomen under it) and lesions of the four pathologies
with their typical densities and textures, then blurs it (partial volume) and
adds CT noise. It returns the ground truth with it: a label map in the
project's convention (:class:`~diffseglung_core.labels.Tissue`) and a
left/right lung mask. Deterministic from the seed.

Named cases (:data:`CASES`, ``make_phantom(case=...)``) draw diseased lungs and
scans that test a lung mask:

``"chest"`` (default)
    scattered lesions of the four pathologies.
``"contrast"``
    the chest after intravenous contrast: blood in the heart, the great vessels
    and the pulmonary vessels reads 250 HU, as dense as bone (the same anatomy
    and lesions as ``"chest"`` with the same seed).
``"white_lung"``
    both lungs mostly GGO (about 45-60 %) and consolidation (25-40 %),
    dependent and peripheral, with air bronchograms; a small aerated part.
``"effusion"``, ``"effusion_right"``, ``"effusion_left"``
    large free pleural effusions (about 10 HU) along the posterior chest wall,
    with a band of compressed lung (consolidation) along them. The fluid is
    not lung: it is returned as :attr:`Phantom.effusion`.
``"effusion_prone"``
    the bilateral effusions of a patient lying prone (the scan's DICOM
    PatientPosition, ``volume.source.metadata["patient_position"]``, is
    ``"HFP"``): the fluid lies along the anterior chest wall.
``"pneumothorax"``
    free air (-1000 HU, no vessels) in the right pleural space along the
    anterior and lateral chest wall, up to 25 mm thick: not lung, returned as
    :attr:`Phantom.pneumothorax`.
``"pleural_mass"``, ``"pleural_mass_mediastinal"``, ``"pleural_mass_diaphragmatic"``
    a solid mass (about 34 HU, 3-6 cm) in the right lung against the costal
    pleura, the mediastinal pleura or the diaphragm, labelled consolidation;
    returned as :attr:`Phantom.mass`.
``"abdomen"``
    a slab of upper abdomen below the lungs (liver, spleen, kidneys, stomach,
    colon with gas): no lung at all.
``"chest_abdomen"``
    the chest with the field of view reaching 150 mm below the lung bases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage as ndi

from ..progress import ProgressCallback, report
from ..volume import CTVolume, ScanSource
from .abdomen import Abdomen
from .anatomy import AIR, build_chest
from .cases import (
    CASES,
    EFFUSION_HU,
    Case,
    atelectasis,
    effusion,
    fixed_regions,
    get_case,
    mass_region,
    pneumothorax,
    visceral_pleura_hu,
)
from .grid import NOMINAL_FOV, Grid
from .lesions import FRACTIONS, PATHOLOGIES, LungPoints, draw_parenchyma
from .noise import ct_noise
from .trees import draw_tubes, grow_tree

__all__ = ["Phantom", "make_phantom", "PATHOLOGIES", "FRACTIONS", "CASES", "Case", "default_spacing"]

# one random stream each; new streams go at the end so that the others do not move
_STREAMS = ("anatomy", "trees", "healthy", *PATHOLOGIES, "noise", "abdomen", "case")


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
    effusion : (Z, Y, X) uint8 ndarray or None
        Pleural fluid, 1 right, 2 left (0 elsewhere); not lung (0 in ``labels`` and
        ``lung``). None when the case has no effusion.
    mass : (Z, Y, X) bool ndarray or None
        A solid pleural-based mass, part of the lung (labelled consolidation). None when
        the case has no mass.
    pneumothorax : (Z, Y, X) bool ndarray or None
        Free air in the pleural space; not lung (0 in ``labels`` and ``lung``). None
        when the case has none.
    case : str
        The case's name (see :data:`CASES`).
    """

    volume: CTVolume
    labels: np.ndarray
    lung: np.ndarray
    effusion: Optional[np.ndarray] = None
    mass: Optional[np.ndarray] = None
    case: str = "chest"
    pneumothorax: Optional[np.ndarray] = None


def default_spacing(shape: Sequence[int],
                    z_range: Optional[Sequence[float]] = None) -> tuple[float, float, float]:
    """Voxel size (mm) of a 350 x 350 mm (y, x) field of view sampled on ``shape``.

    Along z the grid spans ``z_range`` (nominal mm, default ``(0, 300)``: the chest).
    """
    lo, hi = (0.0, NOMINAL_FOV[0]) if z_range is None else (float(z_range[0]), float(z_range[1]))
    fov = (hi - lo, *NOMINAL_FOV[1:])
    return tuple(f / int(n) for f, n in zip(fov, shape))  # type: ignore[return-value]


def make_phantom(shape: Sequence[int] = (48, 128, 128), spacing: Optional[Sequence[float]] = None, *,
                 seed: int = 0, pathologies: Optional[Sequence[str]] = None,
                 noise_hu: float = 18.0, blur_mm: float = 0.7,
                 fractions: Optional[dict[str, float]] = None,
                 progress: Optional[ProgressCallback] = None,
                 case: str = "chest", z_range: Optional[Sequence[float]] = None) -> Phantom:
    """Make a synthetic chest CT with known lung, lesion and tissue labels.

    The grid always covers the same body (by default 300 mm along z from just
    below the lung bases to above the apices, a field of view the body fills to
    83-96 %, the patient's size varying with the seed); ``shape`` only sets how
    finely it is sampled.

    Parameters
    ----------
    shape : (Z, Y, X) int
        Grid size; ``(1, Y, X)`` gives one axial slice through the middle of the z range
        (for the chest: the mid chest).
    spacing : (z, y, x) float, optional
        Voxel size in mm written in the volume (default :func:`default_spacing`).
    seed : int
        Everything is a deterministic function of ``seed`` (and the other
        arguments); leaving a pathology out does not move the others.
    pathologies : sequence of str, optional
        Any of ``"emphysema"``, ``"ggo"``, ``"fibrosis"``, ``"consolidation"``
        (default: the case's, all four for ``"chest"``).
    noise_hu : float
        Standard deviation of the added CT noise, HU.
    blur_mm : float
        Standard deviation of the Gaussian partial-volume blur, mm.
    fractions : dict, optional
        Share of the lung per pathology (default about 7-10 % each, see
        :data:`FRACTIONS`, or the case's), each varied by +-15 % with the seed.
    progress : ProgressCallback, optional
        Called as ``progress(done, total, stage)``.
    case : str
        A name from :data:`CASES` (see the module's documentation).
    z_range : (float, float), optional
        Nominal z (mm) of the inferior and superior edges of the field of view
        (default: the case's; for the chest ``(0, 300)``, the lung bases lying at
        about 30 and the apices at about 270; below 0 lies the abdomen).

    Returns
    -------
    Phantom
        ``volume`` (HU float32), ``labels`` and ``lung`` (uint8), all ``(Z, Y, X)``, and
        the case's ``effusion`` and ``mass`` masks.
    """
    spec: Case = get_case(case)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be 3 positive ints (z, y, x), got {shape}")
    if min(shape[1:]) < 16:
        raise ValueError(f"shape {shape}: need at least 16 voxels in y and x")
    pathologies = tuple(spec.pathologies if pathologies is None else pathologies)
    unknown = set(pathologies) - set(PATHOLOGIES)
    if unknown:
        raise ValueError(f"unknown pathologies {sorted(unknown)}; choose from {PATHOLOGIES}")
    z_lo, z_hi = (float(v) for v in (spec.z_range if z_range is None else z_range))
    if not z_hi > z_lo:
        raise ValueError(f"z_range must run upwards, got {(z_lo, z_hi)}")
    nominal = default_spacing(shape, (z_lo, z_hi))
    spacing = nominal if spacing is None else tuple(float(s) for s in spacing)
    seqs = np.random.SeedSequence(int(seed)).spawn(len(_STREAMS))
    rngs = {name: np.random.default_rng(s) for name, s in zip(_STREAMS, seqs)}
    # patient size and build vary with the seed: the body spans 83-96 % of the field of view
    size = rngs["anatomy"].uniform(1.0, 1.15, 2)
    grid = Grid(shape, fov=(z_hi - z_lo, NOMINAL_FOV[1] * size[0], NOMINAL_FOV[2] * size[1]), z0=z_lo)
    total = 6

    report(progress, 0, total, "anatomy")
    chest = build_chest(grid, Abdomen(rngs["abdomen"]).draw, blood_hu=spec.blood_hu)
    hu, lung = chest.hu, chest.lung
    fluid = compressed = None
    if max(spec.effusion_mm) > 0:
        fluid, depth = effusion(grid, lung, spec.effusion_mm, prone=spec.position in ("HFP", "FFP"))
        lung[fluid > 0] = 0
        hu[fluid > 0] = EFFUSION_HU
        compressed = atelectasis(depth) & (lung > 0)
        del depth
    free_air = None
    if spec.pneumothorax_mm > 0:
        free_air, visceral = pneumothorax(grid, lung, spec.pneumothorax_mm)
        lung[free_air] = 0
        hu[free_air] = AIR
        hu[visceral] = visceral_pleura_hu(grid)
    mass = mass_region(grid, lung, spec.mass, rngs["case"]) if spec.mass else None

    report(progress, 1, total, "lung parenchyma and lesions")
    pts = _lung_points(grid, lung)
    par = draw_parenchyma(grid, pts, pathologies, rngs, {**spec.fractions, **(fractions or {})},
                          pattern=spec.pattern, fixed=fixed_regions(pts.index, mass, compressed))
    flat = hu.reshape(-1)
    flat[pts.index] = par.hu
    labels = np.zeros(shape, np.uint8)
    labels.reshape(-1)[pts.index] = par.labels

    report(progress, 2, total, "vessels and airways")
    _draw_trees(grid, hu, lung, labels, chest, pts, par, rngs["trees"], spec.blood_hu)

    report(progress, 4, total, "blur and noise")
    sigma = [0.0 if n == 1 else blur_mm / s for n, s in zip(shape, spacing)]
    if blur_mm > 0 and any(s > 0.05 for s in sigma):
        hu = ndi.gaussian_filter(hu, sigma, output=np.float32)
    hu += ct_noise(shape, spacing, noise_hu, rngs["noise"])
    np.clip(hu, -1024.0, 3071.0, out=hu)

    # world z: the chest's mid height (nominal z = 150) at 0, whatever the z range
    z_first = (z_lo + nominal[0] / 2 - NOMINAL_FOV[0] / 2) * spacing[0] / nominal[0]
    origin = (spacing[2] * (shape[2] - 1) / 2, spacing[1] * (shape[1] - 1) / 2, z_first)
    what = ", ".join(pathologies) or "no pathology"
    source = ScanSource(format="phantom", native_shape=shape,
                        description=f"synthetic chest phantom, seed {seed}, "
                                    + (what if case == "chest" else f"{case}, {what}"),
                        metadata={"seed": int(seed), "pathologies": list(pathologies),
                                  "noise_hu": float(noise_hu), "blur_mm": float(blur_mm),
                                  "case": case, "z_range": [z_lo, z_hi],
                                  "patient_position": spec.position})
    volume = CTVolume.from_array(hu, spacing, origin=origin, source=source)
    report(progress, total, total, "done")
    return Phantom(volume=volume, labels=labels, lung=lung, effusion=fluid, mass=mass, case=case,
                   pneumothorax=free_air)


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
                par, rng: np.random.Generator, blood_hu: float) -> None:
    """Pulmonary arteries and veins (blood of ``blood_hu``), bronchi (wall and air), air bronchograms."""
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
    solid = pts.index[par.solid] if par.solid is not None else pts.index[:0]
    # vessels: blood, but none through bullae or masses
    draw_tubes(occ, grid, vessels)
    occ[~inside] = 0
    occ.reshape(-1)[pts.index[par.avascular]] = 0
    hu += occ * (blood_hu - hu)
    # bronchi: a thin soft-tissue wall around an air lumen, none through a mass
    occ[:] = 0
    draw_tubes(occ, grid, airways)
    occ[~inside] = 0
    occ.reshape(-1)[solid] = 0
    hu += occ * (-60.0 - hu)
    occ[:] = 0
    draw_tubes(occ, grid, airways, scale=0.72)
    occ[~inside] = 0
    occ.reshape(-1)[solid] = 0
    hu += occ * (-1000.0 - hu)
    # air bronchograms: air lumens inside consolidation only
    if par.bronchograms:
        occ[:] = 0
        draw_tubes(occ, grid, par.bronchograms)
        occ[labels != 5] = 0
        hu += occ * (-960.0 - hu)
