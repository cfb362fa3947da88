"""The synthetic chest phantom: ground truth that the rest of the project is tested against."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import ndimage as ndi

from diffseglung_core.labels import Tissue
from diffseglung_core.phantom import FRACTIONS, PATHOLOGIES, Phantom, default_spacing, make_phantom

TINY = (16, 48, 48)


@pytest.fixture(scope="module")
def small() -> Phantom:
    return make_phantom((32, 96, 96), seed=3)


def _local_std(hu: np.ndarray) -> np.ndarray:
    mean = ndi.uniform_filter(hu, 3)
    return np.sqrt(np.maximum(ndi.uniform_filter(hu * hu, 3) - mean * mean, 0))


def test_same_seed_same_phantom_other_seed_other_phantom():
    a, b, c = make_phantom(TINY, seed=1), make_phantom(TINY, seed=1), make_phantom(TINY, seed=2)
    np.testing.assert_array_equal(a.volume.hu, b.volume.hu)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.lung, b.lung)
    assert not np.array_equal(a.volume.hu, c.volume.hu)
    assert not np.array_equal(a.labels, c.labels)


def test_types_shapes_and_grid():
    ph = make_phantom(TINY)
    vol = ph.volume
    assert vol.hu.dtype == np.float32 and vol.shape == TINY
    assert ph.labels.dtype == np.uint8 and ph.labels.shape == TINY
    assert ph.lung.dtype == np.uint8 and ph.lung.shape == TINY
    assert vol.source.format == "phantom"
    assert vol.spacing == pytest.approx(default_spacing(TINY))
    assert vol.spacing[1] * TINY[1] == pytest.approx(350.0)          # a chest field of view
    # canonical layout: x index runs to patient left (RAS x falls), z to superior
    assert vol.affine[0, 2] < 0 and vol.affine[2, 0] > 0
    # the lung mask and the label map agree on what is lung
    np.testing.assert_array_equal(ph.labels > 0, ph.lung > 0)
    assert set(np.unique(ph.labels)) <= set(range(6)) and set(np.unique(ph.lung)) == {0, 1, 2}
    assert np.isfinite(vol.hu).all() and vol.hu.min() >= -1024


def test_given_spacing_is_kept():
    ph = make_phantom(TINY, spacing=(5.0, 0.8, 0.8))
    assert ph.volume.spacing == (5.0, 0.8, 0.8)


def test_tiny_phantom_is_fast():
    make_phantom(TINY, seed=5)                                   # warm imports and caches
    t0 = time.perf_counter()
    make_phantom(TINY, seed=6)
    assert time.perf_counter() - t0 < 1.5


def test_every_class_has_its_share_and_density(small):
    hu, labels = small.volume.hu, small.labels
    lung = labels > 0
    share = {t: (labels == t).sum() / lung.sum() for t in Tissue if t != Tissue.OUTSIDE}
    for t in (Tissue.GGO, Tissue.FIBROSIS, Tissue.EMPHYSEMA, Tissue.CONSOLIDATION):
        assert 0.03 <= share[t] <= 0.15, (t.name, share[t])
    assert share[Tissue.HEALTHY] > 0.5
    med = {t: float(np.median(hu[labels == t])) for t in share}
    assert med[Tissue.EMPHYSEMA] < -930
    assert -900 <= med[Tissue.HEALTHY] <= -800
    assert -700 <= med[Tissue.GGO] <= -400
    assert -800 <= med[Tissue.FIBROSIS] <= -300
    assert med[Tissue.CONSOLIDATION] > -150
    # fibrosis is a mixed reticular pattern: far rougher than healthy lung or GGO
    lstd = _local_std(hu)
    rough = np.median(lstd[labels == Tissue.FIBROSIS])
    assert rough > 2 * np.median(lstd[labels == Tissue.HEALTHY])
    assert rough > 2 * np.median(lstd[labels == Tissue.GGO])
    # fibrosis holds both honeycomb air and dense walls
    fib = hu[labels == Tissue.FIBROSIS]
    assert (fib < -850).mean() > 0.1 and (fib > -300).mean() > 0.1


def test_healthy_lung_has_vessels_and_chest_has_bone_fat_and_air(small):
    hu, labels = small.volume.hu, small.labels
    healthy = hu[labels == Tissue.HEALTHY]
    assert (healthy > -500).mean() > 0.01                        # vessels in the lung
    outside = hu[small.lung == 0]
    assert np.median(hu[:, :3, :3]) < -950                        # air around the body
    assert (outside > 300).sum() > 0                              # ribs and spine
    assert ((outside > -150) & (outside < -50)).mean() > 0.03     # fat


def test_vessels_show_through_ggo_and_air_bronchograms_in_consolidation():
    ph = make_phantom((48, 128, 128), seed=0)
    hu, labels = ph.volume.hu, ph.labels
    assert (hu[labels == Tissue.GGO] > -300).mean() > 0.005
    assert (hu[labels == Tissue.CONSOLIDATION] < -500).mean() > 0.005


def test_lungs_on_both_sides(small):
    xs = np.arange(small.lung.shape[2])
    for side, lo_x in ((1, True), (2, False)):
        cx = (np.sum(small.lung == side, axis=(0, 1)) * xs).sum() / (small.lung == side).sum()
        assert (cx < small.lung.shape[2] / 2) == lo_x                # right lung on the low-x side
    right, left = (small.lung == 1).sum(), (small.lung == 2).sum()
    assert 0.7 < right / left < 1.5


def test_a_consolidation_touches_the_chest_wall(small):
    cons = small.labels == Tissue.CONSOLIDATION
    rim = ndi.binary_dilation(cons) & (small.lung == 0)
    # neighbours outside the lung, away from the mediastinum, that are soft tissue or bone:
    # the lesion abuts the costal pleura, so a lung mask must keep it inside the lung
    width = small.lung.shape[2]
    lateral = np.abs(np.arange(width) - width / 2) > 0.12 * width
    wall = rim & lateral[None, None, :] & (small.volume.hu > -300)
    assert wall.sum() >= 3


def test_pathologies_can_be_left_out_without_moving_the_others():
    full = make_phantom(TINY, seed=4)
    no_emph = make_phantom(TINY, seed=4, pathologies=("ggo", "fibrosis", "consolidation"))
    assert not (no_emph.labels == Tissue.EMPHYSEMA).any()
    for t in (Tissue.GGO, Tissue.FIBROSIS, Tissue.CONSOLIDATION):
        np.testing.assert_array_equal(full.labels == t, no_emph.labels == t)
    healthy = make_phantom(TINY, seed=4, pathologies=())
    assert set(np.unique(healthy.labels)) == {0, 1}
    np.testing.assert_array_equal(healthy.lung, full.lung)
    # without emphysema there is far less lung below -950 HU
    low = lambda ph: (ph.volume.hu[ph.labels > 0] < -950).mean()  # noqa: E731
    assert low(no_emph) < 0.5 * low(full)


def test_fractions_are_honoured():
    ph = make_phantom(TINY, seed=0, pathologies=("ggo",), fractions={"ggo": 0.3})
    share = (ph.labels == Tissue.GGO).sum() / (ph.labels > 0).sum()
    assert 0.3 * 0.85 - 0.01 <= share <= 0.3 * 1.15 + 0.01


def test_single_slice():
    ph = make_phantom((1, 96, 96), seed=0)
    assert ph.volume.shape == (1, 96, 96)
    assert set(np.unique(ph.lung)) == {0, 1, 2}
    assert set(np.unique(ph.labels)) == set(range(6))


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown pathologies"):
        make_phantom(TINY, pathologies=("tumour",))
    with pytest.raises(ValueError, match="shape"):
        make_phantom((4, 8, 8))
    assert set(FRACTIONS) == set(PATHOLOGIES)


def test_cli_writes_ct_labels_and_lung(tmp_path, capsys):
    from diffseglung_core.cli import main
    from diffseglung_core.io import read_mask, read_scan

    out = tmp_path / "ph"
    assert main(["phantom", str(out), "--shape", *map(str, TINY), "--seed", "2"]) == 0
    ph = make_phantom(TINY, seed=2)
    ct = read_scan(out / "ct.nii.gz")
    assert ct.shape == TINY and ct.spacing == pytest.approx(ph.volume.spacing, rel=1e-4)
    assert np.abs(ct.hu - ph.volume.hu).max() <= 0.5 + 1e-3          # stored as int16 HU
    np.testing.assert_array_equal(read_mask(out / "labels.nii.gz", ct), ph.labels)
    np.testing.assert_array_equal(read_mask(out / "lung.nii.gz", ct), ph.lung)
    assert "fibrosis" in capsys.readouterr().out
    # never replaces files unless asked
    assert main(["phantom", str(out), "--shape", *map(str, TINY)]) != 0
    assert "exists" in capsys.readouterr().err
    assert main(["phantom", str(out), "--shape", *map(str, TINY), "--overwrite",
                 "--format", "nrrd", "--pathologies"]) == 0
    lab = read_mask(out / "labels.nrrd", read_scan(out / "ct.nrrd"))
    assert set(np.unique(lab)) == {0, 1}


def test_same_chest_at_any_resolution():
    coarse, fine = make_phantom(TINY, seed=7), make_phantom((32, 96, 96), seed=7)
    ml = lambda ph, side: (ph.lung == side).sum() * ph.volume.voxel_volume_ml  # noqa: E731
    for side in (1, 2):
        assert ml(coarse, side) == pytest.approx(ml(fine, side), rel=0.1)
    assert 1500 < ml(fine, 1) + ml(fine, 2) < 8000                   # adult lungs, mL


@pytest.mark.slow
def test_benchmark_size_builds_in_reasonable_cpu_time():
    t0 = time.process_time()
    ph = make_phantom((300, 512, 512), seed=0)
    assert time.process_time() - t0 < 90
    assert ph.volume.hu.dtype == np.float32 and ph.volume.shape == (300, 512, 512)
    labels, hu = ph.labels, ph.volume.hu
    assert set(np.unique(labels)) == set(range(6))
    assert np.median(hu[labels == Tissue.EMPHYSEMA]) < -930
    assert -700 <= np.median(hu[labels == Tissue.GGO]) <= -400
    assert np.median(hu[labels == Tissue.CONSOLIDATION]) > -150


# ---------------------------------------------------------------------------
# anatomy: lungs that fill the thoracic cavity, the diaphragm and the abdomen


def _mm(ph: Phantom, axis: int) -> np.ndarray:
    """Nominal-frame coordinates (mm, centred) of the voxel centres along ``axis`` (1 y, 2 x)."""
    n = ph.volume.shape[axis]
    return (np.arange(n) - (n - 1) / 2) * ph.volume.spacing[axis]


def _rib_gaps(hu: np.ndarray, lung: np.ndarray, spacing) -> np.ndarray:
    """Distance (mm) from the inner surface of the ribs to the lung, per 2 degrees around the chest.

    In each angular sector (seen from the centre of the slice) the rib voxel nearest
    the centre stands for the rib's inner surface; spine and sternum (|x| < 45 mm)
    are left out.
    """
    n_y, n_x = hu.shape
    y = ((np.arange(n_y) - (n_y - 1) / 2) * spacing[0])[:, None] * np.ones((1, n_x))
    x = ((np.arange(n_x) - (n_x - 1) / 2) * spacing[1])[None, :] * np.ones((n_y, 1))
    to_lung = ndi.distance_transform_edt(lung == 0, sampling=spacing)
    rib = (hu > 150) & (np.abs(x) > 45)                                  # cortex and marrow
    sector = np.degrees(np.arctan2(y[rib], x[rib])).astype(int) // 2
    radius, gap = np.hypot(y[rib], x[rib]), to_lung[rib]
    return np.array([gap[sector == s][np.argmin(radius[sector == s])] for s in np.unique(sector)])


@pytest.mark.parametrize("seed", [0, 3])
def test_lungs_reach_the_ribs(seed):
    """All round the chest, from the bases to the upper lobes, the lung lies against the ribs.

    The inner surface of a rib lies 1 mm outside the cavity and the lung starts 1.5 mm
    inside it (parietal pleura and extrapleural fat between): about 2.5-4 mm from voxel
    centre to voxel centre, more only at the upper and lower edges of an oblique rib.
    """
    for z in (130.0, 190.0, 245.0):
        ph = make_phantom((1, 256, 256), seed=seed, noise_hu=0, blur_mm=0, z_range=(z - 5, z + 5))
        gaps = _rib_gaps(ph.volume.hu[0], ph.lung[0], ph.volume.spacing[1:])
        assert gaps.size >= 20
        assert np.median(gaps) <= 4.5 and np.percentile(gaps, 90) <= 6.5, (z, np.sort(gaps))


def test_lungs_rest_on_the_diaphragm():
    """The lung bases lie on the diaphragm: a few mm of muscle, then the liver (right), no gap."""
    ph = make_phantom((50, 64, 64), seed=0, noise_hu=0, blur_mm=0, z_range=(0, 150), pathologies=())
    from diffseglung_core.phantom.abdomen import ORGAN_HU
    from diffseglung_core.phantom.anatomy import SOFT

    hu, lung, dz = ph.volume.hu, ph.lung, ph.volume.spacing[0]
    z = (np.arange(hu.shape[0]) + 0.5) * dz
    for side in (1, 2):
        m = lung == side
        has = m.any(axis=0)
        base = np.argmax(m, axis=0)                                      # lowest lung slice per column
        ys, xs = np.nonzero(has & (z[base] > 60))                        # columns over the dome
        assert ys.size > 100
        under = hu[base[ys, xs] - 1, ys, xs]
        # right under the lung: the diaphragm muscle, never fat or air
        assert np.mean(under == SOFT) > 0.95
        if side == 1:
            # and the liver 3-6 mm lower
            two = hu[base[ys, xs] - 2, ys, xs]
            assert np.mean((under == ORGAN_HU["liver"]) | (two == ORGAN_HU["liver"])) > 0.55
    # costophrenic recesses dip low, the right dome rises higher than the left
    lowest = {s: z[np.argmax(lung == s, axis=0)][(lung == s).any(axis=0)] for s in (1, 2)}
    assert min(lowest[1].min(), lowest[2].min()) < 40
    assert lowest[1].max() > 100 and lowest[1].max() > lowest[2].max() + 8
    # the recess is deepest at the back: the lowest lung of the posterior third lies below
    # the anterior third's
    y = _mm(ph, 1)
    for s in (1, 2):
        zs = np.where((lung == s).any(axis=0), z[np.argmax(lung == s, axis=0)], np.inf)
        assert zs[y > 50].min() < zs[y < -50].min() - 20


@pytest.mark.parametrize("shape", [(4, 96, 96), (1, 96, 96)])
def test_abdomen_slab_has_bowel_gas_organs_and_no_lung(shape):
    ph = make_phantom(shape, seed=1, case="abdomen")
    hu = ph.volume.hu
    assert ph.case == "abdomen" and not ph.lung.any() and not ph.labels.any()
    assert ph.effusion is None and ph.mass is None
    body = np.stack([ndi.binary_fill_holes(s > -500) for s in hu])
    interior = ndi.binary_erosion(body, np.ones((1, 5, 5), bool))
    gas = interior & (hu < -900)
    assert gas.sum() >= 20                                               # stomach and colon gas
    assert ((hu > 30) & (hu < 80) & interior).sum() > 0.15 * interior.sum()   # liver, spleen, kidneys
    assert (hu[interior] > 300).any()                                    # spine
    # the slab lies below the lungs, in the chest's world frame (0 at the chest's mid height)
    assert ph.volume.source.metadata["z_range"] == [-45.0, 15.0]
    centre = ph.volume.affine @ np.array([(shape[0] - 1) / 2, 0, 0, 1])
    assert centre[2] == pytest.approx(-15.0 - 150.0)


def test_chest_with_abdomen_shows_bowel_gas_below_the_lungs():
    ph = make_phantom((28, 64, 64), seed=2, case="chest_abdomen")
    lo, hi = ph.volume.source.metadata["z_range"]
    assert (lo, hi) == (-120.0, 300.0)
    assert ph.volume.spacing[0] == pytest.approx(420 / 28)
    z = lo + (np.arange(28) + 0.5) * (hi - lo) / 28
    below = z < 20
    assert ph.lung[~below].any() and not ph.lung[below].any()
    hu = ph.volume.hu[below]
    interior = np.stack([ndi.binary_erosion(ndi.binary_fill_holes(s > -500), np.ones((3, 3), bool))
                         for s in hu])
    assert (interior & (hu < -900)).sum() >= 10


# ---------------------------------------------------------------------------
# named cases


def test_every_case_is_deterministic_and_consistent():
    from diffseglung_core.phantom import CASES

    for name in CASES:
        a, b = make_phantom((8, 48, 48), seed=5, case=name), make_phantom((8, 48, 48), seed=5, case=name)
        np.testing.assert_array_equal(a.volume.hu, b.volume.hu)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.lung, b.lung)
        for extra in ("effusion", "mass", "pneumothorax"):
            ea, eb = getattr(a, extra), getattr(b, extra)
            assert (ea is None) == (eb is None)
            if ea is not None:
                np.testing.assert_array_equal(ea, eb)
        np.testing.assert_array_equal(a.labels > 0, a.lung > 0)
        assert a.case == name and a.volume.source.metadata["case"] == name
    with pytest.raises(ValueError, match="unknown case"):
        make_phantom(TINY, case="pneumoperitoneum")


def test_contrast_case_changes_only_the_blood():
    """The same anatomy and lesions as the chest; the heart and the vessels read as contrast."""
    plain = make_phantom((12, 96, 96), seed=3)
    enhanced = make_phantom((12, 96, 96), seed=3, case="contrast")
    np.testing.assert_array_equal(plain.labels, enhanced.labels)
    np.testing.assert_array_equal(plain.lung, enhanced.lung)
    brighter = enhanced.volume.hu - plain.volume.hu
    assert brighter.min() >= -1e-3                       # blood only gains density
    blood = brighter > 150                                # (blur spreads it over its edge)
    assert blood.sum() > 500
    # the heart's chambers: a large bright blob between the lungs, at about 250 HU
    assert np.median(enhanced.volume.hu[blood]) == pytest.approx(250, abs=40)
    # and the pulmonary vessels inside the lungs
    assert (blood & (plain.lung > 0)).sum() > 20


@pytest.mark.parametrize("seed", [0, 1])
def test_white_lung(seed):
    """Mostly GGO and consolidation, dependent and peripheral; air bronchograms; vessels in the GGO."""
    ph = make_phantom((24, 96, 96), seed=seed, case="white_lung")
    hu, labels = ph.volume.hu, ph.labels
    lung = labels > 0
    share = {t: (labels == t).sum() / lung.sum() for t in Tissue if t != Tissue.OUTSIDE}
    assert 0.44 <= share[Tissue.GGO] <= 0.60, share
    assert 0.25 <= share[Tissue.CONSOLIDATION] <= 0.40, share
    assert 0.05 <= share[Tissue.HEALTHY] <= 0.25, share                # a small aerated part
    assert share[Tissue.FIBROSIS] == 0 and share[Tissue.EMPHYSEMA] == 0
    cons, ggo, healthy = (labels == Tissue.CONSOLIDATION), (labels == Tissue.GGO), (labels == Tissue.HEALTHY)
    # dependent: consolidation lies behind the GGO, the aerated lung in front
    y = _mm(ph, 1)[None, :, None] * np.ones_like(hu)
    assert y[cons].mean() > y[ggo].mean() + 10 > y[healthy].mean() + 10
    # peripheral: consolidation is closer to the lung border than the aerated lung
    depth = ndi.distance_transform_edt(lung, sampling=ph.volume.spacing)
    assert np.median(depth[cons]) < np.median(depth[healthy])
    assert -700 <= np.median(hu[ggo]) <= -450 and np.median(hu[cons]) > -100
    assert (hu[cons] < -500).mean() > 0.005                              # air bronchograms
    assert (hu[ggo] > -300).mean() > 0.005                               # vessels show through GGO


@pytest.mark.parametrize("case, sides",
                         [("effusion", {1, 2}), ("effusion_right", {1}), ("effusion_left", {2})])
def test_pleural_effusion_is_fluid_outside_the_lung(case, sides):
    ph = make_phantom((24, 96, 96), seed=2, case=case)
    fluid, lung, hu, labels = ph.effusion, ph.lung, ph.volume.hu, ph.labels
    assert fluid is not None and fluid.dtype == np.uint8 and fluid.shape == hu.shape
    assert set(np.unique(fluid)) - {0} == sides
    assert not (fluid.astype(bool) & (lung > 0)).any() and not labels[fluid > 0].any()
    ml = {s: (fluid == s).sum() * ph.volume.voxel_volume_ml for s in sides}
    assert min(ml.values()) > 250                                        # large: hundreds of mL
    # water density, homogeneous (away from its border, partial volume)
    core = ndi.binary_erosion(fluid > 0, np.ones((1, 3, 3), bool))
    assert 0 <= np.median(hu[core]) <= 20 and np.std(hu[core]) < 30
    # dependent: along the posterior chest wall, behind the lung on its side
    y = _mm(ph, 1)[None, :, None] * np.ones_like(hu)
    for s in sides:
        assert y[fluid == s].mean() > y[lung == s].mean() + 30
    # the lung along its thick posterior part is compressed (airless, labelled consolidation)
    rim = ndi.binary_dilation(fluid > 0, np.ones((1, 3, 3), bool)) & (lung > 0) & (y > 20)
    assert (labels[rim] == Tissue.CONSOLIDATION).mean() > 0.85
    assert np.median(hu[rim]) > -200
    # and the effusion thins up the lateral wall (a meniscus): less fluid in front than behind
    assert (fluid[:, y[0, :, 0] < 0] > 0).sum() < 0.2 * (fluid[:, y[0, :, 0] > 0] > 0).sum()


def test_chest_has_no_effusion_and_no_mass():
    ph = make_phantom(TINY, seed=0)
    assert ph.effusion is None and ph.mass is None and ph.pneumothorax is None and ph.case == "chest"


def test_pneumothorax_is_free_air_in_front_of_the_right_lung():
    """Air rises: a crescent of air (no vessels) along the anterior chest wall of the right
    pleural space, outside the lung, with the visceral pleura as a faint line along the lung."""
    ph = make_phantom((24, 96, 96), seed=2, case="pneumothorax")
    air, lung, hu = ph.pneumothorax, ph.lung, ph.volume.hu
    assert air is not None and air.dtype == bool and air.any()
    assert not (air & (lung > 0)).any() and not ph.labels[air].any()
    assert air.sum() * ph.volume.voxel_volume_ml > 150
    x, y = (_mm(ph, a) for a in (2, 1))
    assert (np.broadcast_to(x[None, None, :], air.shape)[air] < 0).all()   # the right side
    y = np.broadcast_to(y[None, :, None], air.shape)
    assert y[air].mean() < y[lung == 1].mean() - 30                        # in front of its lung
    core = ndi.binary_erosion(air, np.ones((1, 3, 3), bool))
    assert np.median(hu[core]) < -980 and hu[core].max() < -850            # empty: air and noise
    line = air & ndi.binary_dilation(lung == 1, np.ones((1, 3, 3), bool))
    assert -990 < np.median(hu[line]) < -850                               # the visceral pleura


@pytest.mark.parametrize("case", ["pleural_mass", "pleural_mass_mediastinal", "pleural_mass_diaphragmatic"])
@pytest.mark.parametrize("seed", [0, 2])
def test_pleural_mass_is_solid_lung_against_the_pleura(case, seed):
    ph = make_phantom((24, 96, 96), seed=seed, case=case)
    mass, hu, lung = ph.mass, ph.volume.hu, ph.lung
    assert mass is not None and mass.dtype == bool and mass.any()
    assert (ph.labels[mass] == Tissue.CONSOLIDATION).all() and (lung[mass] == 1).all()
    assert 20 <= np.median(hu[mass]) <= 45
    zs, ys, xs = np.nonzero(mass)
    sp = ph.volume.spacing
    extent = max((np.ptp(ys) + 1) * sp[1], (np.ptp(xs) + 1) * sp[2])
    assert 25 <= extent <= 65                                            # 3-6 cm
    # it touches the pleura: tissue outside the lung next to it, on the expected side
    ring = ndi.binary_dilation(mass) & ~mass & (lung == 0)
    assert ring.sum() >= 5
    rz, ry, rx = np.nonzero(ring)
    x = _mm(ph, 2)
    if case == "pleural_mass":
        assert np.median(x[rx]) < -110                                  # the right lateral chest wall
    elif case == "pleural_mass_mediastinal":
        assert -60 < np.median(x[rx]) < 0                              # the mediastinum
    else:
        assert np.mean(rz < zs.mean()) > 0.9                           # the diaphragm below it
    # no vessels or airways run through it
    core = ndi.binary_erosion(mass)
    assert not (hu[core] < -300).any()


def test_cli_writes_a_case_with_its_effusion_and_mass(tmp_path, capsys):
    from diffseglung_core.cli import main
    from diffseglung_core.io import read_mask, read_scan

    out = tmp_path / "eff"
    assert main(["phantom", str(out), "--shape", "8", "48", "48", "--case", "effusion_right"]) == 0
    ph = make_phantom((8, 48, 48), case="effusion_right")
    ct = read_scan(out / "ct.nii.gz")
    np.testing.assert_array_equal(read_mask(out / "effusion.nii.gz", ct), ph.effusion)
    np.testing.assert_array_equal(read_mask(out / "lung.nii.gz", ct), ph.lung)
    assert not (out / "mass.nii.gz").exists() and not (out / "pneumothorax.nii.gz").exists()
    assert "pleural fluid" in capsys.readouterr().out
    out = tmp_path / "ptx"
    assert main(["phantom", str(out), "--shape", "8", "48", "48", "--case", "pneumothorax"]) == 0
    ct = read_scan(out / "ct.nii.gz")
    np.testing.assert_array_equal(read_mask(out / "pneumothorax.nii.gz", ct) > 0,
                                  make_phantom((8, 48, 48), case="pneumothorax").pneumothorax)
    assert "free pleural air" in capsys.readouterr().out
    out = tmp_path / "abd"
    assert main(["phantom", str(out), "--shape", "2", "48", "48", "--case", "pleural_mass",
                 "--z-range", "130", "170"]) == 0
    ph = make_phantom((2, 48, 48), case="pleural_mass", z_range=(130, 170))
    ct = read_scan(out / "ct.nii.gz")
    assert ct.spacing[0] == pytest.approx(20.0)
    np.testing.assert_array_equal(read_mask(out / "mass.nii.gz", ct), ph.mass)
    assert main(["phantom", str(tmp_path / "x"), "--z-range", "10", "0"]) != 0
    assert "z-range" in capsys.readouterr().err
