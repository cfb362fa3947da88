import json

import numpy as np
import pytest

from diffseglung_core.errors import Cancelled, NoLungFoundError
from diffseglung_core.labels import Tissue
from diffseglung_core.segment import apply_mapping, segment_volume
from diffseglung_core.segment.report import (
    cluster_outcomes,
    density_indices,
    describe_outcome,
    make_report,
    write_report,
)

from seg_synth import make_chest


def _dice(a, b):
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


@pytest.fixture(scope="module")
def result(chest):
    vol, lung, gt = chest
    stages = []
    res = segment_volume(vol, lung_mask=lung, features="density", device="cpu",
                         progress=lambda d, t, s: stages.append(s))
    return vol, lung, gt, res, stages


def test_segments_all_lesions_of_a_known_chest(result):
    vol, lung, gt, res, stages = result
    assert res.labels.dtype == np.uint8 and res.labels.shape == vol.shape
    assert ((res.labels > 0) == lung).all()
    for t in (Tissue.HEALTHY, Tissue.EMPHYSEMA, Tissue.GGO):
        assert _dice(res.labels == t, gt == t) > 0.8, t
    # the sharp rim of a dense ball reads as textured mid density (part goes to fibrosis)
    assert _dice(res.labels == Tissue.CONSOLIDATION, gt == Tissue.CONSOLIDATION) > 0.55
    assert "clustering" in stages and stages[-1] == "done"
    n = int(lung.sum())
    assert res.posteriors.shape == (n, res.mapping.n_clusters)
    assert res.clusters["final"].shape == (n,)
    assert res.cluster_map().max() == res.mapping.n_clusters or res.cluster_map().max() > 0


def test_apply_mapping_relabels_without_features(result):
    vol, lung, gt, res, _ = result
    same = apply_mapping(res, res.mapping)
    np.testing.assert_array_equal(same, res.labels)
    # map every emphysema cluster to healthy: the voxels of those clusters are no longer
    # emphysema (a user's edit wins over the structure evidence), nothing else moves much
    m = res.mapping
    remapped = [k for k, lab in enumerate(m.labels) if lab == Tissue.EMPHYSEMA]
    for k in remapped:
        m = m.with_label(k, Tissue.HEALTHY)
    new = apply_mapping(res, m, refine=False)
    of_remapped = np.isin(res.posteriors.argmax(1), remapped) & \
        (res.posteriors.max(1).astype(np.float32) > 0.9)
    assert not np.any(new[lung > 0][of_remapped] == Tissue.EMPHYSEMA)
    before = (res.labels == Tissue.EMPHYSEMA).sum()
    assert (new == Tissue.EMPHYSEMA).sum() < 0.1 * before
    assert _dice(new == Tissue.GGO, res.labels == Tissue.GGO) > 0.9


def test_report_holds_volumes_density_and_mapping(result, tmp_path):
    vol, lung, gt, res, _ = result
    rep = make_report(res.labels, vol.hu, vol.spacing, mapping=res.mapping, timings=res.timings,
                      params=res.params)
    total = sum(c["volume_ml"] for c in rep["classes"])
    assert total == pytest.approx(lung.sum() * np.prod(vol.spacing) / 1000)
    assert sum(c["percent_of_lung"] for c in rep["classes"]) == pytest.approx(100)
    calibrated = vol.hu[lung] - res.mapping.hu_offset
    assert rep["density"]["laa950_percent"] == pytest.approx(100 * (calibrated < -950).mean())
    assert rep["density"]["pd15_hu"] == pytest.approx(np.percentile(calibrated, 15), abs=0.01)
    assert rep["density"]["hu_offset"] == res.mapping.hu_offset
    j, c = write_report(rep, tmp_path / "r.json")
    back = json.loads(j.read_text())
    assert len(back["mapping"]["clusters"]) == res.mapping.n_clusters
    assert "emphysema" in c.read_text()
    assert "patient_position" not in rep  # supine or unknown: nothing to say
    prone = make_report(res.labels, vol.hu, vol.spacing, mapping=res.mapping, patient_position="HFP")
    assert prone["patient_position"]["dicom"] == "HFP" and "prone" in prone["patient_position"]["note"]
    assert "patient_position" not in make_report(res.labels, vol.hu, vol.spacing, patient_position="HFS")
    # a report asked for as .csv keeps its JSON beside the table, not written over by it
    j2, c2 = write_report(rep, tmp_path / "asked.csv")
    assert (j2.name, c2.name) == ("asked.json", "asked.csv")
    assert json.loads(j2.read_text()) == back and c2.read_text() == c.read_text()


def test_report_says_what_each_cluster_ended_as(result):
    """A cluster is named by its statistics; the voxel evidence labels its voxels one by one.
    The report gives, per cluster, the share of its voxels each tissue ended with."""
    vol, lung, gt, res, _ = result
    rep = make_report(res.labels, vol.hu, vol.spacing, result=res)
    final = res.labels[res.lung > 0]
    for c in rep["mapping"]["clusters"]:
        mine = final[res.clusters["final"] == c["cluster"]]
        shares = c["labelled_percent"]
        if mine.size == 0:
            assert shares == {}
            continue
        assert sum(shares.values()) == pytest.approx(100.0)
        for t, name in ((1, "healthy"), (2, "ground-glass opacity"), (3, "fibrosis"),
                        (4, "emphysema"), (5, "consolidation")):
            assert shares.get(name, 0.0) == pytest.approx(100.0 * np.mean(mine == t))
    # a hand-made case: cluster 0 ends half healthy, half fibrosis; cluster 1 empty
    labels = np.array([[[1, 3, 0, 5]]], np.uint8)
    got = cluster_outcomes(labels, labels > 0, np.array([0, 0, 2]), 3)
    assert got == [{"healthy": 50.0, "fibrosis": 50.0}, {}, {"consolidation": 100.0}]
    # in words, largest first, shares under 0.5 % left out
    shares = {"fibrosis": 2.2, "healthy": 83.4, "consolidation": 0.3, "ground-glass opacity": 14.1}
    assert describe_outcome(shares) == ("its voxels labelled 83 % healthy, 14 % ground-glass "
                                        "opacity, 2 % fibrosis")
    assert describe_outcome({}) == ""


def test_cancel_and_empty_lung(chest):
    vol, lung, _ = chest

    def cancel(done, total, stage):
        if stage == "clustering":
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        segment_volume(vol, lung_mask=lung, features="density", device="cpu", progress=cancel)
    with pytest.raises(NoLungFoundError):
        segment_volume(vol, lung_mask=np.zeros_like(lung), features="density", device="cpu")


def test_single_slice_volume():
    vol, lung, gt = make_chest(shape=(1, 128, 128), spacing=(1.0, 0.8, 0.8))
    gt2 = gt.copy()
    res = segment_volume(vol, lung_mask=lung, features="density", device="cpu")
    assert res.labels.shape == (1, 128, 128)
    assert _dice(res.labels == Tissue.HEALTHY, gt2 == Tissue.HEALTHY) > 0.9


def test_radiomics_features_path_runs(chest):
    vol, lung, gt = chest
    res = segment_volume(vol, lung_mask=lung, features="radiomics", device="cpu", n_init=1)
    assert "radiomics" in res.params["feature_sets"]
    assert _dice(res.labels == Tissue.HEALTHY, gt == Tissue.HEALTHY) > 0.9
    assert _dice(res.labels == Tissue.EMPHYSEMA, gt == Tissue.EMPHYSEMA) > 0.5


def test_report_of_a_run_that_computed_its_lung_mask():
    """The report says what the lung mask left out, the classes per lung, and why emphysema is
    (or is not) labelled beside LAA-950."""
    from diffseglung_core.phantom import make_phantom

    ph = make_phantom((24, 96, 96), seed=3)
    res = segment_volume(ph.volume, features="density", device="cpu")
    rep = make_report(res.labels, ph.volume.hu, ph.volume.spacing, result=res)
    lung = rep["lung"]
    assert lung["right_ml"] > 500 and lung["left_ml"] > 500
    assert lung["gas_not_lung_ml"] > 0 and any("not lung" in n for n in lung["notes"])
    by_lung = {c["name"]: c for c in rep["classes_by_lung"]}
    healthy = by_lung["healthy"]
    assert healthy["right_ml"] + healthy["left_ml"] == pytest.approx(healthy["volume_ml"], rel=1e-6)
    note = rep["emphysema_evidence"]
    assert note["noise_hu"] > 0 and "LAA-950" in note["note"]
    assert "partial volume blurs the holes" in note["note"]  # 12.5 mm slices: holes and lung blur
    dependent = rep["dependent_density"]
    band = np.zeros(res.labels.shape, bool)
    band[np.nonzero(res.labels > 0)] = res.evidence.dependent
    voxel_ml = np.prod(ph.volume.spacing) / 1000.0
    assert dependent["ml"] == pytest.approx(np.count_nonzero(band & (res.labels == 1)) * voxel_ml)
    assert "posterior pleura" in dependent["note"] and "prone scan" in dependent["note"]
    prone = make_report(res.labels, ph.volume.hu, ph.volume.spacing, result=res, patient_position="HFP")
    assert "anterior pleura" in prone["dependent_density"]["note"]
    assert "prone patient (a supine scan" in prone["dependent_density"]["note"]
    assert rep["params"]["evidence"] is True
    json.dumps(rep)  # JSON-ready


def test_auto_features_use_diffusion_only_with_a_model_of_ones_own():
    from diffseglung_core.segment.engine import resolve_features

    assert resolve_features("auto", None) == "radiomics"
    assert resolve_features("auto", "default") == "radiomics"  # the shipped model: measured worse
    assert resolve_features("auto", "my_model.pt") == "both"
    assert resolve_features("diffusion", None) == "diffusion"
    with pytest.raises(ValueError, match="features must be one of"):
        resolve_features("hog", None)


def test_cluster_previews_are_extra_work_only(chest):
    vol, lung, _ = chest
    kw = dict(lung_mask=lung, features="radiomics", device="cpu", refine=False)
    with_previews = segment_volume(vol, cluster_previews=True, **kw)
    without = segment_volume(vol, **kw)  # the default
    assert set(with_previews.clusters) == {"final", "density", "radiomics"}
    assert set(without.clusters) == {"final"}
    np.testing.assert_array_equal(without.labels, with_previews.labels)


def test_robust_standardize_centres_on_the_median_and_scales_by_the_iqr():
    from diffseglung_core.segment.features import robust_standardize

    rng = np.random.default_rng(0)
    x = np.stack([rng.normal(5.0, 2.0, 20001), rng.exponential(3.0, 20001), np.full(20001, 7.0)], 1)
    out = robust_standardize(x)
    q25, med, q75 = np.percentile(x, [25, 50, 75], axis=0)
    expected = np.clip((x - med) / np.where(q75 > q25, (q75 - q25) / 1.349, 1.0), -10, 10)
    assert out.dtype == np.float32 and np.allclose(out, expected, atol=1e-5)
    assert np.allclose(np.median(out, axis=0), 0.0, atol=1e-6)
    # NaN (a feature undefined at some voxels): left out of the statistics, then 0
    y = x.copy()
    y[::3, 0] = np.nan
    out = robust_standardize(y)
    q25, med, q75 = np.nanpercentile(y[:, 0], [25, 50, 75])
    assert np.allclose(out[1::3, 0], np.clip((y[1::3, 0] - med) / ((q75 - q25) / 1.349), -10, 10),
                       atol=1e-5)
    assert (out[::3, 0] == 0).all()
    # computed block by block: exactly the values of the whole-array formula
    big = rng.normal(0.0, 1.0, (600_001, 3)).astype(np.float32)
    big[::7, 1] = np.nan
    q25, med, q75 = np.nanpercentile(big, [25, 50, 75], axis=0)
    whole = np.nan_to_num(np.clip((big - med) / ((q75 - q25) / 1.349), -10, 10), nan=0.0)
    np.testing.assert_array_equal(robust_standardize(big), whole.astype(np.float32))


def test_a_lung_segmentation_given_is_the_engines_own_mask():
    """Given the LungSegmentation of segment_scan_lungs, the engine calibrates on its airways
    as when it computes the mask itself: the same labels and offset."""
    from diffseglung_core.lung import segment_scan_lungs
    from diffseglung_core.phantom import make_phantom

    ph = make_phantom((24, 96, 96), seed=3)
    vol = ph.volume
    vol.hu[...] += np.float32(40.0)                   # a scanner whose air reads -960 HU
    own = segment_volume(vol, features="density", device="cpu", n_init=1)
    seg = segment_scan_lungs(vol)
    given = segment_volume(vol, lung_mask=seg, features="density", device="cpu", n_init=1)
    assert given.lung_segmentation is seg
    assert given.mapping.hu_offset == own.mapping.hu_offset != 0.0
    assert np.array_equal(given.labels, own.labels)


def test_density_indices_are_read_on_calibrated_hu():
    """A scan whose air reads -925 HU (offset +75 HU): 30 % of its lung reads -960 HU
    once calibrated, and LAA-950 says so; read on the raw values it would say 0 %."""
    hu = np.full((1, 10, 10), -810.0, np.float32)
    hu[0, :3] = -885.0
    lung = np.ones(hu.shape, bool)
    raw = density_indices(hu, lung)
    assert raw["laa950_percent"] == 0.0 and raw["hu_offset"] == 0.0
    d = density_indices(hu, lung, hu_offset=75.0)
    assert d["laa950_percent"] == pytest.approx(30.0) and d["hu_offset"] == 75.0
    assert d["pd15_hu"] == pytest.approx(-960.0)


def test_white_lung_is_ground_glass_end_to_end():
    # both lungs mostly ground glass: the histogram peak of many bands is ground glass,
    # and the healthy level must come from the lighter lung, not from those peaks
    from diffseglung_core.evaluate.metrics import dice
    from diffseglung_core.phantom import make_phantom

    ph = make_phantom(shape=(32, 96, 96), seed=2, case="white_lung")
    labels = np.asarray(segment_volume(ph.volume, device="cpu").labels)
    assert dice(labels == Tissue.GGO, ph.labels == Tissue.GGO) >= 0.85
    assert dice(labels == Tissue.HEALTHY, ph.labels == Tissue.HEALTHY) >= 0.85


def test_the_dependent_band_follows_the_scans_patient_position():
    """The engine reads the dependent side from the scan: a supine scan's band of dependent
    density lies behind the lungs' middle, the same scan said to be prone has its band in front."""
    from diffseglung_core.gravity import dependent_of_centre
    from diffseglung_core.phantom import make_phantom

    ph = make_phantom((24, 96, 96), seed=3)
    bands = {}
    for code in ("HFS", "HFP"):
        res = segment_volume(ph.volume.with_position(code), features="density", device="cpu")
        band = np.zeros(res.labels.shape, bool)
        band[np.nonzero(res.labels > 0)] = res.evidence.dependent
        bands[code] = band
    lung = res.labels > 0  # (the same mask for both: the phantom has no pleural fluid)
    for code, side in (("HFS", "back"), ("HFP", "front")):
        assert bands[code].any() and not (bands[code] & ~dependent_of_centre(lung, side)).any()


def test_a_small_ground_glass_nodule_is_found_in_healthy_lung():
    """A 12 mm ground-glass nodule (about -640 HU) in an otherwise healthy phantom lung on a
    grid that resolves the lung's structure: too few voxels for a cluster of its own, it is
    found by its own haze in the hazy parenchyma around it, and little else is called GGO."""
    from diffseglung_core.evaluate.testbed import LesionSpec, insert_lesions
    from diffseglung_core.phantom import make_phantom

    ph = make_phantom((32, 320, 320), seed=3, pathologies=())
    case = insert_lesions(ph.volume, ph.lung > 0, [LesionSpec("ggo", 12.0)], seed=0)
    labels = segment_volume(case.volume, device="cpu").labels
    nodule = case.truth == Tissue.GGO
    assert nodule.sum() > 50
    assert np.mean(labels[nodule] == Tissue.GGO) > 0.6
    assert np.count_nonzero((labels == Tissue.GGO) & ~nodule) < 0.005 * np.count_nonzero(ph.lung)
