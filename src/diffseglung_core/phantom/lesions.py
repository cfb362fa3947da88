"""Lung parenchyma and the four pathologies, drawn on the lung voxels only.

Each pathology claims a target fraction of the lung: a smooth score (a
spatial prior plus a random field) is computed on every free lung voxel and
the top-scoring voxels become the lesion, so regions are compact, their size
does not depend on the grid, and a class is present whenever it is asked for.
The label of a voxel is the lesion region before blur and noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from ..labels import Tissue
from .anatomy import LUNG_BASE
from .grid import Grid
from .noise import coarse_field, sample_field
from .trees import Segment, grow_tree

#: Pathologies a phantom may hold, in the order they claim lung.
PATHOLOGIES = ("consolidation", "fibrosis", "ggo", "emphysema")

#: Default share of the lung per pathology.
FRACTIONS = {"consolidation": 0.07, "fibrosis": 0.09, "ggo": 0.10, "emphysema": 0.09}

#: Lesion distributions: ``"patchy"`` (scattered lesions of every class) or ``"pneumonia"``
#: (diffuse GGO and consolidation, dependent and peripheral, as in severe viral pneumonia).
PATTERNS = ("patchy", "pneumonia")
#: Least share of the lung left aerated by the pathologies together.
MIN_AERATED = 0.08


@dataclass
class LungPoints:
    """The lung voxels as a point cloud.

    index : (N,) flat voxel indices; mm : (N, 3) nominal (z, y, x) mm;
    side : (N,) 1 right, 2 left; pleura : (N,) distance to the lung border (mm).
    """

    index: np.ndarray
    mm: np.ndarray
    side: np.ndarray
    pleura: np.ndarray


@dataclass
class Parenchyma:
    """HU and labels of every lung point, and tubes that belong to lesions.

    hu : (N,) float32; labels : (N,) uint8; avascular : (N,) bool, where no
    vessel runs (bullae, solid masses); solid : (N,) bool, where neither vessels nor
    airways run (masses); bronchograms : air-filled branches inside consolidation.
    """

    hu: np.ndarray
    labels: np.ndarray
    avascular: np.ndarray
    bronchograms: list[Segment]
    solid: np.ndarray | None = None


@dataclass
class FixedRegion:
    """Lung points a case fills before the pathologies claim theirs.

    mask : (N,) bool over the lung points; hu : mean HU; texture_hu : HU per unit of the
    fine texture; label : ground-truth class; solid : no vessels or airways through it.
    """

    mask: np.ndarray
    hu: float
    texture_hu: float
    label: int
    solid: bool = False


def _claim(score: np.ndarray, free: np.ndarray, count: int) -> np.ndarray:
    """Boolean mask of the ``count`` free points with the highest score."""
    cand = np.flatnonzero(free)
    count = int(min(max(count, 0), cand.size))
    out = np.zeros(free.shape, bool)
    if count:
        top = np.argpartition(-score[cand], count - 1)[:count]
        out[cand[top]] = True
    return out


def _edge_weight(score: np.ndarray, region: np.ndarray, width: float) -> np.ndarray:
    """A soft 0..1 ramp across the border of ``region`` (0.5 on it), ``width`` in score units."""
    if not region.any():
        return np.zeros(score.shape, np.float32)
    threshold = float(score[region].min())
    return np.clip(0.5 + (score - threshold) / width, 0.0, 1.0).astype(np.float32)


def _pick(rng: np.random.Generator, pts: LungPoints, where: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """A random point (3,) among ``where`` (else among ``fallback``)."""
    cand = np.flatnonzero(where)
    if cand.size == 0:
        cand = np.flatnonzero(fallback)
    return pts.mm[rng.choice(cand)].astype(np.float64)


def _dist(pts: LungPoints, centre: np.ndarray) -> np.ndarray:
    return np.sqrt(((pts.mm - centre.astype(np.float32)) ** 2).sum(axis=1))


def draw_parenchyma(grid: Grid, pts: LungPoints, pathologies, rngs: dict[str, np.random.Generator],
                    fractions: dict[str, float] | None = None, *, pattern: str = "patchy",
                    fixed: tuple[FixedRegion, ...] = ()) -> Parenchyma:
    """Healthy lung with texture, then each requested pathology with its own texture.

    Parameters
    ----------
    grid : the phantom grid.
    pts : the lung voxels.
    pathologies : names from :data:`PATHOLOGIES`.
    rngs : one generator per name in ``PATHOLOGIES`` and ``"healthy"``, so that
        leaving a pathology out does not change the others.
    fractions : share of the lung per pathology (defaults: :data:`FRACTIONS`), each
        varied by +-15 % with the seed; the pathologies together leave at least
        :data:`MIN_AERATED` of the lung healthy.
    pattern : one of :data:`PATTERNS`, where the lesions go.
    fixed : regions a case fills first (a mass, compressed lung); the pathologies
        claim their share among the other points.
    """
    if pattern not in PATTERNS:
        raise ValueError(f"unknown pattern {pattern!r}; choose from {PATTERNS}")
    n = len(pts.index)
    fractions = {**FRACTIONS, **(fractions or {})}
    z, y = pts.mm[:, 0], pts.mm[:, 1]
    rng = rngs["healthy"]
    tex = sample_field(coarse_field(grid, 3.0, rng), grid, pts.mm)
    lobular = sample_field(coarse_field(grid, 12.0, rng), grid, pts.mm)
    # healthy parenchyma, denser in the dependent (posterior) lung
    hu = (-872.0 + 14.0 * tex + 8.0 * lobular + 0.16 * y).astype(np.float32)
    labels = np.full(n, Tissue.HEALTHY, np.uint8)
    avascular = np.zeros(n, bool)
    solid = np.zeros(n, bool)
    bronchograms: list[Segment] = []
    free = np.ones(n, bool)
    for region in fixed:
        m = region.mask & free
        hu[m] = region.hu + region.texture_hu * tex[m] + 0.3 * region.texture_hu * lobular[m]
        labels[m] = region.label
        if region.solid:
            solid |= m
            avascular |= m
        free &= ~m
    h = grid.h
    # how many points each pathology claims, within what the lung leaves aerated
    counts = {name: int(round(fractions[name] * rngs[name].uniform(0.85, 1.15) * n))
              for name in PATHOLOGIES if name in pathologies}
    budget = max(0, int(free.sum()) - int(np.ceil(MIN_AERATED * n)))
    if sum(counts.values()) > budget:
        scale = budget / sum(counts.values())
        counts = {name: int(c * scale) for name, c in counts.items()}
    for name in PATHOLOGIES:
        if name not in pathologies or n == 0:
            continue
        rng = rngs[name]
        count = counts[name]
        if name == "consolidation" and pattern == "pneumonia":
            # dependent (posterior), peripheral and basal, in large confluent patches
            field = sample_field(coarse_field(grid, 30.0, rng), grid, pts.mm)
            score = y / 35.0 - pts.pleura / 14.0 - (z - LUNG_BASE) / 260.0 + 0.9 * field
            region = _claim(score, free, count)
            hu[region] = 24.0 + 14.0 * tex[region] + 6.0 * lobular[region]
            labels[region] = Tissue.CONSOLIDATION
            cand = np.flatnonzero(region & (pts.pleura > max(6.0, 2 * h)))
            if cand.size == 0:
                cand = np.flatnonzero(region)
            picks = rng.choice(cand, size=min(10, cand.size), replace=False)
            centres = [pts.mm[i].astype(np.float64) for i in picks]
            bronchograms += _bronchograms(pts, region, centres, rng, grid.step[0] / 2, radius=3.0)
        elif name == "ggo" and pattern == "pneumonia":
            field = sample_field(coarse_field(grid, 35.0, rng), grid, pts.mm)
            score = y / 70.0 - pts.pleura / 30.0 + 1.0 * field
            region = _claim(score, free, count)
            w = _edge_weight(score, region, 0.4) * free
            ggo = -590.0 + 30.0 * tex + 35.0 * lobular
            hu += w * (ggo - hu)
            labels[region] = Tissue.GGO
        elif name == "consolidation":
            subpleural = (pts.pleura < max(3.0, h)) & (pts.side == 1) & (y > 10)
            basal = z < LUNG_BASE + 110
            c1 = _pick(rng, pts, subpleural & basal, pts.side == 1)
            deep = pts.pleura > 0.6 * float(pts.pleura[pts.side == 2].max(initial=0.0))
            c2 = _pick(rng, pts, (pts.side == 2) & deep & (z > 120), pts.side == 2)
            field = sample_field(coarse_field(grid, 25.0, rng), grid, pts.mm)
            score = np.maximum(-_dist(pts, c1), -_dist(pts, c2) / 0.7) + 10.0 * field
            region = _claim(score, free, count)
            hu[region] = 22.0 + 14.0 * tex[region] + 6.0 * lobular[region]
            labels[region] = Tissue.CONSOLIDATION
            bronchograms += _bronchograms(pts, region, [c1, c2], rng, grid.step[0] / 2)
        elif name == "fibrosis":
            field = sample_field(coarse_field(grid, 20.0, rng), grid, pts.mm)
            score = -pts.pleura - 0.3 * (z - LUNG_BASE) + 0.12 * y + 6.0 * field
            region = _claim(score, free, count)
            hu[region] = _honeycomb(grid, pts, region, rng)
            labels[region] = Tissue.FIBROSIS
        elif name == "ggo":
            field = sample_field(coarse_field(grid, 30.0, rng), grid, pts.mm)
            score = field - 0.012 * pts.pleura
            region = _claim(score, free, count)
            # hazy: density ramps up across the border (the label is the half-way contour)
            w = _edge_weight(score, region, 0.5) * free
            ggo = -575.0 + 30.0 * tex + 35.0 * lobular
            hu += w * (ggo - hu)
            labels[region] = Tissue.GGO
        elif name == "emphysema":
            # paraseptal: subpleural bullae in the upper lungs, avascular
            n_bullae = 7
            centres = [_pick(rng, pts, (pts.pleura < max(3.0, h)) & (z > 170), pts.pleura < 1e9)
                       for _ in range(n_bullae)]
            radii = rng.uniform(0.6, 1.4, n_bullae)
            score = np.max([-_dist(pts, c) / r for c, r in zip(centres, radii)], axis=0)
            para = _claim(score, free, int(0.4 * count))
            hu[para] = -988.0 + 4.0 * rng.standard_normal(int(para.sum())).astype(np.float32)
            avascular |= para
            free &= ~para
            # centrilobular: many small holes, upper-lobe predominant
            holes = sample_field(coarse_field(grid, max(7.0, 1.5 * h), rng), grid, pts.mm)
            score = holes + (z - 200.0) / 70.0
            centri = _claim(score, free, count - int(para.sum()))
            hu[centri] = -962.0 + 8.0 * tex[centri] + 4.0 * lobular[centri]
            region = para | centri
            labels[region] = Tissue.EMPHYSEMA
        free &= ~region
    return Parenchyma(hu=hu, labels=labels, avascular=avascular, bronchograms=bronchograms, solid=solid)


def _honeycomb(grid: Grid, pts: LungPoints, region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """HU of a fibrotic region: a reticular network of walls around cells.

    Cells are the Voronoi cells of random seeds (about 7 mm apart); a voxel
    close to the border between two cells is a wall (about -70 HU). Subpleural
    cells are mostly honeycomb cysts (air), deeper cells hold reticular
    ground glass. Distances are nominal mm, so the pattern does not depend on
    the grid, only on how finely it is sampled.
    """
    p = pts.mm[region]
    if len(p) == 0:
        return np.zeros(0, np.float32)
    h = grid.h
    cell = max(7.0, 2.5 * h)
    # seeds fill the sampled slab; thick slices sample a slab of about two cells
    thick = min(grid.step[0], 2 * cell)
    volume = len(p) * thick * grid.step[1] * grid.step[2]
    n_seeds = int(np.clip(volume / cell ** 3, 4, 200_000))
    jitter = np.array([max(cell, thick) / 2, cell / 2, cell / 2], np.float32)
    seeds = p[rng.integers(0, len(p), n_seeds)] + rng.uniform(-1, 1, (n_seeds, 3)).astype(np.float32) * jitter
    d, i = cKDTree(seeds).query(p, k=2)
    wall = (d[:, 1] - d[:, 0]) < max(1.2, 0.4 * h)
    cyst_cell = rng.random(n_seeds) < 0.75
    deep = pts.pleura[region] > 9.0
    cyst = cyst_cell[i[:, 0]] & ~deep
    out = -690.0 + 45.0 * rng.standard_normal(len(p)).astype(np.float32)
    out[cyst] = -940.0 + 15.0 * rng.standard_normal(int(cyst.sum())).astype(np.float32)
    out[wall] = -70.0 + 40.0 * rng.standard_normal(int(wall.sum())).astype(np.float32)
    return out.astype(np.float32)


def _bronchograms(pts: LungPoints, region: np.ndarray, centres: list[np.ndarray],
                  rng: np.random.Generator, jitter_z: float, radius: float = 2.4) -> list[Segment]:
    """Air-filled bronchi branching through the consolidation around each centre (air bronchograms)."""
    segments: list[Segment] = []
    hilum = {1: np.array([185.0, 10.0, -40.0]), 2: np.array([180.0, 14.0, 42.0])}
    for centre in centres:
        near = region & (_dist(pts, centre) < 45.0)
        cand = np.flatnonzero(near)
        if cand.size < 8:
            continue
        side = int(np.bincount(pts.side[cand]).argmax())
        root_i = cand[np.argmin(_dist(pts, hilum[side])[cand])]
        targets = pts.mm[rng.choice(cand, size=min(16, cand.size), replace=False)].astype(np.float64)
        targets[:, 0] += rng.uniform(-1, 1, len(targets)) * min(jitter_z, 10.0)
        segments += grow_tree(pts.mm[root_i], radius, targets, leaf_size=2, reach=0.6)
    return segments
