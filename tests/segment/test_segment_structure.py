"""Multi-scale Hessian structure measures: accuracy against scikit-image and analytic
shapes, tube / blob / plate selectivity, chunking, devices and a real scan."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi
from scipy import stats
from skimage.feature import hessian_matrix, hessian_matrix_eigvals

from diffseglung_core.errors import Cancelled, NoLungFoundError
from diffseglung_core.segment.structure import (
    STRUCTURE_NAMES,
    eigenvalues_sym3,
    hessian_eigenvalues,
    structure_features,
    structure_maps,
)

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device"))]


# --------------------------------------------------------------------------- helpers

def _random_smooth(shape, seed=0, smooth=1.0, scale=100.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.normal(0, scale, shape), smooth).astype(np.float32)


def _grid(shape, spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """(Z, Y, X, 3) voxel centres in mm."""
    axes = [np.arange(n) * s for n, s in zip(shape, spacing)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1)


def _segment_distance(p: np.ndarray, a, b) -> np.ndarray:
    a, b = np.asarray(a, float), np.asarray(b, float)
    ab = b - a
    t = np.clip(((p - a) @ ab) / (ab @ ab), 0, 1)
    return np.linalg.norm(p - (a + t[..., None] * ab), axis=-1)


def _inside(distance: np.ndarray, radius: float) -> np.ndarray:
    """Fraction of a voxel inside a surface at ``radius`` (linear partial volume)."""
    return np.clip(radius - distance + 0.5, 0.0, 1.0)


BG, FG = -850.0, 40.0


def _shape_volume(kind: str, n: int = 48) -> tuple[np.ndarray, tuple[int, int, int]]:
    """A bright tube (radius 2 mm, along z), sphere (radius 4 mm) or plane (2 mm thick)
    on lung background at 1 mm; returns the volume and its centre voxel."""
    p = _grid((n, n, n))
    c = n // 2
    if kind == "tube":
        d = np.hypot(p[..., 1] - c, p[..., 2] - c)
        frac = _inside(d, 2.0)
    elif kind == "sphere":
        frac = _inside(np.linalg.norm(p - c, axis=-1), 4.0)
    else:
        frac = _inside(np.abs(p[..., 2] - c), 1.0)
    return (BG + (FG - BG) * frac).astype(np.float32), (c, c, c)


TUBES = [((2, 10, 10), (37, 12, 14), 1.0), ((20, 2, 30), (22, 45, 34), 1.5),
         ((5, 40, 5), (35, 25, 44), 2.5), ((30, 5, 5), (30, 44, 44), 1.2)]


def _tubes_volume(seed=0):
    """Four bright tubes (radius 1-2.5 mm, several directions) in noisy lung, 1 mm voxels."""
    shape = (40, 48, 48)
    p = _grid(shape)
    v = np.full(shape, BG)
    axis = np.zeros(shape, bool)
    near = np.zeros(shape, bool)
    for a, b, r in TUBES:
        d = _segment_distance(p, a, b)
        v = np.maximum(v, BG + (FG - BG) * _inside(d, r))
        axis |= d < 0.5
        near |= d < r + 4
    v += np.random.default_rng(seed).normal(0, 20, shape)
    return v.astype(np.float32), axis, near


def _sorted_by_value(ev: np.ndarray) -> np.ndarray:
    return -np.sort(-ev, axis=0)


# --------------------------------------------------------------------------- eigenvalues

def test_closed_form_eigenvalues_match_eigvalsh():
    """Closed form in float32 vs LAPACK in float64.

    Tolerances relative to ``||H||_F``: 5e-5 for general matrices (float32
    rounding of the entries and of the cubic's coefficients, measured 1e-5);
    1e-3 for nearly degenerate ones, where the trigonometric form loses about
    half the float32 digits (``acos`` near +-1; measured 2e-4).
    """
    gen = torch.Generator().manual_seed(0)
    n = 20_000
    a = torch.randn(n, 3, 3, generator=gen, dtype=torch.float64)
    a = (a + a.transpose(1, 2)) * torch.logspace(-6, 6, n, dtype=torch.float64)[:, None, None]
    q, _ = torch.linalg.qr(torch.randn(n, 3, 3, generator=gen, dtype=torch.float64))
    lam = torch.stack([torch.full((n,), 100.0, dtype=torch.float64),
                       100 + 1e-3 * torch.rand(n, generator=gen, dtype=torch.float64),
                       -50 + torch.randn(n, generator=gen, dtype=torch.float64)], 1)
    lam[: n // 2, 2] = 100 - 1e-4 * torch.rand(n // 2, generator=gen, dtype=torch.float64)
    degenerate = q @ torch.diag_embed(lam) @ q.transpose(1, 2)
    for mats, tol in ((a, 5e-5), (degenerate, 1e-3)):
        ref = torch.linalg.eigvalsh(mats).flip(-1)          # descending
        f = mats.float()
        got = torch.stack(eigenvalues_sym3(f[:, 0, 0], f[:, 1, 1], f[:, 2, 2], f[:, 0, 1],
                                           f[:, 0, 2], f[:, 1, 2], sort="value"), 1).double()
        err = ((got - ref).abs().max(1).values / torch.linalg.matrix_norm(mats)).max().item()
        assert err < tol
    # sorted by magnitude, and the zero matrix
    f = a[:1000].float()
    l1, l2, l3 = eigenvalues_sym3(f[:, 0, 0], f[:, 1, 1], f[:, 2, 2], f[:, 0, 1], f[:, 0, 2],
                                  f[:, 1, 2])
    assert bool((l1.abs() <= l2.abs()).all() and (l2.abs() <= l3.abs()).all())
    z = torch.zeros(4)
    assert all(bool((e == 0).all()) for e in eigenvalues_sym3(z, z, z, z, z, z))


@pytest.mark.parametrize("sigma", [1.0, 2.0])
def test_hessian_matches_skimage_finite_differences(sigma):
    """``derivatives="difference"`` is skimage's ``use_gaussian_derivatives=False``
    (Gaussian smoothing with truncate 4, then ``np.gradient`` twice, edges replicated)
    up to float32 rounding: 1e-4 of the largest eigenvalue (measured 5e-6)."""
    v = _random_smooth((20, 28, 24), seed=1)
    h = hessian_matrix(v.astype(np.float64), sigma, mode="nearest", use_gaussian_derivatives=False)
    ref = hessian_matrix_eigvals(h) * sigma ** 2          # descending values, sigma^2-normalised
    ours = hessian_eigenvalues(v, (1.0, 1.0, 1.0), sigma, derivatives="difference", truncate=4.0,
                               slab=7)
    err = np.abs(_sorted_by_value(ours) - ref).max() / np.abs(ref).max()
    assert err < 1e-4
    # sorted by magnitude
    assert np.all(np.abs(ours[0]) <= np.abs(ours[1]) + 1e-6)
    assert np.all(np.abs(ours[1]) <= np.abs(ours[2]) + 1e-6)


@pytest.mark.parametrize("sigma", [1.5, 2.5])
def test_hessian_close_to_skimage_gaussian_derivatives(sigma):
    """The default moment-corrected Gaussian derivatives vs skimage's
    ``use_gaussian_derivatives=True`` (two first-derivative passes at sigma / sqrt(2),
    truncate 8): different discretisations of the same operator, so 5e-3 of the
    largest eigenvalue inside (measured 1e-3); within 8 voxels of the border the
    two differ by their edge conventions and are not compared."""
    v = _random_smooth((28, 32, 30), seed=2)
    h = hessian_matrix(v.astype(np.float64), sigma, mode="nearest", use_gaussian_derivatives=True)
    ref = hessian_matrix_eigvals(h) * sigma ** 2
    ours = _sorted_by_value(hessian_eigenvalues(v, (1.0, 1.0, 1.0), sigma, truncate=4.0))
    inner = (slice(None),) + (slice(8, -8),) * 3
    err = np.abs(ours[inner] - ref[inner]).max() / np.abs(ref[inner]).max()
    assert err < 5e-3


def test_hessian_scales_are_in_mm():
    """The scale-normalised Hessian does not depend on the unit of length: a volume
    with 2 mm voxels at sigma 3 mm equals the same array with 1 mm voxels at 1.5 mm."""
    v = _random_smooth((16, 20, 18), seed=3)
    a = hessian_eigenvalues(v, (1.0, 1.0, 1.0), 1.5)
    b = hessian_eigenvalues(v, (2.0, 2.0, 2.0), 3.0)
    assert np.abs(a - b).max() < 1e-5 * np.abs(a).max()
    # not normalised: second derivatives per mm^2 scale with 1 / spacing^2
    c = hessian_eigenvalues(v, (2.0, 2.0, 2.0), 3.0, normalized=False)
    np.testing.assert_allclose(c * 9.0, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())


@pytest.mark.parametrize("along", ["x", "z"])
def test_anisotropic_tube_matches_analytic_hessian(along):
    """A Gaussian tube ``A exp(-r^2 / 2 s^2)`` on an anisotropic grid. Smoothed at
    sigma its profile is ``A s^2 / (s^2 + sigma^2) exp(-r^2 / 2 (s^2 + sigma^2))``,
    so on the axis the normalised eigenvalues are ``0`` (along the tube) and twice
    ``-A sigma^2 s^2 / (s^2 + sigma^2)^2``. Tolerance 2 % of that value: the
    profile is sampled at 0.7 mm in-plane and at 2 mm (along x; the tube crosses
    the slices) or lies along 5 mm slices (along z)."""
    amp, s, sigma = 800.0, 3.0, 3.0
    spacing = (2.0, 0.7, 0.7) if along == "x" else (5.0, 0.7, 0.7)
    shape = (27, 41, 41) if along == "x" else (9, 41, 41)
    p = _grid(shape, spacing)
    centre = [(n // 2) * sp for n, sp in zip(shape, spacing)]
    if along == "x":
        r2 = (p[..., 0] - centre[0]) ** 2 + (p[..., 1] - centre[1]) ** 2
    else:
        r2 = (p[..., 1] - centre[1]) ** 2 + (p[..., 2] - centre[2]) ** 2
    v = (amp * np.exp(-r2 / (2 * s * s))).astype(np.float32)
    ev = hessian_eigenvalues(v, spacing, sigma, truncate=4.0)[:, shape[0] // 2, shape[1] // 2,
                                                              shape[2] // 2]
    expected = -amp * sigma ** 2 * s ** 2 / (s ** 2 + sigma ** 2) ** 2   # -200 HU
    np.testing.assert_allclose(ev, [0.0, expected, expected], atol=0.02 * abs(expected))


# --------------------------------------------------------------------------- measures

@pytest.fixture(scope="module")
def shapes():
    out = {}
    for kind in ("tube", "sphere", "plane"):
        v, c = _shape_volume(kind)
        out[kind] = (structure_maps(v, (1.0, 1.0, 1.0)), c)
    return out


def test_measures_tell_tube_blob_and_plate_apart(shapes):
    at = {k: {n: float(m[n][c]) for n in STRUCTURE_NAMES} for k, (m, c) in shapes.items()}
    # tube axis
    assert at["tube"]["tube"] > 0.7
    assert at["tube"]["blob"] < 0.05 and at["tube"]["plate"] < 0.2
    # sphere centre
    assert at["sphere"]["blob"] > 0.7
    assert at["sphere"]["tube"] < 0.2 and at["sphere"]["plate"] < 0.2
    # inside the plane
    assert at["plane"]["plate"] > 0.9
    assert at["plane"]["tube"] < 0.05 and at["plane"]["blob"] < 0.05
    # each measure is largest on its own shape
    for kind, name in (("tube", "tube"), ("sphere", "blob"), ("plane", "plate")):
        others = [at[k][name] for k in at if k != kind]
        assert at[kind][name] > 3 * max(others)
    # tube scale: set on the tube axis (radius 2 mm), 0 where there is no tube
    assert at["tube"]["tube_scale_mm"] in (1.0, 2.0)
    assert at["plane"]["tube_scale_mm"] == 0.0


def test_measures_vanish_on_flat_background_and_edges(shapes):
    for m, _ in shapes.values():
        for name in STRUCTURE_NAMES:
            assert float(np.abs(m[name][:4, :4, :4]).max()) < 1e-3       # far from the shape
            assert m[name].dtype == np.float32
        assert 0.0 <= m["tube"].min() and m["tube"].max() <= 1.0
    # at 1 mm the flanks of an 8 mm thick plate are edges: one large negative eigenvalue
    # just inside each edge, as in a thin plate; the gradient term holds them down
    # (measured 0.27 with it, 0.95 without), the middle stays flat (0)
    v = (BG + (FG - BG) * _inside(np.abs(_grid((24, 40, 40))[..., 2] - 20), 4.0)).astype(np.float32)
    flank = [17, 18, 22, 23]                              # the slab covers x = 16 .. 24
    with_term = structure_maps(v, (1.0, 1.0, 1.0), sigmas_mm=(1.0,))["plate"][12, 20]
    without = structure_maps(v, (1.0, 1.0, 1.0), sigmas_mm=(1.0,), gamma=1e6)["plate"][12, 20]
    assert with_term[flank].mean() < 0.35 and without[flank].mean() > 0.8
    assert with_term[20] < 0.01


def test_tube_ranking_agrees_with_skimage_frangi_and_sato():
    """Spearman correlation with skimage's Frangi and Sato filters near the tubes
    (measured 0.87 and 0.79; Frangi vs Sato themselves 0.77), and the tube axes
    stand out of their surroundings (AUC, measured 0.99 for all three)."""
    from skimage.filters import frangi, sato
    from sklearn.metrics import roc_auc_score

    v, axis, near = _tubes_volume()
    ours = structure_maps(v, (1.0, 1.0, 1.0))["tube"]
    fr = frangi(v, sigmas=(1, 2, 4), black_ridges=False, mode="nearest")
    sa = sato(v, sigmas=(1, 2, 4), black_ridges=False, mode="nearest")
    assert stats.spearmanr(ours[near], fr[near])[0] > 0.8
    assert stats.spearmanr(ours[near], sa[near])[0] > 0.7
    assert roc_auc_score(axis[near], ours[near]) > 0.95
    assert np.median(ours[axis]) > 0.5 and np.median(ours[~near]) < 0.01


# --------------------------------------------------------------------------- chunks, rows, devices

def test_chunked_equals_unchunked():
    """z-slabs with their halo give the whole-volume result (coarse grids included:
    0.6 mm voxels, so 2 mm and 4 mm are computed on 1 mm and 2 mm grids)."""
    v = _random_smooth((30, 40, 36), seed=4, scale=300.0) - 700
    sp = (1.0, 0.6, 0.6)
    whole = structure_maps(v, sp, slab=1000)
    chunked = structure_maps(v, sp, slab=4)
    for name in STRUCTURE_NAMES:
        np.testing.assert_allclose(chunked[name], whole[name], atol=1e-5, rtol=0)
    assert whole["tube"].max() > 0.3 and whole["plate"].max() > 0.3    # not trivially zero
    for derivatives in ("gaussian", "difference"):
        a = hessian_eigenvalues(v, sp, 2.0, derivatives=derivatives, slab=1000)
        b = hessian_eigenvalues(v, sp, 2.0, derivatives=derivatives, slab=3)
        np.testing.assert_allclose(b, a, atol=1e-5 * np.abs(a).max(), rtol=0)


def test_the_tube_map_alone_is_the_tube_of_all_maps():
    """The tube measure from the Hessian alone equals the tube of all maps (coarse grids,
    thin slabs and a single slice included); other names are refused."""
    v = _random_smooth((30, 40, 36), seed=6, scale=300.0) - 700
    for sp, shape, slab in (((1.0, 0.6, 0.6), v.shape, 7), ((2.5, 0.7, 0.7), (1, 40, 36), 16)):
        vol = v[:shape[0]]
        alone = structure_maps(vol, sp, slab=slab, names=("tube",))
        assert list(alone) == ["tube"] and alone["tube"].shape == vol.shape
        assert alone["tube"].dtype == np.float32 and alone["tube"].max() > 0.1
        np.testing.assert_allclose(alone["tube"], structure_maps(vol, sp, slab=slab)["tube"],
                                   atol=1e-6, rtol=0)
    assert list(structure_maps(v, (1.0, 1.0, 1.0), names=("plate", "tube"))) == ["tube", "plate"]
    with pytest.raises(ValueError, match="names"):
        structure_maps(v, (1.0, 1.0, 1.0), names=("vessel",))


def test_features_are_the_maps_at_lung_voxels():
    """Rows of the lung voxels (computed in the lung's box with a halo) equal the
    whole-volume maps there, in ``np.nonzero`` order."""
    v = _random_smooth((26, 44, 40), seed=5, scale=300.0) - 700
    p = _grid(v.shape)
    lung = np.linalg.norm((p - [13, 20, 22]) / [9, 12, 10], axis=-1) < 1
    sp = (1.2, 0.7, 0.7)
    rows = structure_features(v, lung, sp, slab=5)
    maps = structure_maps(v, sp)
    assert rows.shape == (int(lung.sum()), len(STRUCTURE_NAMES)) and rows.dtype == np.float32
    expected = np.stack([maps[n][lung] for n in STRUCTURE_NAMES], 1)
    np.testing.assert_allclose(rows, expected, atol=1e-5, rtol=0)


def test_single_slice_and_thin_volumes():
    """Edges are replicated: one slice gives the maps of that slice repeated along z
    (a structure constant across slices); volumes one voxel thin run too."""
    v = _random_smooth((1, 40, 36), seed=7, scale=300.0) - 700
    one = structure_maps(v, (5.0, 0.8, 0.8))
    five = structure_maps(np.repeat(v, 5, axis=0), (5.0, 0.8, 0.8))
    for name in STRUCTURE_NAMES:
        assert one[name].shape == v.shape
        np.testing.assert_allclose(one[name][0], five[name][2], atol=1e-5, rtol=0)
    assert one["plate"].max() > 0.3
    for shape in ((6, 9, 1), (6, 1, 1), (1, 1, 1)):
        w = _random_smooth(shape, seed=8)
        ev = hessian_eigenvalues(w, (1.0, 1.0, 1.0), 1.0)
        assert ev.shape == (3,) + shape and np.isfinite(ev).all()
        rows = structure_features(w, np.ones(shape, bool), (1.0, 1.0, 1.0))
        assert rows.shape == (w.size, 4) and np.isfinite(rows).all()


def test_progress_and_cancel():
    v = _random_smooth((10, 16, 16), seed=6)
    calls = []
    structure_maps(v, (1.0, 1.0, 1.0), slab=3, progress=lambda d, t, s: calls.append((d, t, s)))
    assert [c[0] for c in calls] == [1, 2, 3, 4] and {c[1] for c in calls} == {4}

    def cancel(done, total, stage):
        raise Cancelled("stop")

    with pytest.raises(Cancelled):
        structure_features(v, np.ones(v.shape, bool), (1.0, 1.0, 1.0), slab=3, progress=cancel)


def test_bad_input():
    v = np.zeros((4, 8, 8), np.float32)
    with pytest.raises(NoLungFoundError):
        structure_features(v, np.zeros(v.shape, bool), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError):
        structure_maps(v, (1.0, 1.0))
    with pytest.raises(ValueError):
        structure_maps(v[0], (1.0, 1.0, 1.0))
    with pytest.raises(ValueError):
        structure_maps(v, (1.0, 1.0, 1.0), sigmas_mm=(0.0,))
    with pytest.raises(ValueError):
        hessian_eigenvalues(v, (1.0, 1.0, 1.0), 1.0, derivatives="spline")


@pytest.mark.parametrize("device", DEVICES)
def test_runs_on_device(device):
    """Same measures on every device: tube axes found, background empty, and on an
    accelerator the CPU's values (float32 matrix products in another order)."""
    v, axis, near = _tubes_volume(seed=1)
    v, axis, near = v[:20], axis[:20], near[:20]
    got = structure_maps(v, (1.0, 0.8, 0.8), slab=8, device=device)
    assert np.median(got["tube"][axis]) > 0.5 and np.median(got["tube"][~near]) < 0.01
    rows = structure_features(v, near, (1.0, 0.8, 0.8), device=device)
    np.testing.assert_allclose(rows[:, 0], got["tube"][near], atol=1e-5, rtol=0)
    if device != "cpu":
        ref = structure_maps(v, (1.0, 0.8, 0.8), slab=8)
        for name in ("tube", "blob", "plate"):
            np.testing.assert_allclose(got[name], ref[name], atol=1e-4, rtol=0)


# --------------------------------------------------------------------------- real scan

def test_a0001_thin_dense_lung_voxels_are_tubes(a0001_dicom):
    """Lung-PET-CT-Dx A0001 (0.84 x 0.84 x 5 mm), slices 28-35 (hila): the dense lung
    voxels (HU > -500) that an opening of 3 mm radius removes (vessels and airway
    walls, not the mass) are tube-like; the aerated parenchyma away from them is not
    (measured: median tube 0.33 against a parenchyma 90th percentile of 0.034)."""
    from diffseglung_core.io import read_scan
    from diffseglung_core.lung import compute_lung_mask

    ct = read_scan(a0001_dicom)
    hu = ct.hu[28:36]
    lung = compute_lung_mask(hu, ct.spacing) > 0
    rows = structure_features(hu, lung, ct.spacing)
    tube = np.zeros(hu.shape, np.float32)
    tube[lung] = rows[:, STRUCTURE_NAMES.index("tube")]
    blob = np.zeros(hu.shape, np.float32)
    blob[lung] = rows[:, STRUCTURE_NAMES.index("blob")]

    dense = (hu > -500) & lung
    r = int(round(3.0 / ct.spacing[1]))
    disk = np.hypot(*np.mgrid[-r:r + 1, -r:r + 1]) <= r
    thin = dense & ~ndi.binary_opening(dense, structure=disk[None])
    parenchyma = lung & (hu < -800) & ~ndi.binary_dilation(dense, structure=np.ones((1, 5, 5)))
    assert thin.sum() > 5000 and parenchyma.sum() > 100_000
    assert np.median(tube[thin]) > 0.2
    assert np.median(tube[thin]) > 5 * np.percentile(tube[parenchyma], 90)
    assert np.median(tube[thin]) > 10 * np.median(blob[thin])
