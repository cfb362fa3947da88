"""The upper abdomen under the diaphragm: liver, spleen, stomach, kidneys, bowel.

The organs fill the abdominal cavity below the diaphragm (given to
:meth:`Abdomen.draw` as a boolean mask per slab), in the nominal frame of
:mod:`.grid`: the liver under the right dome, its left lobe reaching across
the midline in front; the stomach (gas anterior, fluid behind: the patient is
supine) and the spleen under the left dome; the splenic and hepatic flexures
and the transverse colon (gas, an air-fluid level, mottled stool with gas
bubbles); kidneys in their perirenal fat, the pancreas, the psoas muscles and,
lower down, loops of small bowel. Mesenteric fat fills the rest. Which loops
hold gas and the stool pattern follow the seed.
"""

from __future__ import annotations

import numpy as np

from .grid import Grid
from .trees import Segment, draw_tubes

#: HU of the abdominal tissues (non-contrast CT).
ORGAN_HU = {
    "liver": 58.0, "spleen": 48.0, "kidney": 32.0, "renal_sinus": -70.0, "urine": 8.0,
    "pancreas": 38.0, "gallbladder": 8.0, "muscle": 45.0, "bowel_wall": 40.0,
    "fluid": 14.0, "gas": -1000.0, "fat": -95.0, "perirenal_fat": -102.0,
}

_p = lambda z, y, x: np.array([z, y, x], np.float64)  # noqa: E731


def _chain(points, radii) -> list[Segment]:
    return [(points[i], points[i + 1], radii[i], radii[i + 1]) for i in range(len(points) - 1)]


#: Stomach: fundus under the left dome, body, antrum, pylorus.
STOMACH = _chain([_p(94, 16, 54), _p(66, -20, 66), _p(32, -46, 52), _p(8, -58, 22),
                  _p(0, -50, -8), _p(2, -36, -30)], [36.0, 36.0, 30.0, 24.0, 18.0, 13.0])
#: Gas collects in front of this y (mm) in the stomach and the colon (supine patient).
STOMACH_GAS_Y, COLON_GAS_Y = -30.0, -62.0
#: Colon: ascending, hepatic flexure, transverse, splenic flexure (high, under the left dome), descending.
COLON = _chain([_p(-230, 26, -98), _p(-70, 16, -100), _p(-22, -30, -96), _p(-35, -70, -50),
                _p(-30, -72, 20), _p(5, -62, 78), _p(66, -34, 104), _p(20, 28, 110),
                _p(-230, 40, 100)], [24.0, 25.0, 25.0, 23.0, 23.0, 23.0, 24.0, 20.0, 19.0])
#: Pancreas: head by the duodenum, body over the aorta, tail at the splenic hilum.
PANCREAS = _chain([_p(-2, 10, -34), _p(8, 6, 10), _p(22, 24, 72)], [13.0, 10.0, 9.0])
#: Kidneys: centre (z, y, x) and semi-axes (z, y, x), right lower than left.
KIDNEYS = {"right": ((-44.0, 56.0, -72.0), (52.0, 22.0, 27.0)),
           "left": ((-30.0, 56.0, 72.0), (52.0, 22.0, 27.0))}


def _ellipsoid(x, y, z, centre, semi) -> np.ndarray:
    (cz, cy, cx), (az, ay, ax) = centre, semi
    return np.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 + ((z - cz) / az) ** 2)


def _ellipse2(x, y, cx, cy, ax, ay) -> np.ndarray:
    return np.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2)


def _small_bowel(rng: np.random.Generator) -> list[tuple[list[Segment], float | None]]:
    """Loops of small bowel in the mid abdomen: (segments, gas level y or None) per loop."""
    loops = []
    lo, hi = np.array([-230.0, -80.0, -75.0]), np.array([35.0, 20.0, 85.0])
    for _ in range(22):
        pos = lo + rng.random(3) * (hi - lo)
        heading = rng.standard_normal(3)
        pts, radii = [pos.copy()], []
        r = float(rng.uniform(10.0, 13.0))
        for _ in range(int(rng.integers(5, 9))):
            heading = heading / np.linalg.norm(heading) + 0.9 * rng.standard_normal(3)
            heading /= np.linalg.norm(heading)
            step = heading * rng.uniform(22.0, 34.0)
            pos = np.clip(pos + step, lo, hi)
            pts.append(pos.copy())
            radii.append(r)
        radii.append(r)
        gas = float(np.mean([p[1] for p in pts]) - rng.uniform(0.0, 8.0)) if rng.random() < 0.35 else None
        loops.append((_chain(pts, radii), gas))
    return loops


class Abdomen:
    """Draws the abdominal organs into slabs of the phantom (see :func:`.anatomy.build_chest`).

    Parameters
    ----------
    rng : random generator for the bowel (gas-holding loops, stool pattern).
    """

    def __init__(self, rng: np.random.Generator):
        self.loops = _small_bowel(rng)
        # stool: a sum of random plane waves (about 12 mm), gas bubbles where it peaks
        self.waves = rng.standard_normal((8, 3))
        wavelength = rng.uniform(9.0, 15.0, (8, 1))
        self.waves *= (2 * np.pi / wavelength) / np.linalg.norm(self.waves, axis=1, keepdims=True)
        self.phases = rng.uniform(0, 2 * np.pi, 8)

    def _stool(self, pts: np.ndarray) -> np.ndarray:
        """HU (N,) of mottled stool with gas bubbles at nominal points (N, 3)."""
        v = np.cos(pts @ self.waves.T + self.phases).sum(axis=1) / 2.0
        out = -30.0 + 45.0 * v
        out[v > 1.25] = ORGAN_HU["gas"]
        return out.astype(np.float32)

    def draw(self, h: np.ndarray, sub: Grid, below: np.ndarray) -> None:
        """Draw the organs into ``h`` (a ``(n, Y, X)`` float32 HU slab on grid ``sub``) where ``below``."""
        z, y, x = sub.z, sub.y, sub.x
        shape = h.shape
        put = lambda mask, value: np.copyto(h, np.float32(value), where=mask & below)  # noqa: E731
        put(np.ones(shape, bool), ORGAN_HU["fat"])
        # liver: the right upper quadrant, the left lobe reaching across in front, high up
        left_edge = (-20.0 - 0.3 * y + 14.0 * np.exp(-((y - 10.0) / 25.0) ** 2)
                     + 30.0 * np.clip((z - 40.0) / 40.0, 0, 1)
                     + 40.0 * np.clip((5.0 - y) / 70.0, 0, 1) * np.clip((z - 20.0) / 50.0, 0, 1))
        bottom = -88.0 + 0.7 * (x + 135.0) + 0.25 * np.clip(-y - 30.0, 0, None)
        put((x < left_edge) & (z > bottom), ORGAN_HU["liver"])
        put(_ellipsoid(x, y, z, (55.0, 48.0, 96.0), (52.0, 44.0, 34.0)) < 1, ORGAN_HU["spleen"])
        occ = np.zeros(shape, np.float32)
        draw_tubes(occ, sub, PANCREAS)
        put(occ > 0.5, ORGAN_HU["pancreas"])
        for centre, semi in KIDNEYS.values():
            put(_ellipsoid(x, y, z, centre, tuple(1.5 * s for s in semi)) < 1, ORGAN_HU["perirenal_fat"])
        for side, (centre, semi) in KIDNEYS.items():
            r = _ellipsoid(x, y, z, centre, semi)
            put(r < 1, ORGAN_HU["kidney"])
            medial = 1.0 if side == "right" else -1.0
            sinus = _ellipsoid(x, y, z, (centre[0], centre[1] - 6.0, centre[2] + medial * 15.0),
                               (24.0, 10.0, 13.0))
            put((sinus < 1) & (r < 1), ORGAN_HU["renal_sinus"])
            pelvis = _ellipsoid(x, y, z, (centre[0] - 4.0, centre[1] - 6.0, centre[2] + medial * 19.0),
                                (12.0, 6.0, 8.0))
            put(pelvis < 1, ORGAN_HU["urine"])
        # crura of the diaphragm beside the aorta, psoas muscles lower down
        put((_ellipse2(np.abs(x), y, 21.0, 36.0, 6.0, 13.0) < 1) & (z > -50) & (z < 90), ORGAN_HU["muscle"])
        psoas = 6.0 + 0.15 * np.clip(15.0 - z, 0, 150)
        put((np.sqrt(((np.abs(x) - 40.0) / psoas) ** 2 + ((y - 62.0) / (1.1 * psoas)) ** 2) < 1) & (z < 15),
            ORGAN_HU["muscle"])
        put(_ellipsoid(x, y, z, (-8.0, -50.0, -50.0), (30.0, 14.0, 16.0)) < 1, ORGAN_HU["gallbladder"])
        # stomach: muscular wall, gas in front, fluid behind
        occ[:] = 0
        draw_tubes(occ, sub, STOMACH)
        put(occ > 0.5, ORGAN_HU["bowel_wall"])
        occ[:] = 0
        draw_tubes(occ, sub, STOMACH, scale=0.86)
        lumen = (occ > 0.5) & below
        put(lumen, ORGAN_HU["fluid"])
        put(lumen & (y < STOMACH_GAS_Y), ORGAN_HU["gas"])
        # colon: gas in front, a thin fluid level under it, stool with gas bubbles behind
        occ[:] = 0
        draw_tubes(occ, sub, COLON)
        put(occ > 0.5, ORGAN_HU["bowel_wall"])
        occ[:] = 0
        draw_tubes(occ, sub, COLON, scale=0.9)
        lumen = (occ > 0.5) & below
        if lumen.any():
            idx = np.nonzero(lumen)
            pts = np.stack([z.ravel()[idx[0]], y.ravel()[idx[1]], x.ravel()[idx[2]]], axis=1)
            h[idx] = self._stool(pts.astype(np.float64))
        put(lumen & (y < COLON_GAS_Y + 6.0), ORGAN_HU["fluid"])
        put(lumen & (y < COLON_GAS_Y), ORGAN_HU["gas"])
        # small bowel: fluid-filled loops, some with gas on top, in the mesenteric fat
        if float(z.min()) < 50.0:
            mesentery = h == np.float32(ORGAN_HU["fat"])
            occ[:] = 0
            for segs, _ in self.loops:
                draw_tubes(occ, sub, segs)
            put((occ > 0.5) & mesentery, ORGAN_HU["bowel_wall"])
            for segs, gas in self.loops:
                occ[:] = 0
                draw_tubes(occ, sub, segs, scale=0.8)
                lumen = (occ > 0.5) & mesentery
                put(lumen, ORGAN_HU["fluid"])
                if gas is not None:
                    put(lumen & (y < gas), ORGAN_HU["gas"])
