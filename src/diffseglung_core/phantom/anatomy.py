"""The chest around the lungs: body, fat, chest wall, ribs, spine, mediastinum, airways.

Everything is drawn in the nominal frame of :mod:`.grid` (mm, ``y`` posterior,
``x`` patient left, ``z`` superior) with closed-form shapes evaluated on the
whole grid by broadcasting, so the cost grows with the voxel count only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .grid import Grid
from .trees import Segment, draw_tubes

# HU of the tissues drawn here.
AIR, FAT, SOFT, BLOOD, MARROW, CORTEX, CSF, DISC = -1000.0, -95.0, 45.0, 40.0, 230.0, 850.0, 10.0, 85.0

#: Lung base (lowest costophrenic recess) and apex, nominal z mm.
LUNG_BASE, LUNG_APEX = 32.0, 272.0
#: Thoracic cavity (inside the ribs) and body outline, semi-axes in x and y (mm).
CAVITY = (140.0, 102.0)
BODY = (168.0, 124.0)
#: Lungs: (centre x, centre y, semi-axis x, semi-axis y, diaphragm dome height), mm.
RIGHT_LUNG = (-70.0, 6.0, 66.0, 92.0, 80.0)
LEFT_LUNG = (72.0, 6.0, 64.0, 92.0, 62.0)
CARINA = np.array([205.0, 2.0, 0.0])


@dataclass
class Chest:
    """The chest without lung parenchyma.

    hu : (Z, Y, X) float32, tissue HU outside the lungs (inside: undefined).
    lung : (Z, Y, X) uint8, 1 right lung, 2 left lung.
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


def lung_shapes(grid: Grid) -> np.ndarray:
    """``(Z, Y, X)`` uint8 lung mask: 1 right (low x), 2 left.

    Each lung is an elliptic cylinder with a tapered apex, cut from below by a
    diaphragm dome, from inside by the mediastinum, heart and spine, and
    from outside by the chest wall.
    """
    z, y, x = grid.z, grid.y, grid.x
    s = (z - LUNG_BASE) / (LUNG_APEX - LUNG_BASE)
    taper = np.sqrt(np.clip(1 - (np.clip(s - 0.45, 0, None) / 0.55) ** 2, 0, 1)).astype(np.float32)
    cavity = _ellipse(x, y, 0, 0, *CAVITY) < 1
    media = mediastinum(grid)
    out = np.zeros(grid.shape, np.uint8)
    for label, (cx, cy, ax, ay, dome) in ((1, RIGHT_LUNG), (2, LEFT_LUNG)):
        # apex: narrower and more posterior-medial
        ccx = np.float32(cx) * (1 - 0.25 * np.clip(s - 0.55, 0, 1))
        ccy = np.float32(cy) + 25 * np.clip(s - 0.55, 0, 1)
        r = _ellipse(x, y, ccx, ccy, ax * taper + 1e-3, ay * taper + 1e-3)
        dome_z = LUNG_BASE + dome * np.clip(1 - _ellipse(x, y, cx, cy + 12, ax * 0.8, ay * 0.75) ** 2, 0, 1)
        inside = (r < 1) & (z > dome_z) & (s <= 1)
        inside &= cavity
        out[inside & ~media] = label
    return out


def mediastinum(grid: Grid) -> np.ndarray:
    """``(Z, Y, X)`` bool: mediastinum, heart and spine, where no lung may be."""
    z, y, x = grid.z, grid.y, grid.x
    column = _ellipse(x, y, 4, -6, 19, 96) < 1                       # central column
    heart = np.sqrt(((x - 20) / 58) ** 2 + ((y + 30) / 50) ** 2 + ((z - 100) / 56) ** 2) < 1
    spine = _ellipse(x, y, 0, 66, 34, 40) < 1
    return column | heart | spine


def _great_vessels() -> list[Segment]:
    """Aorta (ascending, arch, descending) and pulmonary trunk, nominal mm (z, y, x)."""
    p = lambda z, y, x: np.array([z, y, x], np.float64)  # noqa: E731
    return [
        (p(120, -30, 8), p(228, -22, 4), 15.0, 15.0),     # ascending aorta
        (p(228, -22, 4), p(236, 20, 14), 14.0, 13.0),     # arch
        (p(236, 20, 14), p(222, 46, 22), 13.0, 13.0),
        (p(222, 46, 22), p(-20, 50, 18), 13.0, 12.0),     # descending aorta
        (p(150, -30, 24), p(185, -18, 12), 14.0, 14.0),   # pulmonary trunk
        (p(30, -10, -20), p(105, 10, -20), 13.0, 13.0),   # inferior vena cava
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
    """Draw ribs in the chest wall: bands that descend anteriorly, cortex and marrow."""
    y, x = grid.y[0], grid.x[0]
    rho = _ellipse(x, y, 0, 0, *CAVITY)
    ky, kx = np.nonzero((rho > 0.97) & (rho < 1.25) & (_ellipse(x, y, 0, 0, *BODY) < 1))
    if ky.size == 0:
        return
    ys, xs, rr = y[ky, 0], x[0, kx], rho[ky, kx]
    depth = (rr - 1) * np.sqrt(xs ** 2 + ys ** 2) / np.maximum(rr, 1e-3)   # mm outside the cavity
    theta = np.abs(np.arctan2(xs / CAVITY[0], ys / CAVITY[1])) / np.pi   # 0 spine, 1 sternum
    drop = 95.0 * theta ** 1.2
    for k, zk in enumerate(grid.z.ravel()):
        values = hu[k, ky, kx]
        for rib in range(12):
            dz = zk - (LUNG_BASE + 30 + 21.0 * rib - drop)
            dist = np.sqrt(((depth - 7.0) / 4.5) ** 2 + (dz / 6.0) ** 2)
            bone = (dist < 1) & (theta > 0.08) & (theta < 0.85 - 0.025 * rib)
            if bone.any():
                values[bone] = np.where(dist[bone] > 0.6, CORTEX, MARROW)
        hu[k, ky, kx] = values


def _spine(grid: Grid, hu: np.ndarray) -> None:
    """Vertebral bodies with discs, the spinal canal, arches and spinous processes; sternum."""
    z, y, x = grid.z, grid.y, grid.x
    disc = (np.mod(z - 12.0, 30.0) < 5.0)
    body_r = _ellipse(x, y, 0, 66, 21, 18)
    hu[np.broadcast_to(body_r < 1, grid.shape) & ~disc] = MARROW
    hu[np.broadcast_to((body_r < 1) & (body_r > 0.86), grid.shape) & ~disc] = CORTEX
    hu[np.broadcast_to(body_r < 1, grid.shape) & disc] = DISC
    canal = _ellipse(x, y, 0, 94, 9, 8)
    arch = (canal > 1) & (_ellipse(x, y, 0, 95, 16, 14) < 1) & (y > 88)
    spinous = (np.abs(x) < 4) & (y > 100) & (y < 118)
    transverse = (np.abs(x) < 30) & (np.abs(y - 88) < 4)
    bone = np.broadcast_to(arch | spinous | transverse, grid.shape) & ~disc
    hu[bone] = CORTEX * 0.8
    hu[np.broadcast_to(canal < 1, grid.shape)] = CSF
    sternum = np.broadcast_to(_ellipse(x, y, 0, -112, 17, 6) < 1, grid.shape) & (z > 120) & (z < 262)
    hu[sternum] = 420.0


def build_chest(grid: Grid) -> Chest:
    """Draw the chest and return it with the lung mask and the hilar tree roots."""
    z, y, x = grid.z, grid.y, grid.x
    hu = np.full(grid.shape, AIR, np.float32)
    r_body = _ellipse(x, y, 0, 0, *BODY)
    body2d = r_body < 1
    fat_depth = 1 - 16.0 / BODY[1]
    hu[np.broadcast_to(body2d, grid.shape)] = FAT
    muscle = (r_body < fat_depth) & (_ellipse(x, y, 0, 0, *CAVITY) > 0.0)
    # fat planes between the chest-wall muscles, pectoral and paraspinal muscle bellies
    theta = np.arctan2(x / BODY[0], y / BODY[1])
    planes = (np.abs(np.sin(5 * theta)) < 0.12) & (r_body > 0.9 * fat_depth)
    bellies = ((_ellipse(np.abs(x), y, 62, -112, 55, 10) < 1)
               | (_ellipse(np.abs(x), y, 32, 96, 20, 22) < 1)) & (r_body < 0.99)
    hu[np.broadcast_to((muscle & ~planes) | bellies, grid.shape)] = SOFT
    # mediastinum: fat with heart, great vessels, oesophagus
    media = mediastinum(grid)
    hu[media] = FAT + 20
    heart = np.sqrt(((x - 20) / 58) ** 2 + ((y + 30) / 50) ** 2 + ((z - 100) / 56) ** 2)
    hu[heart < 0.93] = BLOOD
    vessels = np.zeros(grid.shape, np.float32)
    draw_tubes(vessels, grid, _great_vessels())
    hu += vessels * (BLOOD - hu)
    oes = np.broadcast_to(_ellipse(x, y, 6, 36, 8, 7) < 1, grid.shape) & (z > 60)
    hu[oes] = SOFT - 10
    _spine(grid, hu)
    _ribs(grid, hu)
    lung = lung_shapes(grid)
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
