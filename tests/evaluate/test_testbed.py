"""Real-anatomy test bed: lesions inserted into real CT, their truth, noise and HU; false-positive burden."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from diffseglung_core.evaluate import testbed as tb
from diffseglung_core.evaluate.testbed_burden import (
    dense_structures,
    dilate_mm,
    false_positive_burden,
    thick_part,
)
from diffseglung_core.evaluate.testbed_noise import (
    estimate_noise,
    residual_std,
    synthesize_noise,
)
from diffseglung_core.labels import Tissue

S = tb.LesionSpec


# --------------------------------------------------------------------------- no data needed


def _lag1(a: np.ndarray) -> float:
    a = a - a.mean()
    return float((a[:, :, 1:] * a[:, :, :-1]).mean() / a.var())


def test_noise_estimate_recovers_white_noise():
    rng = np.random.default_rng(0)
    hu = 40.0 + 30.0 * rng.standard_normal((6, 128, 128))
    model = estimate_noise(hu, (5.0, 0.8, 0.8))
    assert model.method == "soft-tissue NPS"
    assert model.sigma == pytest.approx(30.0, rel=0.08)
    assert abs(_lag1(synthesize_noise((4, 128, 128), model, rng))) < 0.05


def test_noise_estimate_recovers_correlated_noise_and_its_level_per_slice():
    rng = np.random.default_rng(1)
    white = rng.standard_normal((8, 160, 160))
    corr = ndi.gaussian_filter(white, (0, 1.2, 1.2))
    corr /= corr.std()
    level = np.where(np.arange(8) < 4, 20.0, 60.0)[:, None, None]
    hu = 40.0 + level * corr
    model = estimate_noise(hu, (2.0, 0.7, 0.7))
    assert model.sigma_z[:3] == pytest.approx(20.0, rel=0.12)
    assert model.sigma_z[-3:] == pytest.approx(60.0, rel=0.12)
    synth = synthesize_noise((8, 160, 160), model, rng)
    assert synth[:3].std() == pytest.approx(20.0, rel=0.12)
    assert synth[-3:].std() == pytest.approx(60.0, rel=0.12)
    assert _lag1(synth) == pytest.approx(_lag1(corr), abs=0.08)
    assert _lag1(corr) > 0.5


def _synthetic_lung(centre):
    """A 1 mm lung block with thin dense lines (vessels) and a solid sphere (a mass) at ``centre``."""
    rng = np.random.default_rng(2)
    shape = (40, 80, 80)
    hu = -860.0 + 15.0 * rng.standard_normal(shape)
    lung = np.zeros(shape, bool)
    lung[2:-2, 4:-4, 4:-4] = True
    hu[~lung] = 40.0
    z, y, x = np.indices(shape)
    for yy in (15, 30, 45, 60):                     # vessels along x, 2-3 mm across
        hu[((y - yy) ** 2 + (z - 20) ** 2) <= 1.2 ** 2] = 30.0
    for xx in (20, 55):                             # vessels along z
        hu[((y - 70) ** 2 + (x - xx) ** 2) <= 1.0] = 30.0
    sphere = ((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2) <= 10 ** 2
    hu[sphere] = 40.0
    return hu.astype(np.float32), lung, sphere


@pytest.mark.parametrize("centre", [(20, 38, 40), (18, 22, 60)])
def test_false_positive_burden_knows_thin_structures_and_the_mass(centre):
    hu, lung, sphere = _synthetic_lung(centre)
    sp = (1.0, 1.0, 1.0)
    st = dense_structures(hu, lung, sp)
    # the mass is found by density and size wherever it is
    assert st.component_ml[0] == pytest.approx(sphere.sum() / 1000.0, rel=0.1)
    assert (st.mass & sphere).sum() / sphere.sum() > 0.95
    assert not (st.thin & sphere).any()
    lines = (hu > -500) & lung & ~ndi.binary_dilation(sphere, iterations=2)
    assert st.thin.sum() > 0.9 * lines.sum()

    labels = np.where(lung, Tissue.HEALTHY, 0).astype(np.uint8)
    clean = false_positive_burden(labels, lung, hu, sp, structures=st)
    assert clean["thin_dense_pathology_fraction"] == 0.0
    assert clean["percent_lung"] == {"ggo": 0.0, "fibrosis": 0.0, "emphysema": 0.0, "consolidation": 0.0}
    assert clean["mass_consolidation_fraction"] == 0.0

    labels[st.thin] = Tissue.FIBROSIS              # exactly the thin dense voxels called fibrosis
    labels[st.mass] = Tissue.CONSOLIDATION
    b = false_positive_burden(labels, lung, hu, sp, structures=st)
    assert b["thin_dense_pathology_fraction"] == 1.0
    assert b["thin_dense_fraction_by_class"]["fibrosis"] == 1.0
    assert b["percent_lung"]["fibrosis"] == pytest.approx(100.0 * st.thin.sum() / lung.sum())
    assert b["percent_lung"]["ggo"] == 0.0 and b["percent_lung"]["emphysema"] == 0.0
    assert b["mass_consolidation_fraction"] == 1.0
    assert b["percent_lung_away_from_mass"]["consolidation"] == 0.0
    assert b["thin_dense_pathology_fraction_away_from_mass"] == 1.0
    # the thin strands next to the mass called pathology: away from it, none
    near = dilate_mm(st.solid, sp, 10.0)
    labels[st.thin & ~near] = Tissue.HEALTHY
    b = false_positive_burden(labels, lung, hu, sp, structures=st)
    assert b["thin_dense_pathology_fraction_away_from_mass"] == 0.0
    assert 0.0 < b["thin_dense_pathology_fraction"] < 1.0
    assert "percent_lung_outside_unknown" not in b
    # tissue of unknown class (here the mass's surroundings) left out: the same as away from it
    b = false_positive_burden(labels, lung, hu, sp, structures=st, unknown=near)
    assert b["thin_dense_pathology_fraction_outside_unknown"] == 0.0
    assert b["percent_lung_outside_unknown"] == {"ggo": 0.0, "fibrosis": 0.0, "emphysema": 0.0,
                                                 "consolidation": 0.0}
    labels[st.thin] = Tissue.FIBROSIS

    labels[st.mass & (np.indices(hu.shape)[0] < centre[0])] = Tissue.GGO
    half = false_positive_burden(labels, lung, hu, sp, structures=st)
    assert 0.3 < half["mass_consolidation_fraction"] < 0.7


def test_thick_part_is_an_opening_in_mm():
    m = np.zeros((5, 60, 60), bool)
    m[:, 10:12, 5:55] = True                        # 2 voxels = 1 mm thick at 0.5 mm
    m[:, 30:50, 20:40] = True                       # 10 mm block
    t = thick_part(m, (5.0, 0.5, 0.5), 2.0)
    assert not t[:, 10:12].any()
    assert t[:, 32:48, 22:38].all()


def test_native_lucent_finds_a_low_attenuation_region_not_noise():
    rng = np.random.default_rng(0)
    sp = (1.0, 1.0, 1.0)
    hu = (-880.0 + 60.0 * rng.standard_normal((40, 60, 60))).astype(np.float32)   # noisy healthy lung
    z, y, x = np.indices(hu.shape)
    region = (z - 20) ** 2 + (y - 30) ** 2 + (x - 30) ** 2 <= 8 ** 2             # 2.1 mL at -980 HU
    hu[region] = -980.0 + 60.0 * rng.standard_normal(int(region.sum()))
    lung = np.ones(hu.shape, bool)
    assert (hu[~region] < -950).mean() > 0.1                        # noise alone crosses the threshold
    lucent = tb.native_lucent(hu, lung, sp)
    assert not lucent[~ndi.binary_dilation(region, iterations=2)].any()
    assert lucent[(z - 20) ** 2 + (y - 30) ** 2 + (x - 30) ** 2 <= 5 ** 2].all()   # its core, at least
    assert not tb.native_lucent(hu, lung, sp, min_ml=3.0).any()    # the region is smaller than that


def test_native_lucent_reads_a_subpleural_region_without_the_chest_wall():
    rng = np.random.default_rng(1)
    sp = (1.0, 1.0, 1.0)
    hu = (-880.0 + 30.0 * rng.standard_normal((30, 60, 60))).astype(np.float32)
    hu[:, :, :10] = 40.0                                            # chest wall
    lung = np.zeros(hu.shape, bool)
    lung[:, :, 10:] = True
    strip = lung & (np.indices(hu.shape)[2] < 14)                   # 4 mm under the pleura, 7 mL
    hu[strip] = -985.0 + 30.0 * rng.standard_normal(int(strip.sum()))
    lucent = tb.native_lucent(hu, lung, sp)
    assert lucent[:, :, 10:13].all()                # the wall does not lift it (all but its inner edge)
    assert not lucent[:, :, 15:].any()                              # the lung beyond stays out


def test_standard_cases_without_data_is_empty(tmp_path):
    assert tb.standard_cases(tmp_path) == {}


def test_lesion_spec_checks_its_fields():
    with pytest.raises(ValueError):
        S("tumour", 20)
    with pytest.raises(ValueError):
        S("ggo", 20, zone="apical")
    with pytest.raises(ValueError):
        S("ggo", 0)


# --------------------------------------------------------------------------- real CT (CIP, small)


@pytest.fixture(scope="module")
def cip64(cip_chest):
    vol, lung = tb.load_cip64(cip_chest.parent)
    return vol, lung, tb.prepare_scan(vol, lung)


@pytest.fixture(scope="module")
def crop(cip_chest):
    vol, lung = tb.load_cip_crop(cip_chest.parent)
    return vol, lung, tb.prepare_scan(vol, lung)


@pytest.fixture(scope="module")
def cip64_case(cip64):
    vol, lung, ctx = cip64
    return tb.build_case("cip64-mixed", vol, lung, context=ctx)


@pytest.fixture(scope="module")
def crop_case(crop):
    vol, lung, ctx = crop
    return tb.build_case("cipcrop-mixed", vol, lung, context=ctx)


def test_crop_lung_map_is_the_matching_slices(crop):
    vol, lung, _ = crop
    assert lung.shape == vol.shape
    frac = lung.mean()
    assert 0.2 < frac < 0.8
    assert np.median(vol.hu[lung > 0]) < -700                      # lung is air-filled tissue


def test_same_seed_same_case_other_seed_other_case(cip64):
    vol, lung, ctx = cip64
    specs = (S("ggo", 40), S("consolidation", 40, True), S("panlobular", 40))
    a = tb.insert_lesions(vol, lung, specs, seed=7, context=ctx)
    b = tb.insert_lesions(vol, lung, specs, seed=7)                # context rebuilt: same result
    c = tb.insert_lesions(vol, lung, specs, seed=8, context=ctx)
    assert np.array_equal(a.volume.hu, b.volume.hu)
    assert np.array_equal(a.truth, b.truth)
    assert [x.centre_mm for x in a.lesions] == [x.centre_mm for x in b.lesions]
    assert not np.array_equal(a.truth, c.truth)
    assert not np.array_equal(vol.hu, a.volume.hu)                 # input untouched, output changed
    assert np.array_equal(vol.hu, ctx.volume.hu)


@pytest.mark.parametrize("which", ["cip64_case", "crop_case"])
def test_truth_lives_on_the_lung_mask(which, request):
    case = request.getfixturevalue(which)
    lung = case.lung > 0
    assert np.array_equal(case.truth > 0, lung)
    assert set(np.unique(case.truth[lung])) <= {1, 2, 3, 4, 5}
    assert not case.skipped
    for rec in case.lesions:
        m = case.lesion_map == rec.index
        assert m.any()
        assert np.all(case.truth[m] == rec.label)
        assert rec.volume_ml == pytest.approx(m.sum() * np.prod(case.volume.spacing) / 1000.0)
    # nothing outside the lung is touched
    vol0 = case.volume.hu
    assert case.truth.shape == vol0.shape


def test_outside_the_lung_the_scan_is_unchanged(cip64, cip64_case):
    vol, lung, _ = cip64
    out = ~(lung > 0)
    assert np.array_equal(vol.hu[out], cip64_case.volume.hu[out])


def _core(mask: np.ndarray, erode: int) -> np.ndarray:
    core = ndi.binary_erosion(mask, structure=np.ones((1, 3, 3), bool), iterations=erode)
    return core if core.sum() >= 20 else mask


KIND_HU = {  # intended HU of the lesion's core (median), per kind
    "ggo": (-750.0, -380.0),
    "consolidation": (-80.0, 60.0),
    "mass": (-20.0, 70.0),
}


@pytest.mark.parametrize("kind", sorted(KIND_HU))
def test_inserted_hu_in_the_intended_range(crop, kind):
    vol, lung, ctx = crop
    case = tb.insert_lesions(vol, lung, [S(kind, 30)], seed=11, context=ctx)
    m = case.lesion_map == 1
    lo, hi = KIND_HU[kind]
    assert lo <= np.median(case.volume.hu[_core(m, 4)]) <= hi


@pytest.mark.parametrize("kinds", [("centrilobular", "paraseptal", "panlobular")])
@pytest.mark.parametrize("scan", ["crop", "cip64"])
def test_emphysema_is_below_minus_900_on_average(request, scan, kinds):
    vol, lung, ctx = request.getfixturevalue(scan)
    specs = [S(k, 40, k == "paraseptal") for k in kinds]
    case = tb.insert_lesions(vol, lung, specs, seed=3, context=ctx)
    emph = case.truth == Tissue.EMPHYSEMA
    assert emph.sum() > 50
    assert case.volume.hu[emph].mean() < -900
    assert case.volume.hu[emph].mean() < vol.hu[emph].mean() - 15   # darker than it was


def test_fibrosis_is_denser_than_lung_with_dense_lines_and_air_cysts(crop):
    vol, lung, ctx = crop
    case = tb.insert_lesions(vol, lung, [S("honeycombing", 50, True)], seed=5, context=ctx)
    fib = case.truth == Tissue.FIBROSIS
    assert fib.sum() > 100
    new, old = case.volume.hu[fib], vol.hu[fib]
    assert new.mean() > old.mean() + 100
    assert (new > -300).mean() > 0.1                                # dense lines and walls
    assert (new < -900).mean() > 0.03                               # air cysts
    assert case.lesions[0].touches_pleura


def test_ggo_haze_keeps_vessels_visible(crop):
    vol, lung, ctx = crop
    case = tb.insert_lesions(vol, lung, [S("ggo", 45)], seed=2, context=ctx)
    m = _core(case.lesion_map == 1, 3)
    native, new = vol.hu[m], case.volume.hu[m]
    vessel = native > -300
    parenchyma = native < -750
    assert vessel.sum() >= 5 and parenchyma.sum() > 100
    haze = np.median(new[parenchyma])
    assert -750 <= haze <= -380
    assert np.median(new[vessel]) > haze + 200                      # vessels still stand out
    assert np.median(new[vessel] - native[vessel]) > -2 * ctx.noise.sigma   # not replaced
    assert haze > np.median(native[parenchyma]) + 150               # but the parenchyma is hazier


def test_noise_in_a_solid_lesion_matches_the_scan(crop):
    vol, lung, ctx = crop
    case = tb.insert_lesions(vol, lung, [S("mass", 35)], seed=4, context=ctx)
    core = _core(case.lesion_map == 1, 6)
    assert core.sum() > 200
    measured = residual_std(case.volume.hu, core)
    expected = float(np.mean(ctx.noise.sigma_z))
    assert 0.7 * expected <= measured <= 1.4 * expected


def test_subpleural_lesions_touch_the_pleura_and_central_ones_do_not(crop):
    vol, lung, ctx = crop
    case = tb.insert_lesions(vol, lung, [S("consolidation", 30, True), S("mass", 16, False),
                                         S("ggo", 20, False)], seed=9, context=ctx)
    touches = [r.touches_pleura for r in case.lesions]
    assert touches == [True, False, False]


def test_lesions_do_not_overlap(cip64_case):
    ids = [r.index for r in cip64_case.lesions]
    assert len(ids) == len(set(ids)) == 5
    for r in cip64_case.lesions:
        assert r.voxels > 0
        assert r.label == tb.KINDS[r.kind]


def test_the_engine_reads_honeycombing_on_4mm_voxels_as_fibrosis(cip64_case):
    """On the CIP chest's 4 mm grid the cysts and walls of honeycombing blur into one textured
    net of dense voxels: the engine (its own lung mask) calls it fibrosis, not ground glass,
    and keeps the ground-glass lesion ground glass. Where partial volume thickens the net into
    a dense region laced with walls, that region is not consolidation (1.4 % of the
    honeycombing was), while the homogeneous consolidation and mass stay solid."""
    from diffseglung_core.segment import segment_volume

    labels = np.asarray(segment_volume(cip64_case.volume, device="cpu").labels)
    share = {r.kind: np.bincount(labels[cip64_case.lesion_map == r.index], minlength=6)
             / r.voxels for r in cip64_case.lesions}
    assert share["honeycombing"][Tissue.FIBROSIS] > 0.5
    assert share["honeycombing"][Tissue.GGO] < 0.2
    assert share["honeycombing"][Tissue.CONSOLIDATION] < 0.002
    assert share["ggo"][Tissue.GGO] > 0.8
    assert share["consolidation"][Tissue.CONSOLIDATION] > 0.9
    assert share["mass"][Tissue.CONSOLIDATION] > 0.9


def test_the_lung_mask_keeps_every_lesion_of_the_two_slice_crop(crop_case):
    """The lung mask of the two-slice CIP crop with its lesions (its field of view cuts the
    body, so depth below the skin counts from the image's edge) holds each lesion: the
    consolidation against the anterior chest wall was 36 % inside before its costal pocket
    was judged against the lung's surface beside it."""
    from diffseglung_core.lung import segment_scan_lungs

    lung = segment_scan_lungs(crop_case.volume).labels > 0
    for r in crop_case.lesions:
        assert lung[crop_case.lesion_map == r.index].mean() > 0.9, r.kind


# --------------------------------------------------------------------------- A0001 (slow: lung mask)


@pytest.mark.slow
def test_a0001_mass_is_found_and_left_alone(a0001_dicom):
    vol, lung = tb.load_a0001(a0001_dicom.parents[1])
    ctx = tb.prepare_scan(vol, lung)
    labels = np.where(lung > 0, Tissue.HEALTHY, 0).astype(np.uint8)
    b = false_positive_burden(labels, lung, vol.hu, vol.spacing)
    assert b["mass_ml"] > 10.0                                      # the tumour, by density and size
    assert b["thin_dense_voxels"] > 1000
    assert b["thin_dense_pathology_fraction"] == 0.0
    case = tb.build_case("a0001-consolidation", vol, lung, context=ctx)
    assert not (case.lesion_map > 0)[ctx.dense].any()               # nothing drawn over native dense tissue
    assert not case.skipped


@pytest.mark.slow
def test_a0001_small_ground_glass_nodule_is_found_without_calling_its_lung_hazy(a0001_dicom):
    """The 15 mm ground-glass nodule of the test bed's a0001-ggo, in A0001's 5 mm slices (too
    few voxels for a cluster of its own), is mostly ground glass, and the engine calls no more
    than 1.1 % of the scan's own lung ground glass (the haze around its tumour is about 0.9 %)."""
    from diffseglung_core.segment.engine import segment_volume

    vol, lung = tb.load_a0001(a0001_dicom.parents[1])
    case = tb.build_case("a0001-ggo", vol, lung)
    labels = segment_volume(case.volume, device="cpu").labels
    small = next(r for r in case.lesions if r.requested_diameter_mm == 15.0)
    nodule = case.lesion_map == small.index
    assert np.mean(labels[nodule] == Tissue.GGO) > 0.5
    native = (labels > 0) & (case.lesion_map == 0)
    assert np.count_nonzero((labels == Tissue.GGO) & native) < 0.011 * np.count_nonzero(native)


def test_native_hazy_finds_ground_glass_not_vessels_or_the_lung_border():
    rng = np.random.default_rng(2)
    sp = (2.0, 3.0, 3.0)                                            # a coarse grid: partial volume is wide
    hu = (-860.0 + 40.0 * rng.standard_normal((40, 60, 60))).astype(np.float32)   # healthy lung
    z, y, x = np.indices(hu.shape)
    hu[(np.abs(y - 15) <= 1) & (np.abs(x - 15) <= 1)] = 30.0       # a vessel through every slice
    haze = (z - 20) ** 2 + (y - 35) ** 2 + (x - 35) ** 2 <= 8 ** 2   # 39 mL of ground glass
    hu[haze] = -600.0 + 40.0 * rng.standard_normal(int(haze.sum()))
    lung = np.zeros(hu.shape, bool)
    lung[:, 2:58, 2:58] = True
    hu[~lung] = 40.0                                                # chest wall all round
    rim = lung & ~ndi.binary_erosion(lung, np.ones((1, 3, 3), bool))
    near_vessel = ndi.binary_dilation(hu > -400, np.ones((1, 3, 3), bool)) & (hu <= -400)
    hu[(rim | near_vessel) & ~haze] = -450.0                        # partial volume of the wall, the vessel
    hazy = tb.native_hazy(hu, lung, sp)
    assert hazy[(z - 20) ** 2 + (y - 35) ** 2 + (x - 35) ** 2 <= 5 ** 2].all()   # its core, at least
    assert not hazy[~ndi.binary_dilation(haze, iterations=2)].any()  # not the vessel, not the border
    assert not tb.native_hazy(hu, lung, sp, min_ml=60.0).any()      # the region is smaller than that
