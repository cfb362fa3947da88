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
