import json

import numpy as np
import pytest

from diffseglung_core.calibration import calibrate_hu
from diffseglung_core.labels import Tissue
from diffseglung_core.segment.assign import LabelMapping, assign_labels, label_probabilities
from diffseglung_core.segment.engine import segment_volume

from seg_synth import make_chest


def _dice(a, b):
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


def test_no_emphysema_when_the_scan_has_none():
    vol, lung, gt = make_chest(lesions=(2, 5))
    res = segment_volume(vol, lung_mask=lung, features="density", device="cpu")
    # many clusters, but none is emphysema: labels come from absolute HU, not rank
    assert Tissue.EMPHYSEMA not in res.mapping.labels
    assert (res.labels == Tissue.EMPHYSEMA).sum() == 0
    assert _dice(res.labels == Tissue.GGO, gt == Tissue.GGO) > 0.7


def test_no_emphysema_on_a_phantom_without_emphysema():
    phantom = pytest.importorskip("diffseglung_core.phantom")
    ph = phantom.make_phantom((24, 96, 96), seed=1, pathologies=("ggo", "fibrosis", "consolidation"))
    res = segment_volume(ph.volume, lung_mask=ph.lung, features="density", device="cpu", n_init=1)
    assert (res.labels == Tissue.EMPHYSEMA).sum() < 0.005 * (ph.lung > 0).sum()
    assert _dice(res.labels == Tissue.GGO, ph.labels == Tissue.GGO) > 0.5


def test_calibration_follows_a_shifted_scan():
    # the whole scan (outside air included) reads 50 HU high, as with a bad calibration
    vol, lung, gt = make_chest(shift_hu=50.0)
    cal = calibrate_hu(vol.hu, lung)
    assert cal.applied and cal.offset_hu == pytest.approx(50.0, abs=2.0)
    res = segment_volume(vol, lung_mask=lung, features="density", device="cpu")
    assert res.mapping.hu_offset == cal.offset_hu and res.mapping.calibration["applied"]
    for t in (Tissue.HEALTHY, Tissue.EMPHYSEMA, Tissue.GGO):
        assert _dice(res.labels == t, gt == t) > 0.8, t
    # the sharp rim of a dense ball reads as textured mid density (part goes to fibrosis)
    assert _dice(res.labels == Tissue.CONSOLIDATION, gt == Tissue.CONSOLIDATION) > 0.55


def test_crop_without_outside_air_has_no_offset():
    vol, lung, _ = make_chest(shift_hu=30.0)
    cal = calibrate_hu(vol.hu[:, 20:70, 20:70], lung[:, 20:70, 20:70])
    assert cal.offset_hu == 0.0 and not cal.applied and "no offset applied" in cal.reason


def test_flags_and_labels_from_cluster_statistics():
    rng = np.random.default_rng(0)
    hu = np.concatenate([rng.normal(-860, 20, 4000), rng.normal(-980, 10, 1000),
                         rng.normal(-450, 40, 1000), rng.normal(400, 30, 300)]).astype(np.float32)
    post = np.zeros((len(hu), 4), np.float32)
    post[np.arange(len(hu)), np.repeat([0, 1, 2, 3], [4000, 1000, 1000, 300])] = 1
    m = assign_labels(hu, post, texture=np.full(len(hu), 40.0, np.float32))
    assert m.labels == [Tissue.HEALTHY, Tissue.EMPHYSEMA, Tissue.GGO, Tissue.CONSOLIDATION]
    assert m.flags[3] and not any(m.flags[:3])  # bone-dense cluster is flagged
    assert m.stats[1]["laa950"] > 0.9


def test_fibrosis_texture_is_measured_against_all_of_healthy_lung():
    """A textured mid-density cluster is named the same however healthy lung is split.

    Healthy lung (about -860 HU) is one cluster, or two: a smooth core (texture 40 HU)
    and a larger, more textured part along the vessels (90 HU). The reference texture
    is that of healthy lung as a whole, not of its largest cluster."""
    rng = np.random.default_rng(0)
    n_core, n_rim, n_mid = 30_000, 50_000, 10_000
    hu = np.concatenate([rng.normal(-870, 20, n_core), rng.normal(-850, 20, n_rim),
                         rng.normal(-600, 60, n_mid)]).astype(np.float32)
    texture = np.concatenate([np.full(n_core, 40.0), np.full(n_rim, 90.0),
                              np.full(n_mid, 160.0)]).astype(np.float32)
    which = np.repeat([0, 1, 2], [n_core, n_rim, n_mid])
    split = np.eye(3, dtype=np.float32)[which]                 # core, rim, mid-density
    whole = np.eye(2, dtype=np.float32)[(which == 2).astype(int)]  # healthy lung, mid-density
    a = assign_labels(hu, split, texture=texture)
    b = assign_labels(hu, whole, texture=texture)
    assert a.labels[:2] == [Tissue.HEALTHY, Tissue.HEALTHY] and b.labels[0] == Tissue.HEALTHY
    # healthy texture 71 HU either way: 160 HU is more than twice that, fibrosis in both
    assert a.labels[2] == b.labels[1] == Tissue.FIBROSIS


def test_mapping_edit_and_round_trip():
    rng = np.random.default_rng(1)
    hu = rng.normal(-850, 30, 2000).astype(np.float32)
    post = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 2000)]
    m = assign_labels(hu, post)
    m2 = m.with_label(1, Tissue.GGO)
    assert m.labels[1] == Tissue.HEALTHY and m2.labels[1] == Tissue.GGO and m2.edited == [1]
    back = LabelMapping.from_dict(json.loads(json.dumps(m2.to_dict())))
    assert back.labels == m2.labels and back.rules == m2.rules and back.edited == [1]
    assert back.calibration == {} and back.hu_offset == 0.0
    probs = label_probabilities(post, m2)
    assert probs.shape == (2000, 6)
    np.testing.assert_allclose(probs.sum(1), 1.0)
    with pytest.raises(ValueError):
        m.with_label(0, 9)
