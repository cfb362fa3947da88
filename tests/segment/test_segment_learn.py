"""Learning from corrections on a reduced grid: pooling, interpolation, hold-out, guard, CLI."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from diffseglung_core.labels import Tissue
from diffseglung_core.segment.learn import (
    class_dice,
    holdout_blocks,
    learn_from_corrections,
    one_hot,
)
from diffseglung_core.segment.reduced import WEIGHTFREE_CHANNELS, reduced_grid, weightfree_features

phantom_mod = pytest.importorskip("diffseglung_core.phantom")


@pytest.fixture(scope="module")
def phantom():
    return phantom_mod.make_phantom((32, 128, 128), seed=0)


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_grid_pools_and_interpolates():
    lung = np.zeros((10, 40, 40), bool)
    lung[2:8, 5:35, 6:30] = True
    grid = reduced_grid(lung, (2.0, 0.7, 0.7), target_mm=2.0, margin_mm=0)
    assert grid.factors == (1, 3, 3) and grid.grid_spacing == pytest.approx((2.0, 2.1, 2.1))
    assert grid.grid_shape == (6, 10, 8)
    # a linear ramp along x: block means are the ramp at block centres, interpolation returns it
    x = np.broadcast_to(np.arange(40, dtype=np.float32), lung.shape)
    pooled = grid.pool(x)
    flat = np.flatnonzero(lung)
    back = grid.interpolate(pooled[None], flat)[:, 0]
    inner = (x.reshape(-1)[flat] >= 7) & (x.reshape(-1)[flat] <= 28)  # away from the box's edges
    np.testing.assert_allclose(back[inner], x.reshape(-1)[flat][inner], atol=1e-4)
    # per-voxel means and majority labels per block
    values = np.arange(flat.size, dtype=np.float32)
    means = grid.pool_rows(flat, values)[0]
    blocks = grid.block_of(flat)
    b = blocks[0]
    assert means.reshape(-1)[b] == pytest.approx(values[blocks == b].mean())
    labels = np.where(np.arange(flat.size) % 3 == 0, 2, 1)
    counts = np.bincount(blocks, minlength=int(np.prod(grid.grid_shape)))
    voted = grid.pool_labels(flat, labels, lung_counts=counts)
    assert set(np.unique(voted)) <= {1, 2, 255} and (voted.reshape(-1)[b] == 1)
    half = grid.pool_labels(flat[::4], labels[::4], lung_counts=counts)  # a quarter: too few
    assert (half == 255).all()


def test_weightfree_features_shape_and_memory(phantom):
    lung = phantom.lung > 0
    post = one_hot(phantom.labels[lung])
    feats, grid = weightfree_features(phantom.volume.hu, lung, phantom.volume.spacing, posteriors=post)
    assert feats.dtype == np.float16
    assert feats.shape == (len(WEIGHTFREE_CHANNELS) + 5,) + grid.grid_shape
    assert np.isfinite(feats.astype(np.float32)).all()
    # the posterior channels are the per-block share of each truth label
    c = len(WEIGHTFREE_CHANNELS) + Tissue.HEALTHY - 1
    flat = np.flatnonzero(lung)
    share = grid.pool_rows(flat, (phantom.labels[lung] == Tissue.HEALTHY).astype(np.float32))[0]
    np.testing.assert_allclose(feats[c].astype(np.float32), share, atol=2e-3)


def test_holdout_takes_whole_tiles():
    target = np.full((3, 40, 40), 255, np.uint8)
    target[1, 4:36, 4:36] = 1
    held = holdout_blocks(target, 0.25, tile_blocks=8, seed=0)
    assert held.any() and not held[target == 255].any()
    assert 0.1 < held.sum() / (target != 255).sum() < 0.45
    assert not holdout_blocks(target, 0.0).any()


def _dice_rest(pred, truth, rest):
    d = class_dice(pred[rest], truth[rest])
    return d, float(np.mean(list(d.values())))


def _simulate(phantom, slices):
    from diffseglung_core.segment import segment_volume
    from diffseglung_core.segment.changes import label_posteriors

    result = segment_volume(phantom.volume, lung_mask=phantom.lung, features="density", k=6,
                            refine=False)
    lung = phantom.lung > 0
    shown = result.labels.copy()
    shown[slices] = phantom.labels[slices]
    confirmed = np.zeros(lung.shape, bool)
    confirmed[slices] = True
    confirmed &= lung
    return result, shown, confirmed, label_posteriors(result)


def test_three_corrected_slices_improve_the_others(phantom):
    lung = phantom.lung > 0
    zs = np.flatnonzero(lung.any(axis=(1, 2)))
    slices = [int(z) for z in np.linspace(zs[0] + 3, zs[-1] - 3, 3).round()]
    result, shown, confirmed, post = _simulate(phantom, slices)
    t = time.perf_counter()
    out = learn_from_corrections(phantom.volume.hu, shown, confirmed, lung,
                                 spacing=phantom.volume.spacing, auto=result.labels, posteriors=post,
                                 steps=150, device="cpu")
    seconds = time.perf_counter() - t
    rest = lung.copy()
    rest[slices] = False
    before, mean_before = _dice_rest(result.labels, phantom.labels, rest)
    after, mean_after = _dice_rest(out.labels, phantom.labels, rest)
    assert out.accepted, out.message
    # (measured: 0.812 -> 0.836; 0.808 -> 0.840 before solid regions laced with walls stopped
    # being consolidation, which left the head less consolidation to correct)
    assert mean_after > mean_before + 0.02, (before, after)
    assert all(after.get(c, 1.0) >= before[c] - 0.02 for c in before), (before, after)
    assert out.validation["voxels"] > 0 and "applied" in out.message
    assert out.probabilities.shape == (int(lung.sum()), 6)
    assert not out.labels[~lung].any()
    assert seconds < 60


def test_no_correction_is_not_applied(phantom):
    """Confirming slices without changing them: the head cannot beat the labels; nothing changes."""
    lung = phantom.lung > 0
    zs = np.flatnonzero(lung.any(axis=(1, 2)))
    slices = [int(zs[len(zs) // 3]), int(zs[2 * len(zs) // 3])]
    result, _, confirmed, post = _simulate(phantom, slices)
    out = learn_from_corrections(phantom.volume.hu, result.labels, confirmed, lung,
                                 spacing=phantom.volume.spacing, auto=result.labels, posteriors=post,
                                 steps=60, device="cpu")
    assert not out.accepted and out.message.startswith("not applied")
    assert np.array_equal(out.labels, result.labels)
    with pytest.raises(ValueError):
        learn_from_corrections(phantom.volume.hu, result.labels, np.zeros_like(lung), lung,
                               spacing=phantom.volume.spacing)


def test_train_head_command_without_checkpoint(phantom, tmp_path, capsys):
    from diffseglung_core.cli import main
    from diffseglung_core.io import read_mask, read_scan, write_labels, write_scan
    from diffseglung_core.segment.head import load_head

    scan = write_scan(tmp_path / "scan.nii.gz", phantom.volume)
    volume = read_scan(scan)
    labels = np.full(phantom.labels.shape, 255, np.uint8)
    labels[[10, 20]] = phantom.labels[[10, 20]]
    prior = phantom.labels.copy()
    prior[prior == Tissue.FIBROSIS] = Tissue.GGO  # an unsupervised result that misses fibrosis
    write_labels(tmp_path / "labels.nii.gz", labels, volume)
    write_labels(tmp_path / "prior.nii.gz", prior, volume)
    write_labels(tmp_path / "lung.nii.gz", phantom.lung, volume)
    argv = ["train-head", str(scan), "--labels", str(tmp_path / "labels.nii.gz"),
            "--lung-mask", str(tmp_path / "lung.nii.gz"), "--prior", str(tmp_path / "prior.nii.gz"),
            "-o", str(tmp_path / "head.pt"), "--predict", str(tmp_path / "pred.nii.gz"),
            "--steps", "60", "--device", "cpu"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "held-out" in out and "wrote" in out
    head = load_head(tmp_path / "head.pt")
    assert head.config.features["features"] == "weightfree"
    pred = read_mask(tmp_path / "pred.nii.gz", volume)
    assert not pred[phantom.lung == 0].any()
    assert set(np.unique(pred[phantom.lung > 0])) <= {1, 2, 3, 4, 5}
