import numpy as np
import pytest

from diffseglung_core.evaluate.metrics import dice, hd95
from diffseglung_core.labels import Tissue
from diffseglung_core.segment.refine import (
    argmax_labels,
    fill_from_nearest,
    refine_labels,
    refine_slice,
    remove_small_components,
    sobel_magnitude,
)

from seg_synth import make_chest


def test_sobel_magnitude_is_in_hu_per_mm():
    z, y, x = np.mgrid[:5, :8, :8]
    hu = (10.0 * x).astype(np.float32)  # 10 HU per voxel along x
    g = sobel_magnitude(hu, (1.0, 1.0, 2.0), smooth_mm=0)
    np.testing.assert_allclose(g[2, 4, 2:6], 5.0, rtol=1e-5)  # 10 HU / 2 mm


def test_small_components_are_absorbed():
    lab = np.ones((5, 20, 20), np.uint8)
    lab[2, 5, 5] = Tissue.GGO
    lab[1:4, 10:16, 10:16] = Tissue.GGO
    out = remove_small_components(lab, (1.0, 1.0, 1.0), min_component_mm3=5)
    assert out[2, 5, 5] == Tissue.HEALTHY
    assert (out == Tissue.GGO).sum() == 3 * 36


def test_fixed_labels_are_neither_absorbed_nor_spread():
    """A 2-voxel emphysema region stays; a GGO speck beside it takes healthy, not emphysema."""
    lab = np.ones((5, 20, 20), np.uint8)
    lab[2, 5, 5:7] = Tissue.EMPHYSEMA
    lab[2, 5, 7] = Tissue.GGO
    out = remove_small_components(lab, (1.0, 1.0, 1.0), min_component_mm3=5, fixed=(Tissue.EMPHYSEMA,))
    assert (out[2, 5, 5:7] == Tissue.EMPHYSEMA).all() and out[2, 5, 7] == Tissue.HEALTHY
    assert (out == Tissue.EMPHYSEMA).sum() == 2
    plain = remove_small_components(lab, (1.0, 1.0, 1.0), min_component_mm3=5)
    assert not (plain == Tissue.EMPHYSEMA).any()


def test_fill_from_nearest_takes_a_nearest_source_even_far_away():
    """Each changed voxel takes the label of a source at the least distance (in mm), whether
    the source lies beside its region or far beyond the region's first box."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(0)
    spacing = (2.0, 0.7, 0.9)
    labels = rng.integers(1, 6, (12, 40, 50)).astype(np.uint8)
    source = rng.random(labels.shape) < 0.02
    source[:, :20] = False  # the regions here find their sources beyond 4 voxels
    change = ndi.binary_dilation(rng.random(labels.shape) < 0.01) & ~source
    out = fill_from_nearest(labels, change, source, spacing, margin=1)
    assert np.array_equal(out[~change], labels[~change])
    nearest = ndi.distance_transform_edt(~source, sampling=spacing)
    for value in range(1, 6):
        # the distance to the nearest source of the label a voxel got is the least distance
        near_value = ndi.distance_transform_edt(~(source & (labels == value)), sampling=spacing)
        got = change & (out == value)
        np.testing.assert_allclose(near_value[got], nearest[got])
    # no source: nothing changes
    assert np.array_equal(fill_from_nearest(labels, change, np.zeros_like(source), spacing), labels)


def test_sobel_diffusion_fusion_improves_boundaries():
    # noisy label posteriors of a known chest: argmax is speckled, SDF must clean it
    vol, lung, gt = make_chest(noise_hu=40.0, seed=3)
    rng = np.random.default_rng(0)
    onehot = np.eye(6, dtype=np.float32)[gt[lung]]
    probs = 0.3 * onehot + 0.7 * rng.dirichlet(np.ones(6) * 0.3, size=len(onehot)).astype(np.float32)
    raw = argmax_labels(probs, lung)
    ref = refine_labels(probs, lung, vol.hu, vol.spacing)
    for t in (Tissue.HEALTHY, Tissue.GGO, Tissue.EMPHYSEMA, Tissue.CONSOLIDATION):
        d0, d1 = dice(raw == t, gt == t), dice(ref == t, gt == t)
        h0, h1 = hd95(raw == t, gt == t, vol.spacing), hd95(ref == t, gt == t, vol.spacing)
        assert d1 > d0 + 0.02, (t, d0, d1)
        assert h1 < h0, (t, h0, h1)
    assert ((ref > 0) == lung).all()  # inside the lung only, every lung voxel labelled


@pytest.mark.parametrize("keep", [False, True])
def test_emphysema_regions_can_be_kept_as_they_are(keep):
    """A small emphysema region with faint edges (12 mm^3, below the smallest component the
    fusion keeps): the fusion erodes it unless asked to keep emphysema, and then no other
    voxel becomes emphysema."""
    rng = np.random.default_rng(1)
    shape = (12, 24, 24)
    hu = rng.normal(-870, 30, shape).astype(np.float32)
    lung = np.ones(shape, bool)
    region = np.zeros(shape, bool)
    region[5:8, 10:12, 10:12] = True
    probs = np.zeros((lung.sum(), 6), np.float32)
    probs[:, Tissue.HEALTHY] = 0.9
    probs[:, Tissue.EMPHYSEMA] = 0.1
    probs[region[lung], Tissue.HEALTHY] = 0.4
    probs[region[lung], Tissue.EMPHYSEMA] = 0.6
    out = refine_labels(probs, lung, hu, (1.0, 1.0, 1.0), keep_emphysema=keep)
    if keep:
        np.testing.assert_array_equal(out == Tissue.EMPHYSEMA, region)
    else:
        assert (out[region] == Tissue.EMPHYSEMA).mean() < 0.5


def test_refinement_does_not_cross_strong_edges():
    # a posterior that says "GGO" everywhere but 1 voxel layer must not leak across a sharp HU edge
    vol, lung, gt = make_chest(lesions=(5,), noise_hu=5.0)
    probs = np.eye(6, dtype=np.float32)[gt[lung]]
    ref = refine_labels(probs, lung, vol.hu, vol.spacing, min_component_mm3=0)
    np.testing.assert_array_equal(ref[lung], gt[lung])


def test_the_fusion_does_not_depend_on_its_slabs():
    """Each slab works in the box of its own lung grown by the Sobel's reach: a lung whose
    width changes from slice to slice (widest in slice 3 among its neighbours, wider still
    further down), with the chest wall's edge right along its border, gives the same labels
    in slabs of 3 slices as in one slab."""
    rng = np.random.default_rng(2)
    half = np.array([7, 8, 9, 10, 9, 8, 7, 6, 5, 5, 6, 8, 10, 12, 14, 16, 18, 18])
    zz, yy, xx = np.mgrid[:18, :48, :48]
    lung = np.maximum(np.abs(yy - 24), np.abs(xx - 24)) < half[:, None, None]
    hu = rng.normal(-850, 40, lung.shape).astype(np.float32)
    hu[~lung] = 40.0
    hu[(np.abs(yy - 24) < 3) & lung] = -300.0  # a dense band across
    # two labels in near ties: the conductance at the lung's border decides many of them
    probs = np.zeros((int(lung.sum()), 6), np.float32)
    tie = rng.normal(0, 0.02, len(probs)).astype(np.float32)
    probs[:, 1], probs[:, 2] = 0.5 + tie, 0.5 - tie
    options = {"kappa": 60.0, "iterations": 3, "min_component_mm3": 0.0}
    whole = refine_labels(probs, lung, hu, (1.0, 0.7, 0.7), slab=18, **options)
    np.testing.assert_array_equal(refine_labels(probs, lung, hu, (1.0, 0.7, 0.7), slab=3, **options),
                                  whole)
    assert ((whole > 0) == lung).all() and 0.2 < (whole == 1).sum() / lung.sum() < 0.8


def test_refine_slice_matches_full_refinement():
    rng = np.random.default_rng(0)
    shape = (20, 16, 16)
    hu = rng.normal(-850, 40, shape).astype(np.float32)
    hu[:, 4:9, 4:9] = -400  # a dense lesion
    lung = np.zeros(shape, np.uint8)
    lung[1:19, 2:14, 2:14] = 1
    n = int(lung.sum())
    probs = rng.random((n, 6)).astype(np.float32)
    probs[:, 0] = 0
    probs[hu[lung > 0] > -600, 2] += 1.0  # the lesion leans to GGO
    probs /= probs.sum(1, keepdims=True)
    options = {"kappa": 60.0, "iterations": 3, "min_component_mm3": 0.0}
    full = refine_labels(probs, lung, hu, (1.0, 1.0, 1.0), **options)
    for z in (0, 1, 10, 18):
        assert np.array_equal(refine_slice(probs, lung, hu, (1.0, 1.0, 1.0), z, **options), full[z])
    assert (full[10][5:8, 5:8] == 2).all()
    with pytest.raises(IndexError):
        refine_slice(probs, lung, hu, (1.0, 1.0, 1.0), 20)
