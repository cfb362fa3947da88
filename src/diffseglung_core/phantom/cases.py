"""Named phantom cases: diseased lungs and scans that test a lung mask.

A case sets which pathologies the lungs hold and where, and may add what a lung
mask must keep out (pleural fluid, the abdomen below the lungs) or keep in (a
solid mass against the pleura, dense lung that lines the chest wall). Pass its
name to :func:`~diffseglung_core.phantom.make_phantom` as ``case=``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..labels import Tissue
from .anatomy import AIR, BLOOD, HEART, PLEURA_MM, SOFT, cavity, cavity_centre_y, diaphragm
from .grid import Grid
from .lesions import PATHOLOGIES, FixedRegion

#: HU of pleural fluid (a transudate: homogeneous, near water).
EFFUSION_HU = 10.0
#: HU of a solid pleural-based mass (mean, and per unit of fine texture).
MASS_HU, MASS_TEXTURE_HU = 34.0, 5.0
#: Thickness (mm) of the visceral pleura, the line along the lung's edge over free pleural air.
VISCERAL_PLEURA_MM = 0.2
#: HU of compressed (atelectatic) lung next to an effusion.
ATELECTASIS_HU, ATELECTASIS_TEXTURE_HU = 28.0, 8.0


@dataclass(frozen=True)
class Case:
    """What a named phantom case draws.

    Attributes
    ----------
    name, description : str
    pathologies : tuple of str
        Pathologies drawn unless ``make_phantom`` is given others.
    fractions : dict
        Share of the lung per pathology, overriding :data:`~.lesions.FRACTIONS`.
    pattern : str
        Lesion distribution, see :data:`~.lesions.PATTERNS`.
    effusion_mm : (float, float)
        Greatest thickness (mm) of free pleural fluid in the right and left pleural space
        (0: none).
    mass : str or None
        A solid pleural-based mass against the ``"costal"``, ``"mediastinal"`` or
        ``"diaphragmatic"`` pleura of the right lung.
    z_range : (float, float)
        Nominal z (mm) of the inferior and superior edges of the field of view (the lung
        bases lie at about 30, the apices at about 270).
    blood_hu : float
        HU of blood in the heart, the great vessels and the pulmonary vessels (about
        40 without contrast, 150-400 with intravenous contrast).
    position : str
        DICOM PatientPosition of the scan: ``"HFS"`` (supine) or ``"HFP"`` (prone,
        free pleural fluid collects in front).
    pneumothorax_mm : float
        Greatest thickness (mm) of free air in the right pleural space (0: none).
    """

    name: str
    description: str
    pathologies: tuple[str, ...] = PATHOLOGIES
    fractions: dict[str, float] = field(default_factory=dict)
    pattern: str = "patchy"
    effusion_mm: tuple[float, float] = (0.0, 0.0)
    mass: Optional[str] = None
    z_range: tuple[float, float] = (0.0, 300.0)
    blood_hu: float = BLOOD
    position: str = "HFS"
    pneumothorax_mm: float = 0.0


_CASES = (
    Case("chest", "chest with scattered lesions of the four pathologies"),
    Case("contrast", "chest with scattered lesions after intravenous contrast (venous phase): "
                     "blood in the heart, great vessels and pulmonary vessels reads 250 HU, "
                     "as dense as bone", blood_hu=250.0),
    Case("white_lung", "both lungs mostly ground glass and consolidation (severe pneumonia): "
                       "dependent and peripheral consolidation with air bronchograms, ground "
                       "glass around it, a small aerated part in front",
         pathologies=("consolidation", "ggo"), fractions={"consolidation": 0.31, "ggo": 0.52},
         pattern="pneumonia"),
    Case("effusion", "large bilateral pleural effusions (right larger) with compressed "
                     "lung along them; scattered lesions", effusion_mm=(70.0, 48.0)),
    Case("effusion_right", "large right pleural effusion with compressed lung along it",
         effusion_mm=(75.0, 0.0)),
    Case("effusion_left", "large left pleural effusion with compressed lung along it",
         effusion_mm=(0.0, 70.0)),
    Case("effusion_prone", "large bilateral pleural effusions (right larger) of a patient "
                           "lying prone (DICOM PatientPosition HFP): the fluid collects in front",
         effusion_mm=(70.0, 48.0), position="HFP"),
    Case("pneumothorax", "right pneumothorax: free air in the pleural space along the anterior "
                         "and lateral chest wall (the non-dependent side of a supine patient), "
                         "the lung's edge behind it; scattered lesions", pneumothorax_mm=25.0),
    Case("pleural_mass", "solid mass in the right lung against the costal pleura", mass="costal"),
    Case("pleural_mass_mediastinal", "solid mass in the right lung against the mediastinal "
                                     "pleura (the right heart border)", mass="mediastinal"),
    Case("pleural_mass_diaphragmatic", "solid mass in the right lung resting on the diaphragm",
         mass="diaphragmatic"),
    Case("abdomen", "upper abdomen below the lungs (liver, spleen, kidneys, stomach, bowel "
                    "gas); no lung", pathologies=(), z_range=(-45.0, 15.0)),
    Case("chest_abdomen", "chest and upper abdomen: the field of view reaches 150 mm below "
                          "the lung bases", z_range=(-120.0, 300.0)),
)

#: The named cases, by name.
CASES: dict[str, Case] = {c.name: c for c in _CASES}


def get_case(name: str) -> Case:
    """The :class:`Case` called ``name`` (``ValueError`` if there is none)."""
    try:
        return CASES[name]
    except KeyError:
        raise ValueError(f"unknown case {name!r}; choose from {tuple(CASES)}") from None


def effusion(grid: Grid, pleural: np.ndarray, thickness_mm: tuple[float, float],
             prone: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Free pleural fluid in the dependent pleural spaces.

    For a supine patient the fluid lies along the posterior chest wall, in the
    posterior costophrenic recess and under the lung base: a crescent in the
    axial slices, thickest at the back and at the base, its meniscus thinning up
    the lateral wall; for a prone patient it lies in front. The lung it
    displaces is not drawn: the effusion takes those voxels.

    Parameters
    ----------
    grid : the phantom grid.
    pleural : (Z, Y, X) uint8, the pleural spaces (1 right, 2 left).
    thickness_mm : greatest thickness of the fluid (mm) on the right and left.
    prone : the patient lies prone.

    Returns
    -------
    fluid : (Z, Y, X) uint8
        1 right, 2 left effusion.
    depth : (Z, Y, X) float32
        How far (mm) each remaining pleural voxel lies inside the fluid's surface
        (negative: outside the fluid), for compressive atelectasis.
    """
    fluid = np.zeros(grid.shape, np.uint8)
    depth = np.full(grid.shape, -np.inf, np.float32)
    for side, tmax in ((1, thickness_mm[0]), (2, thickness_mm[1])):
        if tmax <= 0:
            continue
        index = np.flatnonzero(pleural == side)
        if index.size == 0:
            continue
        mm = grid.coords(index)
        z, y, x = mm[:, 0], mm[:, 1], mm[:, 2]
        rho, wall = cavity(x, y, z)
        cy = cavity_centre_y(z)
        y_wall = cy + (y - cy) / np.maximum(rho, 1e-3)            # the wall behind the point
        if prone:  # the same crescent, mirrored to the front
            y_wall = 2.0 * cy - y_wall
        dependent = np.clip((y_wall + 25.0) / 100.0, 0, 1) ** 1.5
        basal = np.clip(1 - (z - 60.0) / 260.0, 0.15, 1)
        thick = np.float32(tmax) * dependent * basal
        # over the dome: a subpulmonic layer, thickest on the dependent side
        above = z - diaphragm(x, y)
        d = np.maximum(thick - wall, 0.3 * thick - above)
        fluid.reshape(-1)[index[d > 0]] = side
        depth.reshape(-1)[index] = np.where(d > 0, 0.0, d) + np.where(thick > 8, 0.0, -np.inf)
    return fluid, depth


def pneumothorax(grid: Grid, pleural: np.ndarray, thickness_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Free air in the right pleural space of a supine patient.

    Air rises to the non-dependent side: a crescent along the anterior chest
    wall, thickest in front, thinning round the lateral wall, over the whole
    height of the lung but its apex and the recesses over the dome. The lung
    it displaces is not drawn: the air takes those voxels, and the lung's edge
    (the visceral pleura, a thin line) lies along it.

    Parameters
    ----------
    grid : the phantom grid.
    pleural : (Z, Y, X) uint8, the pleural spaces (1 right, 2 left).
    thickness_mm : greatest thickness of the air (mm).

    Returns
    -------
    air : (Z, Y, X) bool
        The free air.
    line : (Z, Y, X) bool
        Its voxels along the lung, which hold the visceral pleura
        (:func:`visceral_pleura_hu`).
    """
    air = np.zeros(grid.shape, bool)
    line = np.zeros(grid.shape, bool)
    index = np.flatnonzero(pleural == 1)
    if thickness_mm <= 0 or index.size == 0:
        return air, line
    mm = grid.coords(index)
    z, y, x = mm[:, 0], mm[:, 1], mm[:, 2]
    rho, wall = cavity(x, y, z)
    cy = cavity_centre_y(z)
    y_wall = cy + (y - cy) / np.maximum(rho, 1e-3)                # the wall beside the point
    front = np.clip((25.0 - y_wall) / 100.0, 0, 1) ** 1.5
    height = np.clip((z - 60.0) / 60.0, 0, 1) * np.clip((250.0 - z) / 40.0, 0, 1)
    above = z - diaphragm(x, y)
    depth = np.float32(thickness_mm) * front * height - wall      # > 0: inside the air
    free = (depth > 0) & (above > 10.0)
    air.reshape(-1)[index[free]] = True
    line.reshape(-1)[index[free & (depth <= grid.h)]] = True
    return air, line


def visceral_pleura_hu(grid: Grid) -> float:
    """HU of a voxel of free pleural air that holds the visceral pleura: a line of
    :data:`VISCERAL_PLEURA_MM` of soft tissue in one voxel (partial volume)."""
    return AIR + (SOFT - AIR) * min(1.0, VISCERAL_PLEURA_MM / grid.h)


def atelectasis(depth: np.ndarray, band_mm: float = 10.0) -> np.ndarray:
    """(Z, Y, X) bool: lung within ``band_mm`` of a thick effusion, compressed airless."""
    return (depth < 0) & (depth > -band_mm)


def _wall_point(start: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Where a ray (y, x) from ``start`` first leaves the thoracic cavity (mm, at its z)."""
    z = np.float32(start[0])
    lo, hi = 0.0, 400.0
    for _ in range(40):
        mid = (lo + hi) / 2
        p = start[1:] + mid * direction
        _, dist = cavity(np.float32(p[1]), np.float32(p[0]), z)
        lo, hi = (mid, hi) if float(dist) > 0 else (lo, mid)
    return np.array([start[0], *(start[1:] + lo * direction)])


def mass_centre(kind: str, radius: float, rng: np.random.Generator) -> np.ndarray:
    """Nominal centre (z, y, x) mm of a pleural-based mass of ``radius`` mm in the right lung.

    The centre lies ``0.35 radius`` inside the pleura, so the mass meets it on a
    broad base (the pleural space clips the rest).
    """
    inset = 0.35 * radius + PLEURA_MM
    if kind == "costal":
        # the posterolateral to lateral wall at mid height
        angle = rng.uniform(0.35, 0.62) * np.pi                      # from posterior
        direction = np.array([np.cos(angle), -np.sin(angle)])        # (y, x), towards patient right
        start = np.array([150.0, 0.0, -70.0])
        wall = _wall_point(start, direction)
        return wall - np.array([0.0, *(inset * direction)])
    if kind == "mediastinal":
        (cz, cy, cx), (az, ay, ax) = HEART
        z, y = 150.0, cy + rng.uniform(-12.0, 8.0)
        edge = cx - ax * np.sqrt(max(0.0, 1 - ((y - cy) / ay) ** 2 - ((z - cz) / az) ** 2))
        return np.array([z, y, edge - inset])
    if kind == "diaphragmatic":
        y, x = rng.uniform(-10.0, 20.0), rng.uniform(-85.0, -60.0)
        top = float(diaphragm(np.float32(x), np.float32(y)))
        return np.array([top + inset, y, x])
    raise ValueError(f"unknown mass site {kind!r}; choose costal, mediastinal or diaphragmatic")


def mass_region(grid: Grid, lung: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """(Z, Y, X) bool: a solid mass (3-6 cm) of the right lung against the ``kind`` pleura."""
    radius = float(rng.uniform(18.0, 28.0))
    centre = mass_centre(kind, radius, rng)
    semi = np.array([0.9, 1.0, 1.0]) * radius * rng.uniform(0.9, 1.1, 3)
    index = np.flatnonzero(lung == 1)
    mm = grid.coords(index).astype(np.float64)
    # a lobulated outline: the radius varies a little with direction
    d = (mm - centre) / semi
    r = np.sqrt((d ** 2).sum(axis=1))
    u = d / np.maximum(r[:, None], 1e-6)
    lobes = 1 + 0.08 * np.sin(3 * u[:, 2] + 2 * u[:, 1]) + 0.06 * np.cos(4 * u[:, 0] - u[:, 2])
    out = np.zeros(grid.shape, bool)
    out.reshape(-1)[index[r < lobes]] = True
    return out


def fixed_regions(points_index: np.ndarray, mass: Optional[np.ndarray],
                  compressed: Optional[np.ndarray]) -> tuple[FixedRegion, ...]:
    """The case's regions over the lung points (flat indices ``points_index``)."""
    out = []
    if mass is not None:
        out.append(FixedRegion(mass.reshape(-1)[points_index], MASS_HU, MASS_TEXTURE_HU,
                               int(Tissue.CONSOLIDATION), solid=True))
    if compressed is not None:
        out.append(FixedRegion(compressed.reshape(-1)[points_index], ATELECTASIS_HU,
                               ATELECTASIS_TEXTURE_HU, int(Tissue.CONSOLIDATION)))
    return tuple(out)
