"""Lesion models of the real-anatomy test bed, drawn on a fine grid.

Each model describes, on a grid finer than the scan (about 1 mm, see
:class:`FineGrid`), what fraction of each fine cell keeps the native tissue
and what HU replaces the rest. Averaging that description over the fine cells
of a voxel gives the partial volume at the scan's own resolution (a 5 mm
slice averages 5 fine layers). A lesion is then, per voxel,

``new = K * native + A``  with  ``K`` in [0, 1] (native fraction kept) and ``A`` (HU added),

so the real noise, vessels and texture survive in proportion ``K``; synthetic
noise of the scan's own spectrum fills in the rest (see :mod:`.testbed`).
Layers compose: covering a fraction ``w`` with HU ``t`` maps ``(K, A)`` to
``((1 - w) K, (1 - w) A + w t)``.

The models follow the descriptions of the Fleischner Society glossary of
thoracic imaging (Hansell et al., Radiology 2008) and of the usual CT
literature on each pattern:

* **Ground-glass opacity**: hazy increased attenuation with preserved
  bronchial and vascular margins. Modelled as partial filling of the air
  spaces: each voxel moves a fraction ``phi`` of the way towards fluid
  (+20 HU), and only upwards, so vessels keep their density and stay brighter
  than the haze. ``phi`` is chosen from the local parenchymal density so that
  the haze reaches a target of -650..-450 HU, with patchy variation.
* **Consolidation**: homogeneous attenuation (+5..+45 HU) that obscures
  vessels, with air bronchograms: a branching tree of air-filled tubes
  (root lumen radius 0.8-2.5 mm, shrinking by 2^(-1/3) per generation,
  Murray's law) that enters from the hilar side.
* **Mass**: a lobulated solid nodule or mass (+25..+45 HU) with a sharper
  edge, sometimes with short spiculations (drawn, not labelled).
* **Emphysema**: centrilobular lucencies (3-10 mm holes without walls, one or
  two per secondary lobule, clustered, with a mildly hyperlucent halo),
  paraseptal emphysema (a single subpleural row of 6-15 mm air cysts with thin
  walls) and panlobular low attenuation (a region brought to about -960..-990
  HU with a few bullae, small vessels pruned and larger ones thinned).
* **Fibrosis** (usual interstitial pneumonia pattern): subpleural
  reticulation, a net of thin dense lines on the borders of 4-7 mm cells
  (intralobular and interlobular septal thickening), whose thickness and
  density grow towards the pleura, over a faint ground-glass background; and
  honeycombing: clustered 3-10 mm air cysts with 1-2 mm walls stacked in one
  or two rows against the pleura. Placement (subpleural, basal, posterior) is
  decided by :mod:`.testbed`.

Every renderer returns a :class:`Rendered` on the voxels of its box: the
``K``/``A`` maps, the lesion's extent (its truth occupancy, 0..1) and whether
the change may only raise HU (ground glass).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from .testbed_burden import thick_part

__all__ = [
    "FLUID_HU",
    "KIND_LABEL",
    "RENDERERS",
    "TISSUE_HU",
    "FineGrid",
    "LesionContext",
    "Rendered",
]

#: HU of solid soft tissue (fibrous walls, septa, the solid part of a lesion).
TISSUE_HU = 30.0
#: HU of the fluid / cells that fill air spaces in ground glass.
FLUID_HU = 20.0


# --------------------------------------------------------------------------- grids


@dataclass
class FineGrid:
    """A box of voxels and its supersampled grid.

    Attributes
    ----------
    lo, hi : (3,) int
        Voxel index range ``[lo, hi)`` of the box along ``(z, y, x)``.
    factors : (3,) int
        Fine cells per voxel along each axis.
    spacing : (3,) float
        Voxel size (mm).
    """

    lo: np.ndarray
    hi: np.ndarray
    factors: np.ndarray
    spacing: np.ndarray

    @property
    def voxel_shape(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.hi - self.lo)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in (self.hi - self.lo) * self.factors)

    @property
    def fine_spacing(self) -> np.ndarray:
        return self.spacing / self.factors

    @property
    def aa_mm(self) -> float:
        """Smallest edge width (mm) worth drawing on this grid: thinner edges would alias."""
        return 0.8 * float(self.fine_spacing.max())

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(int(a), int(b)) for a, b in zip(self.lo, self.hi))

    def axes_mm(self) -> list[np.ndarray]:
        """Fine cell centres (mm, scan grid frame: voxel ``i`` is at ``i * spacing``), per axis."""
        out = []
        for ax in range(3):
            f = int(self.factors[ax])
            j = np.arange(int(self.hi[ax] - self.lo[ax]) * f)
            out.append(((self.lo[ax] + (j + 0.5) / f - 0.5) * self.spacing[ax]).astype(np.float32))
        return out

    def mesh(self) -> list[np.ndarray]:
        """Sparse (broadcastable) fine coordinates (mm) along ``(z, y, x)``."""
        z, y, x = self.axes_mm()
        return [z[:, None, None], y[None, :, None], x[None, None, :]]

    def points(self, mask: np.ndarray) -> np.ndarray:
        """(n, 3) float mm coordinates of the fine cells where ``mask`` is True."""
        idx = np.nonzero(mask)
        axes = self.axes_mm()
        return np.stack([axes[a][idx[a]] for a in range(3)], 1)

    def block_mean(self, fine: np.ndarray) -> np.ndarray:
        """Average a fine array over the cells of each voxel (partial volume)."""
        fz, fy, fx = (int(f) for f in self.factors)
        nz, ny, nx = self.voxel_shape
        if fz == fy == fx == 1:
            return fine.astype(np.float32, copy=False)
        return fine.reshape(nz, fz, ny, fy, nx, fx).mean(axis=(1, 3, 5), dtype=np.float64).astype(np.float32)

    def upsample(self, vox: np.ndarray) -> np.ndarray:
        """Linear interpolation of a voxel array of the box onto the fine cells (edges clamped)."""
        out = np.asarray(vox, np.float32)
        for ax in range(3):
            f = int(self.factors[ax])
            if f == 1:
                continue
            n = out.shape[ax]
            p = (np.arange(n * f) + 0.5) / f - 0.5
            i0 = np.clip(np.floor(p).astype(int), 0, n - 1)
            i1 = np.clip(i0 + 1, 0, n - 1)
            fr = np.clip(p - np.floor(p), 0, 1).astype(np.float32)
            shp = [1, 1, 1]
            shp[ax] = -1
            fr = fr.reshape(shp)
            out = np.take(out, i0, axis=ax) * (1 - fr) + np.take(out, i1, axis=ax) * fr
        return out


def sigmoid(x):
    """Logistic function, float32."""
    return (0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, np.float32)))).astype(np.float32)


def edge(signed_mm, width_mm: float):
    """Soft step: 1 where ``signed_mm`` > 0, 0 below, 10-90 % over ``width_mm`` (mm)."""
    return sigmoid(np.asarray(signed_mm, np.float32) * (4.394 / max(width_mm, 1e-3)))


def warp_field(grid: FineGrid, amplitude_mm: float, corr_mm: float, rng: np.random.Generator) -> list:
    """Three smooth displacement fields (mm, standard deviation ``amplitude_mm``) for :func:`cell_walls`."""
    return [amplitude_mm * smooth_field(grid, corr_mm, rng) for _ in range(3)]


def smooth_field(grid: FineGrid, corr_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth zero-mean, unit-variance Gaussian random field on the fine grid.

    White noise on a grid of about ``corr_mm / 6`` is Gaussian-filtered (sigma
    ``corr_mm / 2``) and interpolated linearly onto the fine cells.
    """
    fs = grid.fine_spacing
    step = np.maximum(1, np.floor(corr_mm / 6.0 / fs)).astype(int)
    cshape = [int(np.ceil(n / s)) + 2 for n, s in zip(grid.shape, step)]
    white = rng.standard_normal(cshape).astype(np.float32)
    sig = [corr_mm / 2.0 / (fs[a] * step[a]) for a in range(3)]
    f = ndi.gaussian_filter(white, sig, mode="wrap")
    f = (f - f.mean()) / (f.std() + 1e-6)
    coarse = FineGrid(lo=np.zeros(3, int), hi=np.array(cshape), factors=step, spacing=fs * step)
    up = coarse.upsample(f)
    return np.ascontiguousarray(up[:grid.shape[0], :grid.shape[1], :grid.shape[2]])


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3x3 rotation matrix."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def blob_distance(grid: FineGrid, centre: np.ndarray, radius: float, rng: np.random.Generator, *,
                  elongation: float = 0.2, lobulation: float = 0.2, corr_frac: float = 0.5) -> np.ndarray:
    """Approximate signed distance (mm, negative inside) to a lobulated ellipsoid.

    Parameters
    ----------
    centre : (3,) mm; radius : mean radius (mm).
    elongation : relative spread of the three semi-axes.
    lobulation : amplitude of the random radial modulation (fraction of ``radius``).
    corr_frac : correlation length of the modulation (fraction of ``radius``).
    """
    axes = radius * np.exp(rng.uniform(-elongation, elongation, 3))
    axes *= radius / np.cbrt(np.prod(axes))
    rot = random_rotation(rng)
    z, y, x = grid.mesh()
    d = [z - centre[0], y - centre[1], x - centre[2]]
    r2 = np.zeros(grid.shape, np.float32)
    for i in range(3):
        q = rot[0, i] * d[0] + rot[1, i] * d[1] + rot[2, i] * d[2]
        r2 += (q / axes[i]) ** 2
    dist = (np.sqrt(r2) - 1.0) * radius
    if lobulation > 0:
        dist -= lobulation * radius * smooth_field(grid, max(corr_frac * radius, 3.0), rng)
    return dist.astype(np.float32)


def jittered_seeds(lo_mm, hi_mm, step_mm: float, rng: np.random.Generator,
                   jitter: float = 0.35) -> np.ndarray:
    """(n, 3) mm points on a jittered cubic lattice of ``step_mm`` covering ``[lo, hi]``."""
    axes = [np.arange(a - step_mm, b + step_mm, step_mm) for a, b in zip(lo_mm, hi_mm)]
    g = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    g = g + rng.uniform(-jitter, jitter, g.shape) * step_mm + rng.uniform(0, step_mm, 3)
    return g.astype(np.float64)


def poisson_disk(points: np.ndarray, min_dist: float, rng: np.random.Generator,
                 max_candidates: int = 20000) -> np.ndarray:
    """Greedy dart throwing: a random subset of ``points`` (n, 3 mm) no two closer than ``min_dist``."""
    if not len(points):
        return points
    order = rng.permutation(len(points))[:max_candidates]
    kept: list = []
    for p in points[order]:
        if not kept or np.min(np.sum((np.asarray(kept) - p) ** 2, 1)) >= min_dist ** 2:
            kept.append(p)
    return np.asarray(kept, np.float64)


def lookup(grid: FineGrid, fine: np.ndarray, pts: np.ndarray, reach_mm: float = 6.0) -> np.ndarray:
    """Values of a fine array at mm points.

    Nearest fine cell; points outside the box take the value of the nearest
    cell of the box when they are within ``reach_mm`` of it (a scan of a few
    slices still sees the seeds of the lesion parts that cross it), else 0.
    """
    fs = grid.fine_spacing
    start = (grid.lo - 0.5) * grid.spacing
    idx = np.floor((pts - start) / fs).astype(int)
    shape = np.array(grid.shape)
    clamped = np.clip(idx, 0, shape - 1)
    gap = np.linalg.norm((idx - clamped) * fs, axis=1)
    ok = gap <= reach_mm
    out = np.zeros(len(pts), np.float32)
    out[ok] = fine[tuple(clamped[ok].T)]
    return out


def cell_walls(grid: FineGrid, seeds: np.ndarray, where: np.ndarray, warp=None):
    """Distance to the nearest seed and half gap to the Voronoi border, on the fine cells ``where``.

    ``warp``: optional three fine arrays (mm) displacing the cells before the
    query, which bends the straight Voronoi borders into irregular curves.

    Returns
    -------
    d1 : (Z', Y', X') float32, mm to the nearest seed (inf outside ``where``).
    half_gap : float32, ``(d2 - d1) / 2`` (mm): 0 on a cell border.
    nearest : int32 index of the nearest seed (-1 outside ``where``).
    """
    d1 = np.full(grid.shape, np.inf, np.float32)
    half = np.full(grid.shape, np.inf, np.float32)
    near = np.full(grid.shape, -1, np.int32)
    if len(seeds) >= 2 and where.any():
        pts = grid.points(where)
        if warp is not None:
            pts = pts + np.stack([w[where] for w in warp], 1)
        dd, ii = cKDTree(seeds).query(pts, k=2)
        d1[where] = dd[:, 0]
        half[where] = 0.5 * (dd[:, 1] - dd[:, 0])
        near[where] = ii[:, 0]
    elif len(seeds) == 1 and where.any():
        pts = grid.points(where)
        d1[where] = np.linalg.norm(pts - seeds[0], axis=1)
        near[where] = 0
    return d1, half, near


def segment_tube(grid: FineGrid, p0: np.ndarray, p1: np.ndarray, r0: float, r1: float,
                 out: np.ndarray, width_mm: float = 0.4) -> None:
    """Max-composite a tapered tube into ``out``.

    The tube is a capsule from ``p0`` (radius ``r0``) to ``p1`` (radius ``r1``), in mm.
    """
    fs = grid.fine_spacing
    start = (grid.lo - 0.5) * grid.spacing
    rmax = max(r0, r1) + 2 * width_mm
    lo = np.floor((np.minimum(p0, p1) - rmax - start) / fs).astype(int)
    hi = np.ceil((np.maximum(p0, p1) + rmax - start) / fs).astype(int) + 1
    lo = np.clip(lo, 0, grid.shape)
    hi = np.clip(hi, 0, grid.shape)
    if np.any(hi <= lo):
        return
    axes = grid.axes_mm()
    z = axes[0][lo[0]:hi[0], None, None]
    y = axes[1][None, lo[1]:hi[1], None]
    x = axes[2][None, None, lo[2]:hi[2]]
    v = (p1 - p0).astype(np.float32)
    L2 = float(v @ v) + 1e-9
    t = ((z - p0[0]) * v[0] + (y - p0[1]) * v[1] + (x - p0[2]) * v[2]) / L2
    t = np.clip(t, 0, 1)
    dz, dy, dx = z - (p0[0] + t * v[0]), y - (p0[1] + t * v[1]), x - (p0[2] + t * v[2])
    d = np.sqrt(dz * dz + dy * dy + dx * dx)
    occ = edge(r0 + (r1 - r0) * t - d, max(width_mm, grid.aa_mm))
    sub = out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    np.maximum(sub, occ, out=sub)


# --------------------------------------------------------------------------- context / result


@dataclass
class LesionContext:
    """What a renderer knows about the place a lesion goes.

    Attributes
    ----------
    grid : FineGrid of the lesion's box.
    centre : (3,) float, mm (scan grid frame).
    radius : float, mm (half the nominal diameter).
    depth : fine (Z', Y', X') float32, signed distance to the pleura (mm, > 0 in the lung).
    native : (z, y, x) float32 HU of the box's voxels.
    lung : (z, y, x) bool lung mask of the box's voxels.
    air_hu : HU of air in this scan.
    hilum : (3,) mm, a point on the medial side of this lung (airways come from there).
    rng : numpy Generator.
    """

    grid: FineGrid
    centre: np.ndarray
    radius: float
    depth: np.ndarray
    native: np.ndarray
    lung: np.ndarray
    air_hu: float
    hilum: np.ndarray
    rng: np.random.Generator


@dataclass
class Rendered:
    """A lesion on the voxels of its box.

    Attributes
    ----------
    keep : (z, y, x) float32, K: fraction of the native signal kept.
    add : (z, y, x) float32, A: HU added.
    extent : (z, y, x) float32, truth occupancy 0..1 (labelled where >= 0.5).
    raise_only : the change only applies where it raises the HU (ground glass).
    params : what was drawn (target HU, counts...), for the lesion record.
    """

    keep: np.ndarray
    add: np.ndarray
    extent: np.ndarray
    raise_only: bool = False
    params: dict = field(default_factory=dict)


class _Layers:
    """Fine-grid (K, A) accumulation of covers."""

    def __init__(self, shape):
        self.k = np.ones(shape, np.float32)
        self.a = np.zeros(shape, np.float32)

    def cover(self, w, t) -> None:
        w = np.clip(np.asarray(w, np.float32), 0, 1)
        self.k *= 1 - w
        self.a *= 1 - w
        self.a += w * np.asarray(t, np.float32)


def _in_lung(ctx: LesionContext) -> np.ndarray:
    """Fine occupancy of the lung (sharp pleural boundary, 0.5 mm)."""
    return edge(ctx.depth, 0.5)


def _finish(ctx: LesionContext, layers: _Layers, extent_fine: np.ndarray, *, raise_only=False,
            params=None, vox_covers=()) -> Rendered:
    g = ctx.grid
    keep, add = g.block_mean(layers.k), g.block_mean(layers.a)
    ext = g.block_mean(extent_fine)
    for w, t in vox_covers:                     # voxel-level covers (pruning of native vessels)
        keep *= 1 - w
        add = add * (1 - w) + w * t
    return Rendered(keep=keep, add=add, extent=ext, raise_only=raise_only, params=params or {})


# --------------------------------------------------------------------------- ground glass


def render_ggo(ctx: LesionContext) -> Rendered:
    rng = ctx.rng
    target = float(rng.uniform(-650.0, -450.0))
    sd = blob_distance(ctx.grid, ctx.centre, ctx.radius, rng, elongation=0.25, lobulation=0.18)
    w = edge(-sd, float(rng.uniform(2.0, 3.0))) * _in_lung(ctx)
    par = ctx.native[ctx.lung & (ctx.native < -600)]
    base = float(np.median(par)) if par.size > 20 else -860.0
    phi0 = np.clip((target - base) / (FLUID_HU - base), 0.05, 0.9)
    phi = np.clip(phi0 * (1.0 + 0.2 * smooth_field(ctx.grid, max(0.3 * ctx.radius, 4.0), rng)), 0, 0.95)
    layers = _Layers(ctx.grid.shape)
    layers.cover(w * phi, FLUID_HU)
    return _finish(ctx, layers, w, raise_only=True,
                   params={"target_hu": target, "parenchyma_hu": base, "fill_fraction": float(phi0)})


# --------------------------------------------------------------------------- consolidation / mass


def _airway_tree(ctx: LesionContext, rng) -> list[tuple[np.ndarray, np.ndarray, float, float]]:
    """Segments (p0, p1, r0, r1) of a branching air tube tree entering from the hilar side."""
    u = ctx.centre - ctx.hilum
    n = np.linalg.norm(u)
    u = u / n if n > 1e-3 else random_rotation(rng)[:, 0]
    R = ctx.radius
    r_root = float(np.clip(0.07 * R, 0.8, 2.5)) * float(rng.uniform(0.8, 1.2))
    root = ctx.centre - u * R * float(rng.uniform(0.8, 1.0))
    segs = []
    stack = [(root, u, r_root, 0.55 * R * float(rng.uniform(0.8, 1.2)), 0)]
    while stack:
        p, d, r, length, gen = stack.pop()
        r_end = r * 0.92
        q = p + d * length
        segs.append((p, q, r, r_end))
        if gen >= 4 or r_end * 0.79 < 0.45:
            continue
        axis = np.cross(d, rng.standard_normal(3))
        axis /= np.linalg.norm(axis) + 1e-9
        for sign in (1.0, -1.0):
            ang = np.deg2rad(rng.uniform(20, 45)) * sign
            # Rodrigues rotation of d about axis
            dn = (d * np.cos(ang) + np.cross(axis, d) * np.sin(ang) + axis * (axis @ d) * (1 - np.cos(ang)))
            dn /= np.linalg.norm(dn)
            stack.append((q, dn, r_end * 0.79, length * float(rng.uniform(0.6, 0.8)), gen + 1))
    return segs


def render_consolidation(ctx: LesionContext) -> Rendered:
    rng = ctx.rng
    target = float(rng.uniform(5.0, 45.0))
    sd = blob_distance(ctx.grid, ctx.centre, ctx.radius, rng, elongation=0.3, lobulation=0.18)
    w = edge(-sd, float(rng.uniform(1.5, 3.0))) * _in_lung(ctx)
    hetero = 8.0 * smooth_field(ctx.grid, 6.0, rng)
    layers = _Layers(ctx.grid.shape)
    layers.cover(w, target + hetero)
    lumen = np.zeros(ctx.grid.shape, np.float32)
    segs = _airway_tree(ctx, rng)
    for p0, p1, r0, r1 in segs:
        segment_tube(ctx.grid, p0, p1, r0, r1, lumen)
    core = np.clip((w - 0.7) / 0.25, 0, 1)
    air = float(ctx.air_hu + rng.uniform(10, 40))
    layers.cover(lumen * core, air)
    return _finish(ctx, layers, w, params={"target_hu": target, "bronchogram_segments": len(segs),
                                           "bronchogram_root_radius_mm": float(segs[0][2])})


def render_mass(ctx: LesionContext) -> Rendered:
    rng = ctx.rng
    target = float(rng.uniform(25.0, 45.0))
    sd = blob_distance(ctx.grid, ctx.centre, ctx.radius, rng, elongation=0.15, lobulation=0.08,
                       corr_frac=0.45)
    lung = _in_lung(ctx)
    w = edge(-sd, float(rng.uniform(0.8, 1.5))) * lung
    layers = _Layers(ctx.grid.shape)
    layers.cover(w, target + 6.0 * smooth_field(ctx.grid, 5.0, rng))
    n_spic = int(rng.integers(0, 9)) if rng.random() < 0.6 else 0
    if n_spic:
        strands = np.zeros(ctx.grid.shape, np.float32)
        for _ in range(n_spic):
            d = rng.standard_normal(3)
            d /= np.linalg.norm(d)
            p0 = ctx.centre + d * ctx.radius * 0.9
            p1 = p0 + d * float(rng.uniform(5, 15))
            segment_tube(ctx.grid, p0, p1, float(rng.uniform(0.4, 0.8)), 0.15, strands, width_mm=0.5)
        layers.cover(strands * lung * (1 - w), TISSUE_HU)
    return _finish(ctx, layers, w, params={"target_hu": target, "spiculations": n_spic})


# --------------------------------------------------------------------------- emphysema


def _prune_vessels(ctx: LesionContext, region_vox: np.ndarray, target: float,
                   keep_radius_mm: float) -> list:
    """Voxel covers removing thin native vessels and thinning thicker ones inside ``region_vox``."""
    sp = ctx.grid.spacing
    dense = (ctx.native > -700.0) & ctx.lung & (region_vox > 0.05)
    if not dense.any():
        return []
    thick = thick_part(dense, sp, keep_radius_mm)
    pruned = dense & ~thick
    rim = thick & (ndi.distance_transform_edt(thick, sampling=sp) <= 1.01 * min(sp[1:]))
    w = np.zeros(ctx.native.shape, np.float32)
    w[pruned] = 0.9 * region_vox[pruned]
    w[rim] = 0.5 * region_vox[rim]
    return [(w, target)]


def render_emphysema_centrilobular(ctx: LesionContext) -> Rendered:
    rng = ctx.rng
    g = ctx.grid
    sd = blob_distance(g, ctx.centre, ctx.radius, rng, elongation=0.3, lobulation=0.25)
    env = edge(-sd, 4.0) * _in_lung(ctx)
    step = float(rng.uniform(7.0, 11.0))
    density = float(rng.uniform(0.6, 0.95))
    axes = g.axes_mm()
    seeds = jittered_seeds([a[0] for a in axes], [a[-1] for a in axes], step, rng)
    keep = lookup(g, env, seeds) * density > rng.random(len(seeds))
    seeds = seeds[keep]
    radii = rng.uniform(1.5, 5.0, len(seeds)).astype(np.float32)
    where = env > 0.02
    d1, _, near = cell_walls(g, seeds, where)
    holes = np.zeros(g.shape, np.float32)
    if len(seeds):
        rr = np.where(near >= 0, radii[np.clip(near, 0, None)], 0).astype(np.float32)
        holes = edge(rr - d1, 1.0) * _in_lung(ctx)
    air = float(ctx.air_hu + rng.uniform(5, 25))
    halo_loss = float(rng.uniform(0.1, 0.3))
    layers = _Layers(g.shape)
    layers.cover(env * halo_loss, air)
    layers.cover(holes, air)
    covers = _prune_vessels(ctx, g.block_mean(holes), air, float(rng.uniform(1.5, 2.5)))
    out = _finish(ctx, layers, holes, vox_covers=covers,
                  params={"holes": len(seeds), "lobule_step_mm": step, "air_hu": air,
                          "halo_loss": halo_loss})
    if covers:
        out.extent = np.maximum(out.extent, covers[0][0])
    return out


def render_emphysema_paraseptal(ctx: LesionContext) -> Rendered:
    rng = ctx.rng
    g = ctx.grid
    sd = blob_distance(g, ctx.centre, ctx.radius, rng, elongation=0.2, lobulation=0.2)
    env = edge(-sd, 3.0) * _in_lung(ctx)
    size = float(rng.uniform(6.0, 15.0))
    # one row of cysts under the pleura: seeds at half a cyst's depth, packed along the surface
    row = (ctx.depth > 0.4 * size) & (ctx.depth < 0.6 * size) & (env > 0.5)
    seeds = poisson_disk(g.points(row), 0.95 * size, rng)
    where = env > 0.02
    d1, half, _ = cell_walls(g, seeds, where)
    wall = float(rng.uniform(0.4, 0.8))
    radius = 0.6 * size
    # thin walls: the septa between neighbouring cysts and the shell of each cyst
    aa = max(0.3, g.aa_mm)
    septa = edge(wall / 2 - half, aa) * edge(radius - d1, 0.5)
    shell = edge(wall / 2 - np.abs(radius - wall / 2 - d1), aa)
    walls = np.maximum(septa, shell) * env
    interior = edge(half - wall / 2, aa) * edge(radius - wall - d1, aa) * env
    air = float(ctx.air_hu + rng.uniform(0, 15))
    layers = _Layers(g.shape)
    layers.cover(walls * 0.8, TISSUE_HU)
    layers.cover(interior, air)
    return _finish(ctx, layers, interior, params={"cysts": len(seeds), "cyst_size_mm": size,
                                                  "wall_mm": wall, "air_hu": air})


def render_emphysema_panlobular(ctx: LesionContext) -> Rendered:
    rng = ctx.rng
    g = ctx.grid
    sd = blob_distance(g, ctx.centre, ctx.radius, rng, elongation=0.3, lobulation=0.2)
    env = edge(-sd, float(rng.uniform(2.0, 3.0))) * _in_lung(ctx)
    loss = float(rng.uniform(0.7, 0.9))
    air = float(ctx.air_hu + rng.uniform(0, 15))
    layers = _Layers(g.shape)
    layers.cover(env * loss, air)
    n_bullae = int(rng.integers(0, 4))
    holes = np.zeros(g.shape, np.float32)
    for _ in range(n_bullae):
        off = rng.standard_normal(3)
        off = off / np.linalg.norm(off) * ctx.radius * float(rng.uniform(0, 0.6))
        r = float(rng.uniform(3, min(8, 0.4 * ctx.radius + 3)))
        z, y, x = g.mesh()
        c = ctx.centre + off
        d = np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2)
        np.maximum(holes, edge(r - d, 1.0) * env, out=holes)
    layers.cover(holes, air)
    env_vox = g.block_mean(env)
    covers = _prune_vessels(ctx, env_vox, air, float(rng.uniform(1.5, 2.5)))
    return _finish(ctx, layers, env, vox_covers=covers,
                   params={"density_loss": loss, "air_hu": air, "bullae": n_bullae})


# --------------------------------------------------------------------------- fibrosis


def _fibrosis(ctx: LesionContext, honeycomb: bool) -> Rendered:
    rng = ctx.rng
    g = ctx.grid
    sd = blob_distance(g, ctx.centre, ctx.radius, rng, elongation=0.3, lobulation=0.2)
    env = edge(-sd, 4.0)
    band_mm = float(rng.uniform(10.0, 20.0)) * (1.0 + 0.3 * smooth_field(g, 15.0, rng))
    lung = _in_lung(ctx)
    region = env * edge(band_mm - ctx.depth, 3.0) * lung
    severity = np.clip(1.0 - ctx.depth / np.maximum(band_mm, 1.0), 0, 1) ** 0.7
    # reticulation: borders of 4-7 mm cells (thickened septa), bent by a smooth warp, some faint
    # or missing, thicker and denser near the pleura
    step = float(rng.uniform(4.0, 7.0))
    axes = g.axes_mm()
    seeds = jittered_seeds([a[0] for a in axes], [a[-1] for a in axes], step, rng, jitter=0.4)
    where = region > 0.02
    _, half, _ = cell_walls(g, seeds, where, warp=warp_field(g, 0.25 * step, 1.2 * step, rng))
    thick = float(rng.uniform(0.4, 0.8)) * (0.6 + 0.8 * severity)
    thick = thick * np.exp(0.3 * smooth_field(g, step, rng))
    lines = edge(thick / 2 - half, max(0.3, g.aa_mm))
    visible = np.clip(0.75 + 0.5 * smooth_field(g, 0.8 * step, rng), 0, 1)
    layers = _Layers(g.shape)
    layers.cover(region * (0.08 + 0.12 * severity), FLUID_HU)    # faint ground-glass background
    layers.cover(region * lines * visible * (0.4 + 0.6 * severity), TISSUE_HU)
    params = {"cell_mm": step, "line_mm": float(np.median(thick[where])) if where.any() else 0.0}
    if honeycomb:
        hc_mm = float(rng.uniform(5.0, 10.0)) * (1.0 + 0.3 * smooth_field(g, 12.0, rng))
        layer = region * edge(hc_mm - ctx.depth, 1.5)
        cyst = float(rng.uniform(5.0, 9.0))
        seeds2 = jittered_seeds([a[0] for a in axes], [a[-1] for a in axes], cyst, rng, jitter=0.3)
        where2 = layer > 0.02
        d1, half2, _ = cell_walls(g, seeds2, where2, warp=warp_field(g, 0.15 * cyst, cyst, rng))
        wall = float(rng.uniform(1.0, 2.0))
        interior = edge(half2 - wall / 2, max(0.4, g.aa_mm)) * edge(0.6 * cyst - d1, 0.8) * layer
        layers.cover(layer, TISSUE_HU)
        layers.cover(interior, float(ctx.air_hu + rng.uniform(5, 25)))
        params.update({"cyst_mm": cyst, "wall_mm": wall})
    return _finish(ctx, layers, region, params=params)


def render_reticulation(ctx: LesionContext) -> Rendered:
    return _fibrosis(ctx, honeycomb=False)


def render_honeycombing(ctx: LesionContext) -> Rendered:
    return _fibrosis(ctx, honeycomb=True)


#: lesion kind -> renderer.
RENDERERS = {
    "ggo": render_ggo,
    "consolidation": render_consolidation,
    "mass": render_mass,
    "centrilobular": render_emphysema_centrilobular,
    "paraseptal": render_emphysema_paraseptal,
    "panlobular": render_emphysema_panlobular,
    "reticulation": render_reticulation,
    "honeycombing": render_honeycombing,
}

#: lesion kind -> truth label (project convention).
KIND_LABEL = {"ggo": 2, "reticulation": 3, "honeycombing": 3, "centrilobular": 4, "paraseptal": 4,
              "panlobular": 4, "consolidation": 5, "mass": 5}
