"""The chest around the lungs: body, chest wall, ribs, spine, mediastinum, diaphragm.

Everything is drawn in the nominal frame of :mod:`.grid` (mm, ``y`` posterior,
``x`` patient left, ``z`` superior) with closed-form shapes evaluated slab by
slab (a few slices at a time), so the cost grows with the voxel count only and
large phantoms stay within memory.

The thoracic cavity is the space inside the ribs: an elliptic cylinder with
deeper posterior gutters beside the spine, narrowing to the thoracic inlet
above the lung apices. The lungs fill it up to a thin pleural layer
(:data:`PLEURA_MM`) inside the ribs, bounded medially by the mediastinum, heart,
great vessels and spine, and from below by the diaphragm, whose two domes
(the right one higher) rise from costophrenic recesses that dip lowest
posteriorly. The abdomen under the diaphragm is drawn by :mod:`.abdomen`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .grid import Grid
from .trees import Segment, draw_tubes

# HU of the tissues drawn here.
AIR, FAT, SOFT, BLOOD, MARROW, CORTEX, CSF, DISC = -1000.0, -95.0, 45.0, 40.0, 230.0, 850.0, 10.0, 85.0
#: HU of the thin layer of parietal pleura and extrapleural fat between the lung and the ribs.
PLEURA = -20.0

#: Lung base (deepest posterior costophrenic recess) and apex, nominal z mm.
LUNG_BASE, LUNG_APEX = 30.0, 272.0
#: Thoracic cavity (inside the ribs) at the lung bases: semi-axes in x and y, centre y (mm).
CAVITY = (136.0, 96.0)
CAVITY_CY = -4.0
#: Body outline, semi-axes in x and y (mm).
BODY = (168.0, 124.0)
#: Thickness (mm) of the pleura and extrapleural fat between the lung and the cavity wall.
PLEURA_MM = 1.5
#: Depth (mm) of the ribs' inner surface outside the cavity wall, and rib thickness (mm).
RIB_INNER_MM, RIB_MM = 1.0, 9.0
#: Thickness of the diaphragm muscle between the lung and the abdominal organs (mm).
DIAPHRAGM_MM = 4.0
#: Diaphragm: height (z mm) of the right and left domes and of the central tendon under the heart.
DOME_RIGHT, DOME_LEFT, CENTRAL_TENDON = 114.0, 99.0, 86.0
#: Apex caps of the lungs: centre x (mm, right lung negative), centre y, semi-axes x, y, z.
APEX_CAP = (48.0, 8.0, 88.0, 100.0, 95.0)
#: The heart: centre (z, y, x) and semi-axes (mm); its base rests on the diaphragm.
HEART = ((125.0, -30.0, 20.0), (55.0, 50.0, 58.0))
CARINA = np.array([205.0, 2.0, 0.0])
#: Voxels per slab when evaluating shapes.
_SLAB_VOXELS = 1 << 21


@dataclass
class Chest:
    """The chest without lung parenchyma.

    hu : (Z, Y, X) float32, tissue HU outside the lungs (inside: undefined).
    lung : (Z, Y, X) uint8, 1 right lung, 2 left lung: the pleural spaces, lung everywhere
        unless a case puts fluid into them.
    mediastinum : (Z, Y, X) bool, where hilar vessels may run outside the lungs.
    hila : per side (1, 2), dict of nominal mm roots of the trees.
    """

    hu: np.ndarray
    lung: np.ndarray
    mediastinum: np.ndarray
    hila: dict[int, dict[str, np.ndarray]]


def _ellipse(x, y, cx, cy, ax, ay):
    """Normalised elliptic radius (float32, < 1 inside)."""
    dx = (x - np.float32(cx)) / np.float32(ax)
    dy = (y - np.float32(cy)) / np.float32(ay)
    return np.sqrt(dx * dx + dy * dy)


def slabs(grid: Grid, limit: int = _SLAB_VOXELS):
    """``(k0, k1)`` slice ranges of about ``limit`` voxels covering the grid."""
    per = max(1, limit // max(1, grid.shape[1] * grid.shape[2]))
    for k0 in range(0, grid.shape[0], per):
        yield k0, min(grid.shape[0], k0 + per)


def apex_profile(z: np.ndarray) -> np.ndarray:
    """0..1 width profile of the upper chest: 1 below the apex caps, 0 at the apex and above."""
    cz = LUNG_APEX - APEX_CAP[4]
    t = np.clip((z - np.float32(cz)) / np.float32(APEX_CAP[4]), 0, 1)
    return np.sqrt(1 - t * t).astype(np.float32)


def cavity_centre_y(z: np.ndarray) -> np.ndarray:
    """Centre ``y`` (mm) of the thoracic cavity at height ``z``: it moves back towards the inlet."""
    return np.float32(CAVITY_CY) + np.float32(16.0) * (1 - apex_profile(z))


def cavity(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Elliptic radius of the thoracic cavity (< 1 inside) and distance (mm) inside its wall.

    The cavity narrows above the lung bases into the thoracic inlet and has two
    posterior gutters beside the spine. The distance is positive inside,
    negative outside, a first-order estimate (exact on the wall).
    """
    s = apex_profile(z)
    ax = np.float32(APEX_CAP[0]) + np.float32(CAVITY[0] - APEX_CAP[0]) * s
    ay = np.float32(CAVITY[1]) * (np.float32(0.65) + np.float32(0.35) * s)
    cy = cavity_centre_y(z)
    gutter = np.float32(1) + np.float32(0.12) * np.exp(-((np.abs(x) - 0.38 * ax) / (0.28 * ax)) ** 2)
    ay = np.where(y > cy, ay * gutter, ay)
    dx, dy = x / ax, (y - cy) / ay
    rho = np.sqrt(dx * dx + dy * dy)
    grad = np.sqrt((dx / ax) ** 2 + (dy / ay) ** 2) / np.maximum(rho, 1e-3)
    dist = (1 - rho) / np.maximum(grad, 1e-6)
    return rho.astype(np.float32), dist.astype(np.float32)


def diaphragm(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Height (z mm) of the upper surface of the diaphragm over ``(y, x)``.

    The costophrenic recesses run along the cavity wall, lowest posteriorly
    (:data:`LUNG_BASE`) and highest anteriorly; from there the diaphragm rises
    steeply into the right dome (over the liver), the central tendon (under the
    heart) and the lower left dome (over the stomach and spleen).
    """
    _, dist = cavity(x, y, np.float32(0.0))
    yn = (y - np.float32(CAVITY_CY)) / np.float32(CAVITY[1])
    recess = 46.0 - 18.0 * yn + 2.0 * yn * yn
    recess = np.maximum(recess, LUNG_BASE)
    peak = (CENTRAL_TENDON + (DOME_RIGHT - CENTRAL_TENDON) * np.exp(-((x + 62.0) / 52.0) ** 2)
            + (DOME_LEFT - CENTRAL_TENDON) * np.exp(-((x - 66.0) / 46.0) ** 2))
    # the domes peak a little anterior of the middle and slope down long posteriorly
    peak = peak - 10.0 * np.clip((y - 10.0) / 80.0, 0, 1) ** 2
    width = 52.0 + 14.0 * np.clip(yn, -1, 1)
    t = np.clip(dist / width, 0, 1)
    rise = 1 - (1 - t) ** 2
    return (recess + (peak - recess) * rise).astype(np.float32)


def heart(x, y, z) -> np.ndarray:
    """Elliptic radius of the heart (< 1 inside; the diaphragm cuts it below)."""
    (cz, cy, cx), (az, ay, ax) = HEART
    return np.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 + ((z - cz) / az) ** 2)


def spine_block(x, y) -> np.ndarray:
    """``(Y, X)`` bool: vertebral body with its paravertebral tissue, posterior elements, rib heads."""
    body = _ellipse(x, y, 0, 66, 25, 22) < 1
    posterior = _ellipse(x, y, 0, 90, 36, 22) < 1
    return body | posterior


def mediastinum(x, y, z, above: np.ndarray) -> np.ndarray:
    """Bool: mediastinum, heart, descending aorta and spine, where no lung may be.

    ``above`` is where the point lies above the diaphragm (the central column and
    the heart end on it).
    """
    widen = np.clip((z - 180.0) / 70.0, 0, 1) * 12.0 * np.clip((y + 60.0) / 40.0, 0, 1)
    column = _ellipse(x, y, 4, -6, 19 + widen, 96) < 1
    aorta = (_ellipse(x, y, 20, 46, 17, 17) < 1) & (z < 232)
    return ((column | (heart(x, y, z) < 1) | aorta) & above) | spine_block(x, y)


def great_vessels() -> list[Segment]:
    """Aorta (ascending, arch, descending, abdominal), pulmonary trunk, venae cavae; nominal mm (z, y, x)."""
    p = lambda z, y, x: np.array([z, y, x], np.float64)  # noqa: E731
    return [
        (p(135, -30, 8), p(228, -22, 4), 15.0, 15.0),     # ascending aorta
        (p(228, -22, 4), p(236, 20, 14), 14.0, 13.0),     # arch
        (p(236, 20, 14), p(222, 46, 22), 13.0, 13.0),
        (p(222, 46, 22), p(60, 48, 18), 13.0, 12.0),      # descending aorta
        (p(60, 48, 18), p(-20, 38, 14), 12.0, 11.0),      # through the hiatus
        (p(-20, 38, 14), p(-220, 30, 10), 11.0, 10.0),    # abdominal aorta
        (p(150, -30, 24), p(185, -18, 12), 14.0, 14.0),   # pulmonary trunk
        (p(-220, 28, -24), p(-20, 30, -24), 11.0, 12.0),  # inferior vena cava
        (p(-20, 30, -24), p(60, 18, -24), 12.0, 13.0),    # intrahepatic
        (p(60, 18, -24), p(105, 4, -22), 13.0, 13.0),     # into the right atrium
        (p(310, -18, -22), p(170, -22, -18), 10.0, 11.0), # superior vena cava
    ]


def _airways() -> tuple[list[Segment], dict[int, np.ndarray]]:
    """Trachea and main bronchi (outside the lungs) and where the bronchial trees start."""
    p = lambda z, y, x: np.array([z, y, x], np.float64)  # noqa: E731
    right_end, left_end = p(184, 12, -46), p(176, 16, 48)
    segs = [(p(320, -14, 0), CARINA.astype(np.float64), 9.5, 9.0),
            (CARINA.astype(np.float64), right_end, 7.5, 6.8),
            (CARINA.astype(np.float64), left_end, 6.8, 6.2)]
    return segs, {1: right_end, 2: left_end}


def _ribs(grid: Grid, hu: np.ndarray) -> None:
    """Draw ribs in the chest wall: bands that descend anteriorly, cortex and marrow.

    Rib ``k`` (0 the twelfth, 11 the first) leaves the spine at ``z = LUNG_BASE
    + 10 + 21 k`` and descends forwards; the lowest are short (floating ribs).
    Its inner surface lies :data:`RIB_INNER_MM` outside the cavity wall.
    """
    y2, x2 = grid.y[0], grid.x[0]
    body = _ellipse(x2, y2, 0, 0, *BODY) < 1
    zs = grid.z.ravel()
    cached = None
    for k, zk in enumerate(zs):
        s = float(apex_profile(np.float32(zk)))
        if cached is None or s < 1:
            rho, dist = cavity(x2, y2, np.float32(zk))
            band = (dist < 0) & (dist > -(RIB_INNER_MM + RIB_MM + 2 * grid.h)) & body
            ky, kx = np.nonzero(band)
            if ky.size == 0:
                continue
            ys, xs = y2[ky, 0], x2[0, kx]
            depth = -dist[ky, kx]
            ax = APEX_CAP[0] + (CAVITY[0] - APEX_CAP[0]) * s
            ay = CAVITY[1] * (0.65 + 0.35 * s)
            cy = CAVITY_CY + 16.0 * (1 - s)
            theta = np.abs(np.arctan2(xs / ax, (ys - cy) / ay)) / np.pi   # 0 spine, 1 sternum
            cached = (ky, kx, depth, theta) if s >= 1 else None
        else:
            ky, kx, depth, theta = cached
        if ky.size == 0:
            continue
        values = hu[k, ky, kx]
        radial = (depth - RIB_INNER_MM - RIB_MM / 2) / (RIB_MM / 2)
        for rib in range(12):
            drop = (95.0 + 8.0 * max(0, 5 - rib)) * theta ** 1.2
            dz = zk - (LUNG_BASE + 10.0 + 21.0 * rib - drop)
            end = (0.42, 0.56)[rib] if rib < 2 else 0.85 - 0.02 * (rib - 2)
            r = np.sqrt(radial ** 2 + (dz / 6.0) ** 2)
            bone = (r < 1) & (theta > 0.08) & (theta < end)
            if bone.any():
                values[bone] = np.where(r[bone] > 0.6, CORTEX, MARROW)
        hu[k, ky, kx] = values


def _spine(x, y, z, hu: np.ndarray) -> None:
    """Vertebral bodies with discs, the spinal canal, arches and processes; the sternum (one slab)."""
    disc = (np.mod(z - 12.0, 30.0) < 5.0)
    shape = hu.shape
    body_r = _ellipse(x, y, 0, 66, 21, 18)
    hu[np.broadcast_to(body_r < 1, shape) & ~disc] = MARROW
    hu[np.broadcast_to((body_r < 1) & (body_r > 0.86), shape) & ~disc] = CORTEX
    hu[np.broadcast_to(body_r < 1, shape) & disc] = DISC
    canal = _ellipse(x, y, 0, 94, 9, 8)
    arch = (canal > 1) & (_ellipse(x, y, 0, 95, 16, 14) < 1) & (y > 88)
    spinous = (np.abs(x) < 4) & (y > 100) & (y < 118)
    transverse = (np.abs(x) < 30) & (np.abs(y - 88) < 4)
    bone = np.broadcast_to(arch | spinous | transverse, shape) & ~disc
    hu[bone] = CORTEX * 0.8
    hu[np.broadcast_to(canal < 1, shape)] = CSF
    # sternum and xiphoid, just in front of the cavity
    _, dist = cavity(np.float32(0.0), y, z)
    sternum = (np.abs(x) < 17 * np.sqrt(np.clip(1 - ((z - 190.0) / 90.0) ** 2, 0.05, 1))) \
        & (dist < -4) & (dist > -16) & (y < 0) & (z > 100) & (z < 262)
    hu[np.broadcast_to(sternum, shape)] = 420.0


def build_chest(grid: Grid, abdomen=None, *, blood_hu: float = BLOOD) -> Chest:
    """Draw the chest and return it with the pleural spaces and the hilar tree roots.

    Parameters
    ----------
    grid : the phantom grid.
    abdomen : callable ``(hu_slab, slab_grid, below) -> None`` that draws the organs under
        the diaphragm into one ``(n, Y, X)`` slab (``below``: bool, inside the abdominal
        cavity), or None for soft tissue there.
    blood_hu : float
        HU of the blood in the heart and the great vessels (contrast: 150-400).
    """
    y, x = grid.y, grid.x
    hu = np.full(grid.shape, AIR, np.float32)
    lung = np.zeros(grid.shape, np.uint8)
    media = np.zeros(grid.shape, bool)
    # closed-form 2D maps, shared by every slab
    r_body = _ellipse(x, y, 0, 0, *BODY)
    body2d = r_body < 1
    fat_depth = 1 - 16.0 / BODY[1]
    theta = np.arctan2(x / BODY[0], y / BODY[1])
    planes = (np.abs(np.sin(5 * theta)) < 0.12) & (r_body > 0.9 * fat_depth)
    bellies = ((_ellipse(np.abs(x), y, 62, -112, 55, 10) < 1)
               | (_ellipse(np.abs(x), y, 36, 108, 24, 14) < 1)) & (r_body < 0.99)
    muscle2d = ((r_body < fat_depth) & ~planes) | bellies
    dome = diaphragm(x, y)
    spine2d = spine_block(x, y)
    oes2d = _ellipse(x, y, 6, 36, 8, 7) < 1
    # great vessels: drawn in the HU, kept out of the lungs
    vessels = np.zeros(grid.shape, np.float32)
    draw_tubes(vessels, grid, great_vessels())
    for k0, k1 in slabs(grid):
        z = grid.axis(0, k0, k1)
        shape = (k1 - k0, *grid.shape[1:])
        h = hu[k0:k1]
        h[np.broadcast_to(body2d, shape)] = FAT
        h[np.broadcast_to(muscle2d, shape)] = SOFT
        rho, dist = cavity(x, y, z)
        above = z > dome
        # mediastinum (fat with heart and oesophagus) above the diaphragm
        med = mediastinum(x, y, z, above) | (vessels[k0:k1] > 0.3)
        med = np.broadcast_to(med, shape)
        h[med & ~np.broadcast_to(spine2d, shape)] = FAT + 20
        h[(heart(x, y, z) < 0.93) & above] = blood_hu
        h[np.broadcast_to(oes2d, shape) & (z > 60) & above] = SOFT - 10
        if abdomen is not None and float(z.min()) < DOME_RIGHT:
            below = (z < dome - DIAPHRAGM_MM) & (dist > 2.0) & ~spine2d
            below = np.broadcast_to(below, shape)
            if below.any():
                sub = Grid(shape, fov=(grid.step[0] * shape[0], *grid.fov[1:]),
                           z0=grid.z0 + k0 * grid.step[0])
                abdomen(h, sub, below)
        # the pleural spaces: the cavity inside the pleura, above the diaphragm, beside the mediastinum
        s = apex_profile(z)
        cap = _ellipse(np.abs(x), y, APEX_CAP[0], APEX_CAP[1],
                       APEX_CAP[2] * s + 1e-3, APEX_CAP[3] * np.sqrt(s) + 1e-3) < 1
        space = (dist > PLEURA_MM) & above & cap & ~med & (z < LUNG_APEX)
        h[np.broadcast_to(dist > 0, shape) & np.broadcast_to(dist <= PLEURA_MM, shape)
          & np.broadcast_to(body2d, shape) & ~med] = PLEURA
        junction = np.abs(x - 4.0) < 1.2                                  # anterior junction line
        lung[k0:k1][space & (x < 4.0) & ~junction] = 1
        lung[k0:k1][space & (x > 4.0) & ~junction] = 2
        media[k0:k1] = med
    hu += vessels * (blood_hu - hu) * (lung == 0)
    for k0, k1 in slabs(grid):
        z = grid.axis(0, k0, k1)
        _spine(x, y, z, hu[k0:k1])
    _ribs(grid, hu)
    # main airways: soft-tissue wall and air lumen, never part of the lung label
    segs, bronchi = _airways()
    wall = np.zeros(grid.shape, np.float32)
    draw_tubes(wall, grid, segs, scale=1.0)
    lumen = np.zeros(grid.shape, np.float32)
    draw_tubes(lumen, grid, segs, scale=0.78)
    lung[wall > 0.5] = 0
    hu += wall * (SOFT - hu)
    hu += lumen * (AIR - hu)
    hila = {
        1: {"artery": np.array([188.0, -4.0, -36.0]), "vein": np.array([150.0, 18.0, -34.0]),
            "airway": bronchi[1]},
        2: {"artery": np.array([196.0, 0.0, 38.0]), "vein": np.array([150.0, 20.0, 36.0]),
            "airway": bronchi[2]},
    }
    return Chest(hu=hu, lung=lung, mediastinum=media, hila=hila)
