"""Structure evidence (segment.evidence) and the gates it puts on cluster names (assign.evidence_gates)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi

from diffseglung_core.labels import Tissue
from diffseglung_core.segment.assign import AssignmentRules, evidence_gates
from diffseglung_core.segment.evidence import (
    TissueEvidence,
    _mostly_in,
    costal_depth,
    dependent_band,
    orientation_coherence,
    partial_volume_rim,
    read_past_partial_volume,
    tissue_evidence,
)
from diffseglung_core.segment.low_attenuation import bronchus_lumens, edge_halo
from diffseglung_core.segment.shapes import opening_mm
from diffseglung_core.segment.solids import across_stack_hu, in_plane_vessels


def _grid(shape, spacing):
    return np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)],
                       indexing="ij")


def _lung_block(shape=(24, 96, 96), spacing=(2.0, 1.0, 1.0), level=-860.0, noise=20.0, seed=0):
    """A block of lung (all of it lung) with Gaussian noise around ``level``."""
    rng = np.random.default_rng(seed)
    hu = (level + rng.normal(0, noise, shape)).astype(np.float32)
    lung = np.ones(shape, bool)
    lung[:, :2], lung[:, -2:], lung[:, :, :2], lung[:, :, -2:] = False, False, False, False
    return hu, lung, spacing


def _rows(mask, lung):
    return mask[np.nonzero(lung)]


def test_solid_blob_is_solid_and_a_thin_tube_is_a_vessel():
    hu, lung, sp = _lung_block()
    z, y, x = _grid(hu.shape, sp)
    blob = (z ** 2 + (y + 20) ** 2 + x ** 2) <= 9.0 ** 2
    tube = ((y - 25) ** 2 + x ** 2) <= 1.8 ** 2
    hu[blob] = 30.0
    hu[tube] = 40.0
    ev = tissue_evidence(hu, lung, sp)
    assert ev.solid[_rows(blob, lung)].mean() > 0.9
    assert not ev.solid[_rows(tube, lung)].any()
    assert ev.vessel[_rows(tube, lung)].mean() > 0.5
    assert ev.thin[_rows(tube, lung)].mean() > 0.9


def test_thresholds_are_the_fields_of_evidence_params():
    hu, lung, sp = _lung_block()
    z, y, x = _grid(hu.shape, sp)
    blob = (z ** 2 + (y + 20) ** 2 + x ** 2) <= 6.0 ** 2           # 0.9 mL
    hu[blob] = 30.0
    assert tissue_evidence(hu, lung, sp).solid[_rows(blob, lung)].mean() > 0.9
    assert not tissue_evidence(hu, lung, sp, min_solid_ml=2.0).solid.any()  # too small for that
    with pytest.raises(TypeError):
        tissue_evidence(hu, lung, sp, solid_size_ml=1.0)             # no such threshold


def test_a_nodule_in_a_stack_thinner_than_it_is_solid_and_a_hilar_vessel_is_not():
    """Two 0.5 mm slices cut a 15 mm nodule to 0.2 mL, below the smallest solid component:
    it counts by its cross-section. A blob as wide joined to the hilum by a dense stalk,
    or a free one 10 mm wide (vessels cut across), keeps the volume rule."""
    hu, lung, sp = _lung_block(shape=(2, 112, 112), spacing=(0.5, 0.7, 0.7))
    hu[:, :, :12], lung[:, :, :12] = 40.0, False  # mediastinum
    z, y, x = _grid(hu.shape, sp)
    nodule = ((y - 18) ** 2 + (x - 12) ** 2) <= 7.5 ** 2
    vessel = ((y + 18) ** 2 + (x + 12) ** 2) <= 7.5 ** 2
    stalk = (np.abs(y + 18) <= 2.5) & (x < -12)
    pair = ((y + 18) ** 2 + (x - 22) ** 2) <= 5.0 ** 2
    hu[nodule | vessel | stalk | pair] = 35.0
    assert np.count_nonzero(nodule) * np.prod(sp) / 1000.0 < 0.3
    ev = tissue_evidence(hu, lung, sp)
    assert ev.solid[_rows(nodule, lung)].mean() > 0.9
    assert not ev.solid[_rows(vessel, lung)].any()
    assert not ev.solid[_rows(pair, lung)].any()


def test_contrast_filled_blood_is_a_vessel_and_an_enhancing_consolidation_is_solid():
    """With intravenous contrast a hilar artery reads 250 HU, as no consolidation does
    (60 HU here), even with a contrast-filled vessel running through it; without
    contrast the same artery (40 HU), wide and free in one slice, counts as solid."""
    hu, lung, sp = _lung_block(shape=(2, 112, 112), spacing=(1.25, 0.7, 0.7))
    z, y, x = _grid(hu.shape, sp)
    artery = ((y + 18) ** 2 + (x + 12) / 2.0 * (x + 12) / 2.0) <= 8.0 ** 2
    consolidation = ((y - 18) ** 2 + (x - 12) ** 2) <= 12.0 ** 2
    through = consolidation & (np.abs(y - 18 - 0.5 * (x - 12)) <= 1.5)
    hu[consolidation] = 60.0
    hu[through] = 250.0
    for blood, artery_solid in ((250.0, False), (40.0, True)):
        hu[artery] = blood
        ev = tissue_evidence(hu, lung, sp)
        assert ev.solid[_rows(consolidation, lung)].mean() > 0.9
        assert (ev.solid[_rows(artery, lung)].mean() > 0.9) == artery_solid
        assert (ev.vessel[_rows(artery, lung)].mean() > 0.9) != artery_solid


def test_one_hrct_slice_takes_a_vessel_along_it_for_a_vessel_and_keeps_a_band_on_the_pleura():
    """One 1.25 mm slice: a hilar vessel lying in it (8 mm wide, 40 mm long: 0.4 mL, more
    than the smallest solid component) is no consolidation; a band as thick along the chest
    wall (subpleural consolidation; the vessels there are small) and a 30 mm consolidation
    free in the lung are."""
    hu, lung, sp = _lung_block(shape=(1, 160, 160), spacing=(1.25, 0.78, 0.78))
    z, y, x = _grid(hu.shape, sp)
    hu[np.abs(x) <= 12.0], lung[np.abs(x) <= 12.0] = 40.0, False  # mediastinum, a lung each side
    vessel = (np.abs(y + 30.0) <= 4.0) & (x < -12.0) & (x > -52.0)
    band = (y < -51.0) & (np.abs(x - 38.0) <= 18.0)  # along the front of the chest wall
    consolidation = (y - 25.0) ** 2 + (x - 36.0) ** 2 <= 15.0 ** 2
    hu[vessel | band | consolidation] = 35.0
    assert np.count_nonzero(vessel & lung) * np.prod(sp) / 1000.0 > 0.3
    ev = tissue_evidence(hu, lung, sp)
    assert not ev.solid[_rows(vessel, lung)].any()
    assert ev.solid[_rows(band, lung)].mean() > 0.9
    assert ev.solid[_rows(consolidation, lung)].mean() > 0.9


@pytest.mark.parametrize("thickness", [1.25, 5.0])
def test_one_slice_takes_a_hilar_artery_cut_across_for_a_vessel_and_keeps_consolidation(thickness):
    """One slice through both lungs: the interlobar artery cut across at the hilum (a
    homogeneous disk 16 mm wide beside the mediastinum, over 30 mm below the costal
    surface) is a vessel, not consolidation. A disk as wide against the chest wall, and one
    30 mm wide at the hilum (wider than any artery of the lung), are consolidation: round in
    the slice, neither is an elongated vessel, however flat the slice makes them."""
    hu, lung, sp = _lung_block(shape=(1, 256, 256), spacing=(thickness, 0.78, 0.78))
    z, y, x = _grid(hu.shape, sp)
    hu[np.abs(x) <= 15.0], lung[np.abs(x) <= 15.0] = 40.0, False  # mediastinum
    artery = (y - 20.0) ** 2 + (x + 28.0) ** 2 <= 8.0 ** 2
    wall = (y - 20.0) ** 2 + (x - 90.0) ** 2 <= 8.0 ** 2
    wide = (y + 40.0) ** 2 + (x - 31.0) ** 2 <= 15.0 ** 2
    hu[artery | wall | wide] = 40.0
    ev = tissue_evidence(hu, lung, sp)
    assert costal_depth(lung, sp)[artery & lung].min() > 30.0
    assert not ev.solid[_rows(artery, lung)].any()
    assert ev.vessel[_rows(artery, lung)].mean() > 0.9
    assert ev.solid[_rows(wall, lung)].mean() > 0.9
    assert ev.solid[_rows(wide, lung)].mean() > 0.9


def test_one_slice_takes_an_artery_leaving_the_hilum_for_a_vessel_and_a_free_disk_for_solid():
    """One slice: a disk 16 mm wide joined to the mediastinum's soft tissue 20-30 mm below the
    costal surface (a lobar artery leaving the hilum beside its bronchus) is a vessel; the
    same disk as deep but free in the lung, aerated lung all round it, is solid."""
    hu, lung, sp = _lung_block(shape=(1, 256, 256), spacing=(1.25, 0.78, 0.78))
    z, y, x = _grid(hu.shape, sp)
    hu[np.abs(x) <= 15.0], lung[np.abs(x) <= 15.0] = 40.0, False  # mediastinum
    joined = (y + 65.0) ** 2 + (x + 22.5) ** 2 <= 8.0 ** 2
    free = (y - 65.0) ** 2 + (x - 25.5) ** 2 <= 8.0 ** 2
    hu[joined | free] = 40.0
    depth = costal_depth(lung, sp)
    for disk in (joined, free):
        assert 20.0 < depth[disk & lung].min() < 30.0
    ev = tissue_evidence(hu, lung, sp)
    assert not ev.solid[_rows(joined, lung)].any()
    assert ev.vessel[_rows(joined, lung)].mean() > 0.9
    assert ev.solid[_rows(free, lung)].mean() > 0.9


def test_one_hrct_slice_takes_vessels_lying_in_it_for_vessels_and_a_net_for_walls():
    """In one 1.25 mm slice the Hessian reads a vessel lying in the slice as a plate. A 3 mm
    vessel (and its blurred edge) is a vessel by its core of soft-tissue density; the 1 mm
    lines of a reticular net have none."""
    hu, lung, sp = _lung_block(shape=(1, 160, 160), spacing=(1.25, 0.78, 0.78))
    z, y, x = _grid(hu.shape, sp)
    vessel = (np.abs(y + 30.0 - 0.3 * x) <= 1.5) & (np.abs(x) <= 40.0)
    hu[vessel] = 40.0
    ev = tissue_evidence(hu, lung, sp)
    assert ev.vessel[_rows(vessel, lung)].mean() > 0.9

    net = (np.minimum((y - 30.0) % 5.0, x % 5.0) <= 0.5) \
        & (np.abs(y - 30.0) <= 15.0) & (np.abs(x) <= 20.0)
    hu[net] = 40.0
    smooth = ndi.gaussian_filter(hu, (0.0, 0.8 / sp[1], 0.8 / sp[2]), truncate=2.5)
    thin = (smooth > -500.0) & lung
    found = in_plane_vessels(smooth > -300.0, thin, sp)
    assert found[vessel & thin].mean() > 0.9
    assert not found[net & (np.abs(y - 30.0) <= 12.0) & (np.abs(x) <= 17.0)].any()


def test_one_thick_slice_takes_a_vessel_lying_in_it_at_partial_volume_for_a_vessel():
    """A 3 mm vessel lying in one 5 mm slice fills three fifths of it: its core reads about
    -320 HU, below the -300 HU an HRCT slice shows, and it is a vessel all the same (not a
    wall of reticulation, which would make its lung fibrosis); 1 mm lines of a net as dense
    are not."""
    hu, lung, sp = _lung_block(shape=(1, 160, 160), spacing=(5.0, 0.78, 0.78))
    z, y, x = _grid(hu.shape, sp)
    vessel = (np.abs(y + 30.0 - 0.3 * x) <= 1.5) & (np.abs(x) <= 40.0)
    hu[vessel] = across_stack_hu(40.0, -860.0, 3.0, 5.0)
    ev = tissue_evidence(hu, lung, sp)
    dense = ev.thin[_rows(vessel, lung)]  # (its blurred edge reads below the dense threshold)
    assert dense.mean() > 0.7
    assert ev.vessel[_rows(vessel, lung)][dense].mean() > 0.9

    net = (np.minimum((y - 30.0) % 5.0, x % 5.0) <= 0.5) \
        & (np.abs(y - 30.0) <= 15.0) & (np.abs(x) <= 20.0)
    hu[net] = -320.0
    smooth = ndi.gaussian_filter(hu, (0.0, 0.8 / sp[1], 0.8 / sp[2]), truncate=2.5)
    thin = (smooth > -500.0) & lung
    found = in_plane_vessels(smooth > -500.0, thin, sp)  # the core density at 5 mm: dense
    assert found[vessel & thin].mean() > 0.9
    assert not found[net & (np.abs(y - 30.0) <= 12.0) & (np.abs(x) <= 17.0)].any()


def _segment(z, y, x, a, b, radius):
    """Voxels within ``radius`` (mm) of the segment from ``a`` to ``b`` (z, y, x in mm)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = b - a
    p = np.stack([z, y, x], axis=-1) - a
    t = np.clip(p @ d / (d @ d), 0.0, 1.0)
    return np.linalg.norm(p - t[..., None] * d, axis=-1) <= radius


def test_a_branching_tree_of_thick_vessels_is_vessel_and_a_mass_is_solid():
    """Hilar arteries and veins: thick tubes that branch fill a small part of their
    convex hull; a mass of the same volume fills most of its own."""
    hu, lung, sp = _lung_block(shape=(40, 112, 112), spacing=(2.0, 1.0, 1.0))
    z, y, x = _grid(hu.shape, sp)
    # branches every way from one fork: not elongated as a whole, as a hilum is not
    tree = np.zeros(hu.shape, bool)
    for end in ((-35.0, 0, 0), (35.0, 0, 0), (0, -45.0, 0), (0, 45.0, 0), (0, 0, -45.0), (0, 0, 45.0)):
        tree |= _segment(z, y, x, (0.0, 0.0, 0.0), end, 4.0)
    mass = (z ** 2 + (y - 32) ** 2 + (x - 32) ** 2) <= 11.0 ** 2
    hu[tree] = 40.0
    hu[mass] = 35.0
    ev = tissue_evidence(hu, lung, sp)
    assert ev.solid[_rows(mass, lung)].mean() > 0.9
    assert ev.solid[_rows(tree, lung)].mean() < 0.05
    assert ev.vessel[_rows(tree, lung)].mean() > 0.8
    # a mass that a branch runs into: the tree stays vessel, the mass stays solid
    joined = ((z - 20) ** 2 + y ** 2 + x ** 2) <= 11.0 ** 2
    hu[joined] = 35.0
    ev = tissue_evidence(hu, lung, sp)
    assert ev.solid[_rows(joined, lung)].mean() > 0.8
    arms = tree & ~((z ** 2 + y ** 2 + x ** 2) <= 35.0 ** 2)
    assert ev.solid[_rows(arms, lung)].mean() < 0.05


def test_vessels_that_join_a_consolidation_are_vessels():
    """A consolidated segment with its vessels: they join it into one component
    that branches (fills a small part of its convex hull). The segmental vessels,
    thinner than the opening, and the lobar artery they leave, as thick as the
    opening, are vessels; the consolidation stays solid."""
    hu, lung, sp = _lung_block(shape=(48, 128, 128), spacing=(2.0, 1.0, 1.0))
    z, y, x = _grid(hu.shape, sp)
    consolidation = (z ** 2 / 1.5 ** 2 + (y - 20) ** 2 + (x - 20) ** 2) <= 20.0 ** 2
    lobar = _segment(z, y, x, (0.0, -60.0, -22.0), (0.0, 60.0, -22.0), 7.5)
    vessels = (lobar
               | _segment(z, y, x, (0.0, 20.0, 20.0), (0.0, 20.0, -22.0), 4.0)
               | _segment(z, y, x, (0.0, 20.0, 20.0), (0.0, -55.0, 20.0), 4.0)
               | _segment(z, y, x, (0.0, 20.0, 20.0), (40.0, 20.0, 55.0), 4.5)) & ~consolidation
    hu[consolidation] = 35.0
    hu[vessels] = 40.0
    ev = tissue_evidence(hu, lung, sp)
    assert ev.solid[_rows(consolidation, lung)].mean() > 0.9
    # (their first voxels beside the consolidation are thick with it)
    far = vessels & ~ndi.binary_dilation(consolidation, iterations=8)
    assert ev.solid[_rows(far, lung)].mean() < 0.05
    assert ev.vessel[_rows(far, lung)].mean() > 0.8
    assert ev.vessel[_rows(lobar & far, lung)].mean() > 0.8


def test_the_thick_stretch_of_a_vessel_is_a_vessel_and_a_nodule_on_one_is_solid():
    """In 5 mm slices a vessel's thickest stretch (a lobar artery where it branches, cut
    obliquely) is a short round piece that survives the opening alone, as a nodule does.
    The vessel leaves it on both sides about as thick as it is; a nodule is far wider
    than the vessel that runs through it."""
    hu, lung, sp = _lung_block(shape=(16, 128, 128), spacing=(5.0, 0.8, 0.8))
    z, y, x = _grid(hu.shape, sp)
    a, b = np.array((-30.0, -40.0, -30.0)), np.array((30.0, 5.0, -5.0))
    m = 0.5 * (a + b)
    vessel = _segment(z, y, x, a, b, 2.5)
    stretch = ((z - m[0]) ** 2 + (y - m[1]) ** 2 + (x - m[2]) ** 2) <= 4.5 ** 2
    c = np.array((0.0, 25.0, 25.0))
    nodule = ((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) <= 7.0 ** 2
    through = _segment(z, y, x, c + (-30.0, -10.0, 10.0), c + (30.0, 10.0, -10.0), 2.5)
    hu[vessel | stretch] = 40.0
    hu[nodule | through] = 35.0
    ev = tissue_evidence(hu, lung, sp)
    assert not ev.solid[_rows(stretch, lung)].any()
    assert ev.vessel[_rows(stretch, lung)].mean() > 0.9
    assert ev.solid[_rows(nodule, lung)].mean() > 0.9


def test_ground_glass_raises_parenchymal_density_and_vessels_do_not():
    hu, lung, sp = _lung_block()
    z, y, x = _grid(hu.shape, sp)
    haze = ((y + 20) ** 2 + x ** 2) <= 14.0 ** 2
    hu[haze] += 250.0  # -610 HU
    for dx in (-30.0, -10.0, 10.0, 30.0):  # vessels in healthy lung
        hu[((y - 28) ** 2 + (x - dx) ** 2) <= 2.0 ** 2] = 40.0
    ev = tissue_evidence(hu, lung, sp)
    excess = ev.parenchyma_hu - ev.healthy_hu
    core = ((y + 20) ** 2 + x ** 2) <= 9.0 ** 2
    assert np.median(excess[_rows(core, lung)]) > 200
    near_vessels = (np.abs(y - 28) < 8) & ~haze
    assert np.median(excess[_rows(near_vessels, lung)]) < 40


def test_ground_glass_filling_whole_bands_is_read_against_the_lighter_lung():
    # "white lung": the front half of every slice is ground glass (-620 HU); its
    # bands' histogram peaks are ground glass, the healthy back half bounds them
    hu, lung, sp = _lung_block(shape=(12, 96, 96))
    z, y, x = _grid(hu.shape, sp)
    front = y < -4.0
    hu[front] += 240.0
    ev = tissue_evidence(hu, lung, sp)
    excess = ev.parenchyma_hu - ev.healthy_hu
    core = y < -14.0  # ground glass by the engine's margin
    assert np.median(excess[_rows(core, lung)]) > AssignmentRules().ggo_margin_hu
    back = y > 10.0
    assert abs(np.median(excess[_rows(back, lung)])) < 30
    # the report says how much lung took its level from the lighter lung
    voxel_ml = float(np.prod(sp)) / 1000.0
    assert 0.3 < ev.level_bounded_ml / (np.count_nonzero(lung & front) * voxel_ml) < 1.3
    from types import SimpleNamespace

    from diffseglung_core.segment.report import make_report

    result = SimpleNamespace(evidence=ev, mapping=None, timings={}, params={})
    note = make_report(lung.astype(np.uint8), hu, sp, result=result)["ground_glass_evidence"]
    assert note["level_bounded_ml"] == ev.level_bounded_ml and "lighter lung" in note["note"]
    # healthy lung alone: nothing bounded
    plain, lung0, _ = _lung_block(shape=(12, 96, 96))
    assert tissue_evidence(plain, lung0, sp).level_bounded_ml == 0.0


def test_the_report_cautions_when_no_lung_reads_as_healthy_lung():
    """Ground glass filling every band (-620 HU) sets the healthy level itself: the report
    says so; healthy lung (-860 HU) gets no such caution."""
    from types import SimpleNamespace

    from diffseglung_core.segment.report import DENSE_HEALTHY_LEVEL_HU, make_report

    def ground_glass(hu, lung, sp):
        ev = tissue_evidence(hu, lung, sp)
        result = SimpleNamespace(evidence=ev, mapping=None, timings={}, params={})
        return ev, make_report(lung.astype(np.uint8), hu, sp, result=result)["ground_glass_evidence"]

    hu, lung, sp = _lung_block(shape=(12, 96, 96))
    ev, plain = ground_glass(hu, lung, sp)
    assert plain["healthy_level_hu"] < DENSE_HEALTHY_LEVEL_HU - 100 and "caution" not in plain
    hu[lung] += 240.0
    ev, diffuse = ground_glass(hu, lung, sp)
    # the level is the ground glass's own: none of it stands out as ground glass
    assert np.median(ev.parenchyma_hu - ev.healthy_hu) < AssignmentRules().ggo_margin_hu
    assert diffuse["healthy_level_hu"] > DENSE_HEALTHY_LEVEL_HU
    assert "ground glass may be labelled healthy" in diffuse["caution"]


def test_the_lungs_partial_volume_rim_on_a_coarse_grid_reads_as_the_lung_behind_it():
    """On a 4 mm grid (resampled, so with an anti-aliasing blur) the lung's outer voxels mix
    lung with the chest wall: their parenchymal density is that of the lung behind them, not
    ground glass; a hazy region inside still reads dense."""
    rng = np.random.default_rng(3)
    fine, step, n = 0.5, 8, 192  # drawn at 0.5 mm, resampled to 4 mm voxels
    y, x = _grid((n, n), (fine, fine))
    chest = np.where((((y - 1.3) / 39.0) ** 2 + ((x + 0.7) / 33.0) ** 2) <= 1.0, -860.0, 40.0)
    chest[((y - 12.0) ** 2 + x ** 2) <= 10.0 ** 2] = -600.0  # ground glass inside
    chest = ndi.gaussian_filter(chest, 2.0 / fine)
    coarse = chest.reshape(n // step, step, n // step, step).mean(axis=(1, 3))
    hu = np.repeat(coarse[None], 12, axis=0) + rng.normal(0, 10.0, (12,) + coarse.shape)
    hu = hu.astype(np.float32)
    lung = hu < -500.0
    ev = tissue_evidence(hu, lung, (4.0, 4.0, 4.0))
    dense = ev.parenchyma_hu - ev.healthy_hu >= AssignmentRules().ggo_margin_hu
    cy, cx = _grid(coarse.shape, (4.0, 4.0))
    haze = np.broadcast_to(((cy - 12.0) ** 2 + cx ** 2) <= 6.0 ** 2, lung.shape)
    rim = lung & ~np.stack([ndi.binary_erosion(s) for s in lung]) & (hu < -650.0)
    assert rim.sum() > 200
    assert dense[_rows(rim, lung)].mean() < 0.03  # 0.15 when the rim counts as parenchyma
    assert dense[_rows(haze & lung, lung)].mean() > 0.9


@pytest.mark.parametrize("noise", [20.0, 60.0])
def test_noise_alone_gives_no_emphysema(noise):
    """Healthy lung at thin-slice (20 HU) and thick-slice (60 HU) noise: no emphysema region,
    although 5-15 % of its voxels read below -950 HU at 60 HU."""
    hu, lung, sp = _lung_block(spacing=(5.0, 0.8, 0.8), noise=noise, level=-870.0)
    ev = tissue_evidence(hu, lung, sp)
    assert ev.emphysema.mean() < 0.005
    assert ev.noise_hu == pytest.approx(noise, rel=0.2)
    if noise > 40:
        assert (hu[lung] < -950).mean() > 0.05  # LAA-950 would call that emphysema


@pytest.mark.parametrize("noise", [20.0, 60.0])
def test_a_small_emphysematous_region_is_found(noise):
    """A 1.5 cm region of destroyed lung (about -975 HU) in healthy lung: found, at both noise levels."""
    hu, lung, sp = _lung_block(spacing=(5.0, 0.8, 0.8), noise=noise, level=-870.0, seed=1)
    z, y, x = _grid(hu.shape, sp)
    region = (z / 15.0) ** 2 + (y / 15.0) ** 2 + (x / 15.0) ** 2 <= 1.0
    hu[region] += -975.0 + 870.0
    ev = tissue_evidence(hu, lung, sp)
    inside = ev.emphysema[_rows(region, lung)].mean()
    outside = ev.emphysema[_rows(~region, lung)].mean()
    assert inside > 0.6 and outside < 0.01


def test_a_few_dim_lucencies_in_thick_slices_stand_out_over_two_mm():
    """Seven lucencies 6 mm across that partial volume dims to -960 HU, 10 mm apart, in 5 mm
    slices with 55 HU of noise (which alone puts some 7 % of healthy lung below -950 HU): the
    share over 4 mm dilutes them below its noise threshold, the share over 2 mm
    (``fine_laa_mm``, with the stricter threshold of its smaller neighbourhood) finds them,
    and little around them."""
    hu, lung, sp = _lung_block(shape=(12, 128, 128), spacing=(5.0, 0.8, 0.8), noise=55.0,
                               level=-870.0, seed=1)
    z, y, x = _grid(hu.shape, sp)
    holes = np.zeros(hu.shape, bool)
    for cy, cx in ((-10, -8), (-9, 6), (1, -12), (2, 2), (0, 13), (11, -4), (10, 9)):
        holes |= ((y - cy) ** 2 + (x - cx) ** 2 <= 3.0 ** 2) & (np.abs(z) <= 5.0)
    hu[holes] += -960.0 + 870.0
    coarse = tissue_evidence(hu, lung, sp, fine_laa_mm=0.0).emphysema
    fine = tissue_evidence(hu, lung, sp).emphysema
    assert coarse[_rows(holes, lung)].mean() < 0.05
    assert fine[_rows(holes, lung)].mean() > 0.4
    assert fine[_rows(~holes, lung)].mean() < 0.002


@pytest.mark.parametrize("slice_mm", [1.0, 5.0])
def test_an_emphysema_region_takes_the_lung_between_its_holes_at_any_slice_thickness(slice_mm):
    """Centrilobular emphysema: holes 4 mm across (-990 HU), 5 mm apart, in a 3 cm region of
    lung. Whether thin slices resolve the holes or 5 mm slices blur them with the lung around
    them, the region is the holes and the lung between them, as a reader outlines it, and
    none of the lung beyond; end to end through the gates, with every voxel's cluster named
    emphysema, it stays emphysema."""
    hu, lung, sp = _lung_block(shape=(int(60 // slice_mm), 96, 96), spacing=(slice_mm, 0.8, 0.8),
                               noise=20.0, level=-870.0, seed=7)
    z, y, x = _grid(hu.shape, sp)
    r2 = z ** 2 + y ** 2 + x ** 2
    holes = np.zeros(hu.shape, bool)
    for cy in np.arange(-12.5, 13.0, 5.0):
        for cx in np.arange(-12.5, 13.0, 5.0):
            holes |= (y - cy) ** 2 + (x - cx) ** 2 <= 2.0 ** 2
    holes &= r2 <= 15.0 ** 2
    hu[holes] += -990.0 + 870.0
    ev = tissue_evidence(hu, lung, sp)
    between = (r2 <= 10.0 ** 2) & ~ndi.binary_dilation(holes, np.ones((1, 3, 3), bool))
    assert ev.emphysema[_rows(holes & (r2 <= 12.0 ** 2), lung)].mean() > 0.8
    assert ev.emphysema[_rows(between, lung)].mean() > 0.9
    assert ev.emphysema[_rows(r2 > 15.0 ** 2, lung)].mean() < 0.01
    p = np.zeros((int(lung.sum()), 6), np.float32)
    p[:, Tissue.EMPHYSEMA] = 1.0
    out = np.zeros(hu.shape, np.int64)
    out[lung] = evidence_gates(p, ev, slice(0, len(p)), AssignmentRules()).argmax(1)
    assert (out[r2 <= 10.0 ** 2] == Tissue.EMPHYSEMA).mean() > 0.95


@pytest.mark.parametrize("noise", [20.0, 60.0])
def test_one_hrct_slice_finds_a_lucency_that_reads_as_air_too_small_for_a_region(noise):
    """One 1.25 mm slice of healthy lung with one destroyed lobule, a 5 mm lucency reading as
    air: too small for a low-attenuation region (0.1 mL), it is emphysema by itself (its air
    core and the low-attenuation rim around it); noise alone gives none, and neither does a
    dark lung (-940 HU) whose noise reaches air."""
    hu, lung, sp = _lung_block(shape=(1, 128, 128), spacing=(1.25, 0.7, 0.7), noise=noise,
                               level=-860.0, seed=11)
    assert tissue_evidence(hu, lung, sp).emphysema.mean() == 0.0
    z, y, x = _grid(hu.shape, sp)
    hole = (y - 10.0) ** 2 + (x + 15.0) ** 2 <= 2.5 ** 2
    hu[hole] = (-1000.0 + np.random.default_rng(12).normal(0.0, 10.0, int(hole.sum()))).astype(np.float32)
    ev = tissue_evidence(hu, lung, sp)
    assert ev.emphysema[_rows(hole, lung)].mean() > 0.6
    assert ev.emphysema[_rows(~ndi.binary_dilation(hole, iterations=3), lung)].sum() == 0
    # 1 mm slices of a dark lung with the noise of a sharp kernel: noise reaches air in places
    # (0.3 % of the lung would be called lucencies), so there the regions' test decides
    dark, lung, sp = _lung_block(shape=(12, 128, 128), spacing=(1.0, 0.7, 0.7), noise=100.0,
                                 level=-940.0, seed=3)
    assert tissue_evidence(dark, lung, sp).emphysema.mean() < 0.001


def test_one_hrct_slice_judges_a_long_region_by_its_width_in_the_slice():
    """One 1.25 mm slice: every region is as deep as the slice, so depth across slices
    cannot tell emphysema from a bronchus. A band of destroyed lung 12 mm wide and 90 mm
    long (paraseptal emphysema along the heart, say) is emphysema; a walled bronchus
    lumen 5 mm wide running in the slice is not."""
    hu, lung, sp = _lung_block(shape=(1, 160, 160), spacing=(1.25, 0.78, 0.78), noise=20.0,
                               level=-870.0, seed=5)
    z, y, x = _grid(hu.shape, sp)
    band = (np.abs(y + 25.0) <= 6.0) & (np.abs(x) <= 45.0)
    hu[band] += -985.0 + 870.0
    lumen = (np.abs(y - 25.0) <= 2.5) & (np.abs(x) <= 20.0)
    hu[(np.abs(y - 25.0) <= 3.7) & (np.abs(x) <= 21.2)] = 20.0
    hu[lumen] = -1000.0
    ev = tissue_evidence(hu, lung, sp)
    assert ev.emphysema[_rows(band, lung)].mean() > 0.6
    assert not ev.emphysema[_rows(lumen, lung)].any()


def test_one_hrct_slice_takes_a_narrow_row_of_lucencies_along_the_pleura_for_paraseptal_emphysema():
    """One 1.25 mm slice against the chest wall: a narrow band of lucencies 3 mm wide
    and 60 mm long, 2-5 mm under the pleura behind lung of normal density, is
    paraseptal emphysema (bronchi do not show in the outer centimetre of the lung);
    the same band 20 mm deep is as narrow and long as a bronchus lumen and is not."""
    hu, lung, sp = _lung_block(shape=(1, 160, 160), spacing=(1.25, 0.78, 0.78), noise=10.0,
                               level=-870.0, seed=6)
    hu[:, :, :30] = 40.0  # the chest wall
    lung[:, :, :30] = False
    rows = np.zeros(hu.shape, bool)
    rows[:, 40:120] = True
    subpleural = rows & (np.arange(160) >= 32) & (np.arange(160) < 36)
    deep = rows & (np.arange(160) >= 60) & (np.arange(160) < 64)
    hu[subpleural | deep] += -960.0 + 870.0  # below -950 HU, not as dark as air
    ev = tissue_evidence(hu, lung, sp)
    assert ev.halo_mm == 0.0  # the border's first mm reads as normal lung: no kernel halo
    assert ev.emphysema[_rows(subpleural, lung)].mean() > 0.6
    assert not ev.emphysema[_rows(deep, lung)].any()


def _walled_air(hu, y, x, cy, cx, radius, wall=1.2):
    """Air inside a soft-tissue ring of ``wall`` mm (a bronchus cut across, or a cyst)."""
    r = np.hypot(y - cy, x - cx)
    hu[r <= radius + wall] = 20.0
    hu[r <= radius] = -1000.0


def test_a_bronchus_cut_across_is_not_emphysema_and_walled_cysts_in_clusters_stay_low():
    """Deep in the lung, a lone 10 mm air lumen with a wall (a bronchus) is no emphysema region
    and its wall no reticulation; a cluster of walled cysts (honeycombing) keeps its low
    attenuation and its walls, and a lone walled cyst under the costal pleura (paraseptal
    emphysema) its low attenuation."""
    hu, lung, sp = _lung_block(shape=(6, 160, 160), spacing=(5.0, 0.8, 0.8), noise=20.0,
                               level=-870.0, seed=4)
    z, y, x = _grid(hu.shape, sp)
    _walled_air(hu, y, x, 0.0, -25.0, 5.0)  # a bronchus (an emphysema region without the rule)
    for cy, cx in [(-8.0, 22.0), (0.0, 22.0), (8.0, 22.0), (-4.0, 29.0), (4.0, 29.0)]:
        _walled_air(hu, y, x, cy, cx, 3.0, wall=0.8)  # a cluster of cysts
    ev = tissue_evidence(hu, lung, sp)
    bronchus = np.hypot(y, x + 25.0) <= 5.0
    cysts = np.hypot(y, x - 22.0) <= 3.0
    assert not ev.emphysema[_rows(bronchus, lung)].any()
    assert ev.emphysema[_rows(cysts, lung)].mean() > 0.5
    # the bronchus's wall is airway: no walls of reticulation around it; the cysts' walls are
    bronchus_wall = (np.abs(np.hypot(y, x + 25.0) - 5.6) <= 0.6) & (np.abs(z) < 10.0)
    cyst_walls = (np.hypot(y, x - 24.0) <= 10.0) & (np.abs(z) < 10.0)
    assert ev.wall_fraction[_rows(bronchus_wall, lung)].max() < 0.05
    assert np.median(ev.wall_fraction[_rows(cyst_walls, lung)]) > 0.08

    low = (hu < -950.0) & lung
    dense = hu > -500.0
    depth = np.full(hu.shape, 40.0)
    lumens = bronchus_lumens(low, dense, depth, sp)
    assert lumens[bronchus & lung].mean() > 0.9 and not lumens[cysts].any()
    # the same lumen under the costal pleura is a paraseptal cyst, not a bronchus
    assert not bronchus_lumens(low, dense, np.full(hu.shape, 5.0), sp).any()



def test_a_main_bronchus_with_a_blurred_wall_is_a_lumen():
    """A 10 mm main bronchus in one HRCT slice: between its air and its wall lies a 2 mm
    step of partial volume (-950 to -500 HU), so the air below -950 HU and the dense wall
    are about 2 mm apart. It is a lumen (and no emphysema region); a region of the same
    air with no wall, only parenchyma around it, is not."""
    hu, lung, sp = _lung_block(shape=(1, 160, 160), spacing=(1.25, 0.78, 0.78), noise=20.0,
                               level=-870.0, seed=9)
    _, y, x = _grid(hu.shape, sp)
    r = np.hypot(y, x + 25.0)
    hu[r <= 8.0] = 20.0  # the wall, 1.5 mm thick
    hu[r <= 6.5] = -700.0  # the partial-volume step
    hu[r <= 4.5] = -1000.0  # the air
    r_free = np.hypot(y, x - 25.0)
    hu[r_free <= 4.5] = -1000.0
    low = (hu < -950.0) & lung
    dense = hu > -500.0
    depth = np.full(hu.shape, 40.0)
    lumens = bronchus_lumens(low, dense, depth, sp)
    assert lumens[(r <= 4.5) & lung].mean() > 0.9 and not lumens[r_free <= 4.5].any()
    assert not bronchus_lumens(low, dense, depth, sp, wall_mm=1.5).any()  # too tight a reach
    ev = tissue_evidence(hu, lung, sp)
    assert not ev.emphysema[_rows(r <= 6.5, lung)].any()


def test_on_coarse_pixels_the_wall_of_a_lumen_is_read_one_pixel_out():
    """A main bronchus on 5 mm pixels: its air fills a few pixels, the ring of pixels around
    it mixes air and wall (-600 HU, not dense) and the wall reads dense one pixel further
    out. Read at least one pixel out, it is a lumen; with a 2.5 mm reach alone (half a
    pixel) the wall was never found and the air could become emphysema."""
    sp = (5.0, 5.0, 5.0)
    hu = np.full((1, 40, 40), -870.0, np.float32)
    lung = np.ones(hu.shape, bool)
    z, y, x = np.indices(hu.shape)
    ring = np.maximum(np.abs(y - 20), np.abs(x - 20))
    hu[ring <= 3] = 20.0       # the wall, blurred
    hu[ring <= 2] = -600.0     # air and wall in one pixel
    hu[ring <= 1] = -1000.0    # the lumen
    low = (hu < -950.0) & lung
    lumens = bronchus_lumens(low, hu > -500.0, np.full(hu.shape, 40.0), sp)
    assert lumens[ring <= 1].all() and lumens.sum() == 9


def test_the_wall_of_a_tracked_airway_is_not_reticulation():
    """A bronchus the lung mask tracked (its air left out of the lung) runs through a stack;
    its 1.2 mm wall lies in the lung. Given the airway, the wall is airway wall, not a net of
    walls; without it the wall counts as walls around it."""
    hu, lung, sp = _lung_block(shape=(8, 120, 120), spacing=(2.0, 0.8, 0.8), noise=20.0,
                               level=-870.0, seed=11)
    _, y, x = _grid(hu.shape, sp)
    r = np.hypot(y, x)
    hu[r <= 5.2] = 20.0
    hu[r <= 4.0] = -1000.0
    airway = r <= 4.0
    lung &= ~airway
    wall = (r > 4.0) & (r <= 5.2) & lung
    with_tree = tissue_evidence(hu, lung, sp, airway=airway)
    without = tissue_evidence(hu, lung, sp)
    assert np.median(without.wall_fraction[_rows(wall, lung)]) > 0.05
    assert with_tree.wall_fraction[_rows(wall, lung)].max() < 0.02

def _lung_beside_the_heart(halo_px: int, seed: int = 2):
    """Lung (-870 HU, noise 30) against a block of soft tissue (the heart, x < 40 px), with a
    dark band (-1000 HU) of ``halo_px`` pixels along the border, as a sharp kernel draws it."""
    hu, lung, sp = _lung_block(shape=(12, 120, 120), spacing=(5.0, 0.8, 0.8), noise=30.0,
                               level=-870.0, seed=seed)
    hu[:, :, :40] = 40.0
    lung[:, :, :40] = False
    hu[:, :, 40:40 + halo_px] -= 130.0
    return hu, lung, sp


def test_the_dark_halo_of_a_sharp_kernel_is_measured_and_not_emphysema():
    hu, lung, sp = _lung_beside_the_heart(halo_px=2)
    ev = tissue_evidence(hu, lung, sp)
    assert ev.halo_mm == 2.0
    assert ev.emphysema.mean() < 0.005
    # without the halo's measurement the band is an emphysema region along the heart
    width, halo = edge_halo(hu < -950, lung, (hu > -500) & ~lung, sp)
    assert width == 2.0 and halo[:, 2:-2, 40:42].all() and not halo[:, :, 43:].any()
    # a smooth kernel: no halo
    smooth, lung0, _ = _lung_beside_the_heart(halo_px=0)
    assert edge_halo(smooth < -950, lung0, (smooth > -500) & ~lung0, sp)[0] == 0.0
    # the report says so beside LAA-950
    from types import SimpleNamespace

    from diffseglung_core.segment.report import make_report

    result = SimpleNamespace(evidence=ev, mapping=None, timings={}, params={})
    note = make_report(lung.astype(np.uint8), hu, sp, result=result)["emphysema_evidence"]
    assert note["edge_halo_mm"] == 2.0 and "sharp reconstruction kernel" in note["note"]


def test_a_halo_hugs_the_border_and_dark_lung_behind_a_normal_border_band_is_none():
    """The undershoot of a sharp kernel lies next to the border; dark lung 1.6-3.2 mm
    from it behind a first band of normal lung (the row of subpleural lucencies of
    paraseptal emphysema, say) is no halo."""
    hu, lung, sp = _lung_beside_the_heart(halo_px=0)
    tissue = (hu > -500) & ~lung
    assert edge_halo(hu < -950, lung, tissue, sp)[0] == 0.0
    behind = hu.copy()
    behind[:, :, 42:44] -= 130.0
    assert edge_halo(behind < -950, lung, tissue, sp)[0] == 0.0
    hugging = hu.copy()
    hugging[:, :, 40:44] -= 130.0  # from the border's own voxel on: a halo, 4 mm wide
    assert edge_halo(hugging < -950, lung, tissue, sp)[0] == 4.0


def test_emphysema_against_the_heart_is_found_past_the_halo():
    hu, lung, sp = _lung_beside_the_heart(halo_px=2, seed=3)
    z, y, x = _grid(hu.shape, sp)
    region = lung & (np.abs(y) < 15) & (x < 0)   # 16 mm of destroyed lung against the heart
    hu[region] -= 105.0
    ev = tissue_evidence(hu, lung, sp)
    assert ev.halo_mm == 2.0  # the region darkens the lung behind the halo too: not wider
    assert ev.emphysema[_rows(region, lung)].mean() > 0.6
    assert ev.emphysema[_rows(lung & ~region & (np.abs(y) > 25), lung)].mean() < 0.01


def test_a_net_of_walls_is_walls_and_vessels_are_not():
    hu, lung, sp = _lung_block(shape=(24, 96, 96), spacing=(1.0, 1.0, 1.0))
    z, y, x = _grid(hu.shape, sp)
    net = ((np.abs(np.mod(y, 6.0) - 3.0) < 0.6) | (np.abs(np.mod(x, 6.0) - 3.0) < 0.6)
           | (np.abs(np.mod(z, 6.0) - 3.0) < 0.6)) & (x < -5)
    hu[net] = -100.0
    tube = ((y - 10) ** 2 + (x - 25) ** 2) <= 1.5 ** 2
    hu[tube] = 40.0
    ev = tissue_evidence(hu, lung, sp)
    centre = (x < -20) & (np.abs(y) < 20) & (np.abs(z) < 6)
    assert np.median(ev.wall_fraction[_rows(centre, lung)]) > 0.15
    around_tube = ((y - 10) ** 2 + (x - 25) ** 2) <= 6.0 ** 2
    assert np.median(ev.wall_fraction[_rows(around_tube, lung)]) < 0.05


def test_a_subpleural_line_in_ground_glass_is_not_fibrosis_and_a_net_is():
    """End to end through the evidence and the gates, with every voxel's cluster named fibrosis:
    subpleural ground glass crossed by one line parallel to the pleura (a sheet in 3D) stays
    ground glass; the same ground glass with a net of walls is fibrosis."""
    labels = {}
    for walls in ("line", "net"):
        hu, lung, sp = _lung_block(shape=(24, 96, 96), spacing=(1.0, 1.0, 1.0))
        z, y, x = _grid(hu.shape, sp)
        glass = lung & (x > 26)                                # a 20 mm band under the pleura
        hu[glass] += 200.0
        if walls == "line":
            hu[glass & (np.abs(x - 38.0) < 0.7)] = -100.0      # 8 mm deep, parallel to the pleura
        else:
            hu[glass & ((np.abs(np.mod(y, 6.0) - 3.0) < 0.6)
                        | (np.abs(np.mod(x, 6.0) - 3.0) < 0.6))] = -100.0
        ev = tissue_evidence(hu, lung, sp)
        p = np.zeros((int(lung.sum()), 6), np.float32)
        p[:, Tissue.FIBROSIS] = 1.0
        out = np.zeros(hu.shape, np.int64)
        out[lung] = evidence_gates(p, ev, slice(0, len(p)), AssignmentRules()).argmax(1)
        labels[walls] = out[glass & (np.abs(z) < 6) & (np.abs(y) < 30) & (np.abs(x - 38.0) < 4.0)]
    assert (labels["line"] == Tissue.FIBROSIS).mean() < 0.05
    assert (labels["line"] == Tissue.GGO).mean() > 0.9
    assert (labels["net"] == Tissue.FIBROSIS).mean() > 0.9


def test_walls_in_one_direction_are_coherent_and_a_net_is_not():
    """A fissure-like line (or parallel lines) runs one way; a net and the rings of cysts do not."""
    sp = (5.0, 0.8, 0.8)
    y, x = np.mgrid[:100, :100]
    line = (y == 50) | (y == 51)
    parallel = (y % 7) == 0
    net = parallel | ((x % 7) == 0)
    rings = np.zeros((100, 100), bool)
    for cy in range(8, 100, 9):
        for cx in range(8, 100, 9):
            d = np.hypot(y - cy, x - cx)
            rings |= (d > 3.0) & (d < 4.2)
    coh = orientation_coherence(np.stack([line, parallel, net, rings, np.zeros_like(line)]), sp, 3.0)
    centre = (slice(20, 80), slice(20, 80))
    assert coh[0, 48:54, 20:80].min() > 0.95 and coh[1][centre].min() > 0.9
    assert coh[2][centre].max() < 0.3 and np.median(coh[3][centre]) < 0.3
    assert not coh[4].any() and coh[0, 20, 50] == 0.0       # no edge nearby: 0
    # slice by slice: a slice does not see its neighbours
    assert np.array_equal(coh[2], orientation_coherence(net[None], sp, 3.0)[0])


def test_a_line_of_walls_is_not_fibrosis_and_a_net_is():
    rules = AssignmentRules()
    p = np.zeros((2, 6), np.float32)
    p[:, Tissue.FIBROSIS] = 1.0
    ev = _evidence(2, thin=np.ones(2, bool), wall_fraction=np.full(2, 0.3, np.float32),
                   parenchyma_hu=np.full(2, -700, np.float32),
                   wall_coherence=np.array([0.2, 0.9], np.float32))
    out = evidence_gates(p, ev, slice(0, 2), rules).argmax(1)
    # one line (a fissure, a subpleural line, the heart's blurred border) in dense parenchyma: GGO
    assert out.tolist() == [Tissue.FIBROSIS, Tissue.GGO]


def test_dense_ground_glass_with_its_vessels_is_not_solid():
    """A 2 cm region of dense ground glass (-420 HU) crossed by a 5 mm vessel is not solid and
    raises the parenchymal density; a consolidation of the same size (30 HU) is solid."""
    hu, lung, sp = _lung_block(spacing=(1.0, 1.0, 1.0), noise=20.0)
    z, y, x = _grid(hu.shape, sp)
    haze = (z ** 2 + (y + 22) ** 2 + x ** 2) <= 10.0 ** 2
    hu[haze] = -420.0 + np.random.default_rng(3).normal(0, 20, np.count_nonzero(haze))
    hu[((y + 22) ** 2 + z ** 2 <= 2.5 ** 2) & (np.abs(x) < 30)] = 40.0  # a vessel through it
    blob = (z ** 2 + (y - 22) ** 2 + x ** 2) <= 10.0 ** 2
    hu[blob] = 30.0
    ev = tissue_evidence(hu, lung, sp)
    assert ev.solid[_rows(blob, lung)].mean() > 0.9
    assert ev.solid[_rows(haze, lung)].mean() < 0.05
    excess = ev.parenchyma_hu - ev.healthy_hu
    core = (z ** 2 + (y + 22) ** 2 + x ** 2) <= 7.0 ** 2
    assert np.median(excess[_rows(core, lung)]) > 300


def test_the_ground_glass_around_a_consolidation_is_not_solid():
    """Consolidation is airless lung. A 16 mm consolidation (30 HU) in a 5 mm halo of
    dense ground glass (-400 HU) is solid with its edge (partial volume), and the halo
    beyond that edge is not."""
    hu, lung, sp = _lung_block(shape=(40, 72, 72), spacing=(1.0, 1.0, 1.0), noise=20.0)
    z, y, x = _grid(hu.shape, sp)
    r = np.sqrt(z ** 2 + y ** 2 + x ** 2)
    core = r <= 8.0
    hu[r <= 13.0] = -400.0
    hu[core] = 30.0
    ev = tissue_evidence(hu, lung, sp)
    assert ev.solid[_rows(core, lung)].mean() > 0.95
    assert ev.solid[_rows((r > 10.0) & (r <= 13.0), lung)].mean() < 0.05


def test_the_partial_volume_of_a_consolidation_in_the_next_thick_slice_is_solid():
    """5 mm slices: the slices above and below a consolidation (30 HU, 24 mm across, two
    slices) read -400 HU over it (partial volume across the slice); they belong to it, as
    its edge in-plane does, and a haze as dense two slices away does not."""
    hu, lung, sp = _lung_block(shape=(10, 96, 96), spacing=(5.0, 0.8, 0.8), noise=20.0)
    z, y, x = _grid(hu.shape, sp)
    disk = (y ** 2 + x ** 2) <= 12.0 ** 2
    core = disk & (np.abs(z) <= 2.5)
    caps = disk & (np.abs(z) > 2.5) & (np.abs(z) <= 7.5)
    hu[caps] = -400.0
    hu[core] = 30.0
    haze = disk & (np.abs(z) > 7.5) & (np.abs(z) <= 12.5)
    hu[haze] = -400.0
    ev = tissue_evidence(hu, lung, sp)
    assert ev.solid[_rows(core, lung)].mean() > 0.95
    # (the cap's own blurred rim, lighter than dense structures, aside)
    assert ev.solid[_rows(caps & ((y ** 2 + x ** 2) <= 11.0 ** 2), lung)].mean() > 0.95
    assert not ev.solid[_rows(haze, lung)].any()


def test_one_slice_of_crazy_paving_holds_no_airless_lung():
    """One 1.25 mm slice: ground glass (-450 HU) in lobules 10 mm wide whose septa, 1.5 mm
    thick, read 40 HU (crazy paving) is not solid, though much of it reads above -300 HU
    after partial volume; a 16 mm consolidation in the same slice is."""
    hu, lung, sp = _lung_block(shape=(1, 160, 160), spacing=(1.25, 0.7, 0.7), noise=20.0)
    z, y, x = _grid(hu.shape, sp)
    paving = (np.abs(y + 20.0) <= 25.75) & (np.abs(x) <= 25.75)
    septa = paving & ((np.abs((y + 20.0) % 10.0 - 5.0) >= 4.25) | (np.abs(x % 10.0 - 5.0) >= 4.25))
    hu[paving] = -450.0
    hu[septa] = 40.0
    consolidation = (y - 33.0) ** 2 + x ** 2 <= 8.0 ** 2
    hu[consolidation] = 30.0
    ev = tissue_evidence(hu, lung, sp)
    assert not ev.solid[_rows(paving, lung)].any()
    assert ev.solid[_rows(consolidation, lung)].mean() > 0.95


def test_costal_depth_counts_the_chest_wall_and_diaphragm_not_the_mediastinum():
    """Two lungs beside a mediastinum: the medial border lies deep, the lateral border and
    the lung just above the diaphragm do not."""
    sp = (2.0, 1.0, 1.0)
    inside = np.zeros((20, 60, 100), bool)
    inside[4:, 10:50, 10:45] = True   # right lung
    inside[4:, 10:50, 55:90] = True   # left lung; x 45..54 is the mediastinum
    depth = costal_depth(inside, sp)
    assert depth[12, 30, 10] <= 1.0                 # lateral border
    assert depth[12, 30, 44] >= 9.0                 # medial border: deep (hull border 34 mm away)
    assert depth[4, 30, 30] <= 2.0                  # the slice just above the diaphragm
    assert depth[12, 30, 30] == pytest.approx(18.0)  # 9 slices above the tissue: 18 mm
    # a hilum: tissue with lung below it is not the diaphragm; the lung over it lies as deep
    # as before, from the lung's lowest surface
    hilum = inside.copy()
    hilum[9:11, 25:35, 35:45] = False
    depth = costal_depth(hilum, sp)
    assert depth[11, 30, 40] == pytest.approx(16.0)  # as for the lung beside the hilum
    assert depth[8, 30, 40] == pytest.approx(10.0)   # the lung below the hilum


def test_partial_volume_rim_is_read_one_slice_into_the_lung():
    """Healthy lung over a flat dome: the rim slice mixes lung with the tissue below and
    reads dense; a ground-glass region reaching down to the dome stays dense there."""
    nz, ny, nx = 16, 64, 64
    sp = (5.0, 0.8, 0.8)
    rng = np.random.default_rng(2)
    hu = (-860.0 + rng.normal(0, 20, (nz, ny, nx))).astype(np.float32)
    lung = np.zeros((nz, ny, nx), bool)
    lung[4:, 2:-2, 2:-2] = True
    hu[:4] = 40.0                       # liver under the dome
    hu[4] = -550.0 + rng.normal(0, 20, (ny, nx))  # partial volume: half lung, half liver
    _, x = np.mgrid[:ny, :nx]
    ggo = x >= 40
    hu[4:][:, ggo] = -600.0 + rng.normal(0, 20, (nz - 4, np.count_nonzero(ggo)))
    below, above = partial_volume_rim(lung, hu > -500)
    assert below[4, 2:-2, 2:-2].all() and not below[5:].any() and not above.any()
    ev = tissue_evidence(hu, lung, sp)
    excess = np.zeros(hu.shape, np.float32)
    excess[np.nonzero(lung)] = ev.parenchyma_hu - ev.healthy_hu
    assert np.median(excess[4, 10:-10, 8:30]) < 60      # the rim over the dome: not haze
    assert np.median(excess[4, 10:-10, 44:-8]) > 150    # ground glass reaching the dome: haze
    # without the correction the rim reads as dense as the ground glass
    values = np.where(lung, hu, 0.0)
    fixed = read_past_partial_volume(values, lung, below, above)
    assert np.median(fixed[4, 10:-10, 8:30]) < -800 < np.median(values[4, 10:-10, 8:30]) + 300


def _evidence(n, **kw):
    base = dict(solid=np.zeros(n, bool), vessel=np.zeros(n, bool), thin=np.zeros(n, bool),
                parenchyma_hu=np.full(n, -860, np.float32), healthy_hu=np.full(n, -860, np.float32),
                emphysema=np.zeros(n, bool), laa_fraction=np.zeros(n, np.float32),
                wall_fraction=np.zeros(n, np.float32), thin_fraction=np.zeros(n, np.float32),
                texture_hu=np.full(n, 30, np.float32),
                pleura_mm=np.full(n, 5, np.float32),
                noise_hu=30.0)
    base.update(kw)
    return TissueEvidence(**base)


def test_gates_let_structure_decide_over_cluster_names():
    rules = AssignmentRules()
    n = 7
    p = np.zeros((n, 6), np.float32)
    # cluster names: 0 fibrosis on a vessel, 1 consolidation on a thin vessel, 2 healthy in a
    # solid component, 3 emphysema outside any region, 4 healthy inside an emphysema region,
    # 5 GGO where the parenchyma is not dense, 6 fibrosis with a net of walls
    names = [Tissue.FIBROSIS, Tissue.CONSOLIDATION, Tissue.HEALTHY, Tissue.EMPHYSEMA,
             Tissue.HEALTHY, Tissue.GGO, Tissue.FIBROSIS]
    p[np.arange(n), names] = 1.0
    ev = _evidence(n,
                   vessel=np.array([1, 1, 0, 0, 0, 0, 0], bool),
                   thin=np.array([1, 1, 0, 0, 0, 0, 1], bool),
                   solid=np.array([0, 0, 1, 0, 0, 0, 0], bool),
                   emphysema=np.array([0, 0, 0, 0, 1, 0, 0], bool),
                   wall_fraction=np.array([0, 0, 0, 0, 0, 0, 0.3], np.float32),
                   parenchyma_hu=np.array([-860, -860, -860, -860, -860, -850, -700], np.float32))
    out = evidence_gates(p, ev, slice(0, n), rules)
    assert np.allclose(out.sum(1), 1.0)
    assert out.argmax(1).tolist() == [Tissue.HEALTHY, Tissue.HEALTHY, Tissue.CONSOLIDATION,
                                      Tissue.HEALTHY, Tissue.EMPHYSEMA, Tissue.HEALTHY,
                                      Tissue.FIBROSIS]


def test_texture_stands_in_for_walls_only_where_the_grid_cannot_resolve_them():
    """Dense, strongly textured parenchyma full of thin structures but without resolved walls
    (vessels and bronchi at a hilum on a fine grid; honeycombing on a 4 mm grid): fibrosis
    only on the coarse grid."""
    rules = AssignmentRules()
    p = np.zeros((1, 6), np.float32)
    p[0, Tissue.FIBROSIS] = 1.0
    kw = dict(thin=np.zeros(1, bool), thin_fraction=np.full(1, 0.45, np.float32),
              wall_fraction=np.full(1, 0.05, np.float32), texture_hu=np.full(1, 150, np.float32),
              parenchyma_hu=np.full(1, -650, np.float32))
    fine = evidence_gates(p, _evidence(1, **kw), slice(0, 1), rules).argmax(1)
    coarse = evidence_gates(p, _evidence(1, walls_resolved=False, **kw), slice(0, 1), rules).argmax(1)
    assert fine.tolist() == [Tissue.GGO] and coarse.tolist() == [Tissue.FIBROSIS]
    fine_net = evidence_gates(p, _evidence(1, **{**kw, "wall_fraction": np.full(1, 0.3, np.float32)}),
                              slice(0, 1), rules).argmax(1)
    assert fine_net.tolist() == [Tissue.FIBROSIS]


def test_on_a_coarse_grid_a_net_is_read_under_the_pleura_only():
    """The same dense, textured lung crowded with thin structures, named fibrosis by its
    cluster, on a grid too coarse to resolve walls: fibrosis 10 mm under the pleura, healthy
    60 mm deep, towards a hilum, where bronchi and vessels read so on such a grid (not ground
    glass: the crowding explains the density); a resolved net is fibrosis at any depth."""
    rules = AssignmentRules()
    p = np.zeros((2, 6), np.float32)
    p[:, Tissue.FIBROSIS] = 1.0
    kw = dict(thin_fraction=np.full(2, 0.45, np.float32), texture_hu=np.full(2, 150, np.float32),
              parenchyma_hu=np.full(2, -650, np.float32), pleura_mm=np.array([10, 60], np.float32))
    coarse = evidence_gates(p, _evidence(2, walls_resolved=False, **kw), slice(0, 2), rules).argmax(1)
    assert coarse.tolist() == [Tissue.FIBROSIS, Tissue.HEALTHY]
    fine = evidence_gates(p, _evidence(2, wall_fraction=np.full(2, 0.3, np.float32), **kw),
                          slice(0, 2), rules).argmax(1)
    assert fine.tolist() == [Tissue.FIBROSIS, Tissue.FIBROSIS]
    # honeycomb cysts the same way: deep on the coarse grid, a low-attenuation region is emphysema
    p[:] = 0.0
    p[:, Tissue.EMPHYSEMA] = 1.0
    cysts = evidence_gates(p, _evidence(2, walls_resolved=False, emphysema=np.ones(2, bool), **kw),
                           slice(0, 2), rules).argmax(1)
    assert cysts.tolist() == [Tissue.FIBROSIS, Tissue.EMPHYSEMA]


def test_on_a_grid_too_coarse_for_the_cells_every_wall_voxel_of_a_net_is_fibrosis():
    """A thin voxel that is not a vessel, amid a net of walls in dense parenchyma and named
    ground glass by its cluster: where the grid resolves the net's cells it is one of the
    walls and keeps its name; on a coarser grid it blurs walls and cells: fibrosis."""
    rules = AssignmentRules()
    p = np.zeros((1, 6), np.float32)
    p[0, Tissue.GGO] = 1.0
    kw = dict(thin=np.ones(1, bool), wall_fraction=np.full(1, 0.3, np.float32),
              parenchyma_hu=np.full(1, -650, np.float32))
    fine = evidence_gates(p, _evidence(1, **kw), slice(0, 1), rules).argmax(1)
    coarse = evidence_gates(p, _evidence(1, cells_resolved=False, **kw), slice(0, 1), rules).argmax(1)
    vessel = evidence_gates(p, _evidence(1, cells_resolved=False, vessel=np.ones(1, bool), **kw),
                            slice(0, 1), rules).argmax(1)
    assert fine.tolist() == [Tissue.GGO] and coarse.tolist() == [Tissue.FIBROSIS]
    assert vessel.tolist() == [Tissue.GGO]


def test_a_structure_one_voxel_across_is_thin_on_a_coarse_grid():
    """On 4 mm voxels the 3 mm ball of thick structures is no finer than one voxel: a vessel
    one voxel across is thin, a 30 mm consolidation thick and solid."""
    hu, lung, sp = _lung_block(shape=(16, 48, 48), spacing=(4.0, 4.0, 4.0))
    z, y, x = _grid(hu.shape, sp)
    tube = (np.abs(y - 42.0) < 2.0) & (np.abs(x - 2.0) < 2.0)        # one voxel across
    blob = (z ** 2 + (y + 30) ** 2 + x ** 2) <= 15.0 ** 2
    hu[tube] = 40.0
    hu[blob] = 30.0
    ev = tissue_evidence(hu, lung, sp)
    assert ev.thin[_rows(tube, lung)].mean() > 0.9
    assert ev.solid[_rows(blob, lung)].mean() > 0.8


def test_dependent_band_is_thin_dense_lung_under_the_posterior_pleura():
    """A thin dense band under the posterior pleura is dependent density; a lesion at the same
    pleura that is thicker, and a thin band under the anterior pleura, are not. A prone
    patient's dependent band is in front, a decubitus patient's along the lower side."""
    from scipy import ndimage as ndi

    shape, sp = (12, 100, 100), (2.0, 1.0, 1.0)
    inside = np.zeros(shape, bool)
    inside[:, 5:95, 5:95] = True
    depth = ndi.distance_transform_edt(inside, sampling=(1e6, 1.0, 1.0))
    y, x = np.mgrid[:100, :100]
    band = inside & ((y >= 90) & (x >= 10) & (x < 45))[None]    # 5 mm thick, at the back
    lesion = inside & ((y >= 72) & (x >= 55) & (x < 90))[None]  # 23 mm thick, at the back
    front = inside & ((y < 10) & (x >= 10) & (x < 45))[None]    # 5 mm thick, at the front
    out = dependent_band(band | lesion | front, inside, depth, sp, 10.0, 4.0)
    assert out[band].mean() > 0.95 and not out[front].any()
    # (the ball fits in the lesion but at its rounded edges and away from the block's ends)
    assert out[3:-3][lesion[3:-3]].mean() < 0.05
    # the opening is computed in a box around the band: the same as on the whole volume

    whole = band | lesion | front
    assert (out == (whole & (depth <= 10.0) & (y > 49)[None] & ~opening_mm(whole, sp, 4.0))).all()
    # a prone patient's dependent lung is in front: there the front band is the dependent one
    prone = dependent_band(band | lesion | front, inside, depth, sp, 10.0, 4.0, side="front")
    assert prone[front].mean() > 0.95 and not prone[band].any() and not prone[lesion].any()
    # lying on the left side (x grows towards the patient's left): a band along the left wall
    left = inside & ((x >= 90) & (y >= 20) & (y < 60))[None]
    on_left = dependent_band(left | band, inside, depth, sp, 10.0, 4.0, side="left")
    assert on_left[left].mean() > 0.95 and not on_left[band & (x < 50)[None]].any()
    assert not dependent_band(left, inside, depth, sp, 10.0, 4.0, side="right").any()


def test_partial_volume_is_dense_lung_lying_mostly_against_tissue_across_the_slice():
    """A region of denser lung is partial volume when most of its voxels have tissue in the
    slice above or below (:func:`partial_volume_rim`); a ground-glass region of four slices
    over nothing is not, and a single slice has no slice above or below to tell."""
    dense = np.zeros((8, 20, 20), bool)
    dense[2:4, 2:8, 2:8] = True      # two slices over the dome: 72 voxels, 40 in the rim
    dense[2:6, 12:18, 12:18] = True  # four slices of ground glass
    rim = np.zeros_like(dense)
    rim[2, 2:8, 2:8] = True
    rim[3, 2:6, 2:6] = True
    out = _mostly_in(dense, rim, 0.5)
    assert out[2:4, 2:8, 2:8].all() and not out[:, 12:18, 12:18].any()
    assert not _mostly_in(dense, rim & (np.arange(20) < 4)[None, :, None], 0.5).any()

    hu, lung, sp = _lung_block(shape=(12, 100, 100), spacing=(5.0, 0.8, 0.8), seed=6)
    z, y, x = _grid(hu.shape, sp)
    ggo = (np.abs(z - 2.5) <= 10.0) & (np.abs(x) < 15) & (np.abs(y) < 15)
    hu[ggo] += 150.0
    ev = tissue_evidence(hu, lung, sp)
    assert not ev.partial_volume.any()
    assert tissue_evidence(hu[6:7], lung[6:7], sp).partial_volume is None


def test_dependent_density_is_healthy_unless_it_is_reticular():
    rules = AssignmentRules()
    p = np.zeros((3, 6), np.float32)
    p[:, Tissue.GGO] = 1.0
    ev = _evidence(3, dependent=np.array([1, 1, 0], bool),
                   parenchyma_hu=np.full(3, -660, np.float32),
                   wall_fraction=np.array([0, 0.4, 0], np.float32))
    out = evidence_gates(p, ev, slice(0, 3), rules).argmax(1)
    # a smooth dependent band is healthy; a net of walls in it is fibrosis; elsewhere GGO
    assert out.tolist() == [Tissue.HEALTHY, Tissue.FIBROSIS, Tissue.GGO]
    # partial volume over the dome of the heart or the diaphragm: the same
    ev = _evidence(3, partial_volume=np.array([1, 1, 0], bool),
                   parenchyma_hu=np.full(3, -660, np.float32),
                   wall_fraction=np.array([0, 0.4, 0], np.float32))
    out = evidence_gates(p, ev, slice(0, 3), rules).argmax(1)
    assert out.tolist() == [Tissue.HEALTHY, Tissue.FIBROSIS, Tissue.GGO]


def test_edited_clusters_keep_their_label():
    from diffseglung_core.segment.assign import LabelMapping, label_probabilities

    post = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    mapping = LabelMapping(labels=[Tissue.GGO, Tissue.GGO]).with_label(1, Tissue.GGO)
    ev = _evidence(2)  # parenchyma not dense: GGO would go to healthy
    probs = label_probabilities(post, mapping, evidence=ev)
    assert probs[0].argmax() == Tissue.HEALTHY  # cluster name overruled by the evidence
    assert probs[1].argmax() == Tissue.GGO  # the user's choice stands


def test_a_uniformly_dark_lung_is_not_emphysema_but_its_air_lucencies_are():
    """Lung that reads darker than healthy lung at full inspiration holds many voxels below
    -950 HU (LAA-950 over 40 %) but no destroyed lobule: no emphysema, although the
    low-attenuation regions alone would call its front emphysema. Clustered lucencies 3-6 mm
    across that read as air, at its back: emphysema."""
    hu, lung, sp = _lung_block(shape=(1, 160, 160), spacing=(1.25, 0.78, 0.78), noise=20.0,
                               level=0.0, seed=7)
    _, y, x = _grid(hu.shape, sp)
    hu += (-945.0 + 20.0 * y / 62.0).astype(np.float32)  # -965 HU in front to -925 at the back
    assert (hu[lung] < -950).mean() > 0.4
    assert tissue_evidence(hu, lung, sp, min_air_share=0.0).emphysema.mean() > 0.05
    ev = tissue_evidence(hu, lung, sp)
    assert ev.emphysema.mean() < 0.005
    # the report says how much low-attenuation lung was left healthy, and why
    from types import SimpleNamespace

    from diffseglung_core.segment.report import make_report

    voxel_ml = np.prod(sp) / 1000.0
    assert ev.dark_without_air_ml > 0.05 * lung.sum() * voxel_ml
    result = SimpleNamespace(evidence=ev, mapping=None, timings={}, params={})
    note = make_report(lung.astype(np.uint8), hu, sp, result=result)["emphysema_evidence"]
    assert note["dark_without_air_ml"] == ev.dark_without_air_ml
    assert "without lucencies that read as air" in note["note"]
    assert "only the lung between nearby holes" in note["note"]  # a thin slice resolves them
    assert "reads as air at least 2 mm across" in note["note"]

    rng = np.random.default_rng(8)
    region = ((y - 35.0) ** 2 + x ** 2) <= 18.0 ** 2
    holes = np.zeros(hu.shape, bool)
    for cy, cx in rng.uniform(-13.0, 13.0, (14, 2)):
        holes |= ((y - 35.0 - cy) ** 2 + (x - cx) ** 2) <= rng.uniform(1.5, 3.0) ** 2
    hu[holes] = (-1000.0 + rng.normal(0.0, 20.0, int(holes.sum()))).astype(np.float32)
    ev = tissue_evidence(hu, lung, sp)
    assert ev.emphysema[_rows(holes, lung)].mean() > 0.8
    assert ev.emphysema[_rows(lung & ~region & (y < 0), lung)].mean() < 0.01


@pytest.mark.parametrize("slice_mm", [1.0, 5.0])
def test_an_emphysematous_region_reaches_its_half_way_edge(slice_mm):
    """A 3 cm lucency (-990 HU) drawn with partial volume: a voxel its edge cuts reads
    between air and lung in proportion to the share of it that is lucent. The region keeps
    its edge voxels that are more than half lucent, which read lighter than -950 HU when the
    lung reads -860 HU, and none of the lung beyond them."""
    hu, lung, sp = _lung_block(shape=(int(40 // slice_mm), 96, 96), spacing=(slice_mm, 0.8, 0.8),
                               noise=15.0, level=-860.0, seed=3)
    sub = 4  # the share of each voxel inside the sphere, from 4 x 4 x 4 points within it
    offsets = (np.arange(sub) + 0.5) / sub - 0.5
    z, y, x = _grid(hu.shape, sp)
    share = np.zeros(hu.shape)
    for dz in offsets:
        for dy in offsets:
            for dx in offsets:
                share += ((z + dz * sp[0]) ** 2 + (y + dy * sp[1]) ** 2 + (x + dx * sp[2]) ** 2
                          <= 15.0 ** 2)
    share /= sub ** 3
    hu += (share * (-990.0 + 860.0)).astype(np.float32)
    ev = tissue_evidence(hu, lung, sp)
    edge = (share > 0.55) & (share < 0.95)
    assert (hu[edge] > -950).mean() > 0.2  # LAA-950 leaves part of the edge out
    assert ev.emphysema[_rows(edge, lung)].mean() > 0.8
    assert ev.emphysema[_rows(share == 1.0, lung)].mean() > 0.95
    beyond = (share == 0) & ndi.binary_dilation(share > 0, np.ones((1, 3, 3), bool))
    assert ev.emphysema[_rows(beyond, lung)].mean() < 0.1
    assert ev.emphysema[_rows(~ndi.binary_dilation(share > 0, np.ones((3, 5, 5), bool)), lung)].sum() == 0



@pytest.mark.slow
def test_a0001_vessels_cut_across_are_not_solid_and_the_tumour_is(a0001_dicom):
    """Lung-PET-CT-Dx A0001 (0.84 x 0.84 x 5 mm): the thickest stretches of hilar and lobar
    vessels, cut across or obliquely by the 5 mm slices, survive the opening as short round
    pieces (four of 0.8-3.9 mL, looked at on overlays); the vessel leaves each on two sides,
    so none is solid. The tumour (slices 39-53) is, and a piece beside it (0.6 mL)."""
    from diffseglung_core.io import read_scan
    from diffseglung_core.lung import compute_lung_mask

    ct = read_scan(a0001_dicom)
    lung = compute_lung_mask(ct.hu, ct.spacing) > 0
    ev = tissue_evidence(ct.hu, lung, ct.spacing)
    solid = np.zeros(lung.shape, bool)
    solid[lung] = ev.solid
    parts, n = ndi.label(solid, np.ones((3, 3, 3), bool))
    ml = np.bincount(parts.ravel())[1:] * np.prod(ct.spacing) / 1000.0
    tumour = parts == 1 + int(np.argmax(ml))
    assert ml.max() > 40.0 and 39 <= np.flatnonzero(tumour.any(axis=(1, 2)))[0] <= 41
    near = ndi.distance_transform_edt(~tumour, sampling=ct.spacing) <= 20.0
    assert (solid & ~near).sum() * np.prod(ct.spacing) / 1000.0 < 0.3


def test_real_slices_take_their_hilar_arteries_cut_across_for_vessels(shared_data):
    """Single real slices: the interlobar arteries cut across at the hilum, homogeneous disks
    of soft tissue 15-20 mm wide, are not consolidation. The emphysema HRCT slices of
    cted-open subject11 and subject13 (no consolidation; 2.2 and 1.2 % of their lung was
    labelled so, the arteries, before the rule) get none; on the mostly clear COVID-19 slice
    A098752 -32 (5 mm) consolidation is found only in its subpleural opacity of the right
    lower lobe."""
    from diffseglung_core.io import read_scan
    from diffseglung_core.segment import segment_volume

    hrct = shared_data / "cted-open" / "slices"
    covid = shared_data / "covid-ny-sbu-open" / "A098752_19001231-32.dcm"
    if not hrct.is_dir() or not covid.is_file():
        pytest.skip("cted-open or covid-ny-sbu-open not found")
    for name in ("subject11_bottom.tiff", "subject13_bottom.tiff"):
        r = segment_volume(read_scan(hrct / name, spacing=(1.25, 0.78, 0.78)), device="cpu")
        assert not (np.asarray(r.labels) == Tissue.CONSOLIDATION).any(), name
    ct = read_scan(covid)
    r = segment_volume(ct, device="cpu")
    cons = np.asarray(r.labels) == Tissue.CONSOLIDATION
    depth = costal_depth(np.asarray(r.lung) > 0, ct.spacing)
    assert cons.sum() * np.prod(ct.spacing[1:]) > 50.0  # mm², the opacity
    assert depth[cons].max() < 20.0


def test_a_real_slice_takes_the_lobar_arteries_leaving_its_hila_for_vessels(shared_data):
    """COVID-19 slice A056642 -053 (2.5 mm): the lower-lobe arteries beside their bronchi,
    joined to the hila 27 and 30 mm below the costal surface, are not consolidation (they
    were, 1,393 pixels, before the rule that reads a disk joining the hilum); the
    consolidation of both lungs, which reaches the chest wall, stays."""
    from diffseglung_core.io import read_scan
    from diffseglung_core.segment import segment_volume

    path = shared_data / "covid-ny-sbu-open" / "A056642_19001229-053.dcm"
    if not path.is_file():
        pytest.skip("covid-ny-sbu-open not found")
    ct = read_scan(path)
    r = segment_volume(ct, device="cpu")
    cons = (np.asarray(r.labels) == Tissue.CONSOLIDATION)[0]
    depth = costal_depth(np.asarray(r.lung) > 0, ct.spacing)[0]
    lab, n = ndi.label(cons)
    assert n >= 2
    assert all(depth[lab == i].min() < 10.0 for i in range(1, n + 1))
    assert cons.sum() * np.prod(ct.spacing[1:]) > 1000.0  # mm²


@pytest.mark.parametrize("resolved", [True, False])
def test_texture_stands_for_the_walls_of_honeycomb_cysts_only_where_the_grid_cannot_resolve_them(
        resolved):
    """An emphysematous region with no thin structures around it but texture far above the
    noise (air beside lung): emphysema where the grid resolves the walls of cysts (they would
    be thin structures), honeycombing (fibrosis) where it is too coarse and texture stands in
    for them; with thin walls around it, honeycombing on any grid."""
    rules = AssignmentRules()
    p = np.zeros((2, 6), np.float32)
    p[:, Tissue.EMPHYSEMA] = 1.0
    ev = _evidence(2, emphysema=np.ones(2, bool), texture_hu=np.full(2, 200, np.float32),
                   thin_fraction=np.array([0.0, 0.5], np.float32), walls_resolved=resolved)
    out = evidence_gates(p, ev, slice(0, 2), rules).argmax(1)
    assert out.tolist() == [Tissue.EMPHYSEMA if resolved else Tissue.FIBROSIS, Tissue.FIBROSIS]


def test_a_voxel_that_reads_as_haze_in_hazy_parenchyma_is_ground_glass_whatever_its_cluster():
    """Voxels named healthy by their cluster (a small ground-glass nodule has too few voxels
    for a cluster of its own) in parenchyma 150 HU denser than healthy lung: ground glass
    where the voxel itself reads as haze; healthy where only its surroundings do (the lung just
    beside a lesion, which the 3 mm mean of the parenchyma blurs over) and on a grid too coarse
    to resolve the lung's fine structure (blurred vessels lift both) or on a single slice (no
    slice above or below to tell haze from the partial volume of a dome: the cluster decides)."""
    rules = AssignmentRules()
    p = np.zeros((3, 6), np.float32)
    p[:, Tissue.HEALTHY] = 1.0
    kw = dict(parenchyma_hu=np.full(3, -710, np.float32),
              voxel_hu=np.array([-700, -840, -700], np.float32))
    volume = dict(partial_volume=np.zeros(3, bool), **kw)
    fine = evidence_gates(p, _evidence(3, **volume), slice(0, 3), rules).argmax(1)
    assert fine.tolist() == [Tissue.GGO, Tissue.HEALTHY, Tissue.GGO]
    coarse = evidence_gates(p, _evidence(3, walls_resolved=False, **volume), slice(0, 3), rules)
    assert coarse.argmax(1).tolist() == [Tissue.HEALTHY] * 3
    one_slice = evidence_gates(p, _evidence(3, **kw), slice(0, 3), rules).argmax(1)
    assert one_slice.tolist() == [Tissue.HEALTHY] * 3
    # the parenchyma alone decides only far above healthy lung (``ggo_upgrade_hu``)
    alone = evidence_gates(p, _evidence(3, parenchyma_hu=kw["parenchyma_hu"]), slice(0, 3), rules)
    assert alone.argmax(1).tolist() == [Tissue.HEALTHY] * 3
