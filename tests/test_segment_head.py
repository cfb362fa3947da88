"""Correction head on frozen diffusion features: tiling, training on confirmed voxels, files, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffseglung_core.errors import CheckpointError, OutputExistsError
from diffseglung_core.model import DiffusionConfig, ModelConfig, UNet3D, UNetConfig
from diffseglung_core.model.checkpoint import LoadedModel
from diffseglung_core.model.diffusion import Diffusion
from diffseglung_core.model.features import extract_features
from diffseglung_core.segment.head import (
    IGNORE,
    extract_head_features,
    load_head,
    predict_head,
    save_head,
    train_head,
)
from diffseglung_core.training.checkpoint import make_payload, save_checkpoint
from diffseglung_core.volume import normalize_hu

phantom_mod = pytest.importorskip("diffseglung_core.phantom")

PATCH = (16, 16, 16)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small convolutions run faster on one thread than on two busy cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_model() -> LoadedModel:
    """A randomly initialised tiny U-Net (no trained checkpoint is needed for these tests)."""
    torch.manual_seed(0)
    cfg = ModelConfig(unet=UNetConfig.tiny(), diffusion=DiffusionConfig(timesteps=100), patch_size=PATCH)
    return LoadedModel(UNet3D(cfg.unet).eval(), None, cfg)


@pytest.fixture(scope="module")
def phantom():
    return phantom_mod.make_phantom((16, 48, 48), seed=3)


@pytest.fixture(scope="module")
def features(phantom, tiny_model):
    return extract_head_features(phantom.volume, tiny_model, timesteps=(5,), lung_mask=phantom.lung,
                                 overlap=2, device="cpu")


def test_features_layout_and_tiles(phantom, tiny_model, features):
    # HU channel first, then the bottleneck (16 ch) and two decoder levels (16 + 8 ch)
    assert features.dtype == np.float16
    assert features.shape == (1 + 16 + 16 + 8,) + phantom.labels.shape
    lung = phantom.lung > 0
    np.testing.assert_allclose(features[0][lung], normalize_hu(phantom.volume.hu)[lung], atol=2e-2)
    assert np.all(np.isfinite(features))
    assert np.all(np.abs(features[1:, lung].astype(np.float32)).sum(axis=0) > 0)  # tiles cover the lung

    # a volume of exactly one patch is one tile: equal to the model's own features, upsampled
    hu = phantom.volume.hu[:16, 24:40, 8:24]
    mask = np.ones(hu.shape, np.uint8)
    one = extract_head_features(hu, tiny_model, timesteps=(5,), lung_mask=mask, decoder=False,
                                include_hu=False, seed=7, device="cpu")
    x = np.stack([normalize_hu(hu), mask.astype(np.float32)])[None]
    f = extract_features(tiny_model.model, x, 5, diffusion=Diffusion(tiny_model.config.diffusion), seed=[7])
    ref = torch.nn.functional.interpolate(f.bottleneck, size=PATCH, mode="trilinear", align_corners=False)
    np.testing.assert_allclose(one, ref[0].numpy(), atol=2e-3, rtol=2e-3)
    again = extract_head_features(hu, tiny_model, timesteps=(5,), lung_mask=mask, decoder=False,
                                  include_hu=False, seed=7, device="cpu")
    np.testing.assert_array_equal(one, again)  # fixed noise seeds: reproducible

    # smaller than a patch: padded with air, cropped back
    small = extract_head_features(hu[:10, :12, :12], tiny_model, timesteps=(5,),
                                  lung_mask=mask[:10, :12, :12], decoder=False, device="cpu")
    assert small.shape == (17, 10, 12, 12) and np.all(np.isfinite(small))


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def test_head_learns_from_corrected_slices(phantom, features):
    truth = phantom.labels
    lung = phantom.lung > 0
    corrected = [4, 7, 10]  # three slices, two of them through the phantom's consolidation
    confirmed = np.zeros(truth.shape, bool)
    confirmed[corrected] = lung[corrected]
    head = train_head(features, truth, confirmed, hidden=16, steps=40, crop=(3, 32, 32), device="cpu")
    pred = predict_head(head, features, phantom.lung, device="cpu")
    assert pred.dtype == np.uint8 and not pred[~lung].any() and pred[lung].min() >= 1
    others = np.ones(truth.shape[0], bool)
    others[corrected] = False
    dice = {c: _dice(pred[others] == c, truth[others] == c) for c in range(1, 6)}
    # held-out slices: healthy lung and dense consolidation are learned from three slices
    assert dice[1] > 0.7 and dice[5] > 0.6, dice
    assert np.mean(list(dice.values())) > 0.45, dice
    # against a head that never saw a correction (random weights): much worse
    untrained = train_head(features, truth, confirmed, hidden=16, steps=0, device="cpu")
    guess = predict_head(untrained, features, phantom.lung, device="cpu")
    assert _dice(guess[others] == 1, truth[others] == 1) < dice[1] - 0.2


def test_only_confirmed_voxels_count(phantom, features):
    truth = phantom.labels.astype(np.int16)
    confirmed = np.zeros(truth.shape, bool)
    confirmed[[5, 12]] = phantom.lung[[5, 12]] > 0
    kw = dict(hidden=8, steps=5, crop=(3, 24, 24), device="cpu", seed=1)
    a = train_head(features, truth, confirmed, **kw)
    garbage = np.where(confirmed, truth, (truth + 3) % 6)  # wrong labels where not confirmed
    b = train_head(features, garbage, confirmed, **kw)
    marked = np.where(confirmed, truth, IGNORE)  # the same, said with the ignore label
    c = train_head(features, marked, None, **kw)
    minus = np.where(confirmed, truth, -1)
    d = train_head(features, minus, None, **kw)
    for other in (b, c, d):
        for (k, v), w in zip(a.state_dict().items(), other.state_dict().values()):
            torch.testing.assert_close(v, w, msg=k)
    with pytest.raises(ValueError, match="no confirmed voxel"):
        train_head(features, truth, np.zeros(truth.shape, bool), steps=1, device="cpu")


def test_save_and_load_head(phantom, features, tmp_path):
    head = train_head(features, phantom.labels, phantom.lung > 0, hidden=8, steps=3, crop=(3, 24, 24),
                      feature_info={"timesteps": [5, 30]}, device="cpu")
    path = save_head(tmp_path / "head.pt", head)
    with pytest.raises(OutputExistsError):
        save_head(path, head)
    back = load_head(path)
    assert back.config == head.config and back.config.features == {"timesteps": [5, 30]}
    np.testing.assert_array_equal(predict_head(back, features, phantom.lung, device="cpu"),
                                  predict_head(head, features, phantom.lung, device="cpu"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="not a readable head"):
        load_head(bad)
    torch.save({"format": "something else"}, bad)
    with pytest.raises(CheckpointError, match="not a correction head"):
        load_head(bad)


def test_train_head_command(phantom, tiny_model, tmp_path, capsys):
    from diffseglung_core.cli import main
    from diffseglung_core.io import read_mask, read_scan, write_labels, write_scan

    scan = write_scan(tmp_path / "scan.nii.gz", phantom.volume)
    volume = read_scan(scan)
    labels = np.full(phantom.labels.shape, IGNORE, np.uint8)
    labels[[5, 10]] = phantom.labels[[5, 10]]
    write_labels(tmp_path / "labels.nii.gz", labels, volume)
    write_labels(tmp_path / "lung.nii.gz", phantom.lung, volume)
    ckpt = save_checkpoint(tmp_path / "tiny.pt",
                           make_payload(tiny_model.config, tiny_model.model.state_dict()))
    argv = ["train-head", str(scan), "--features-from", str(ckpt),
            "--labels", str(tmp_path / "labels.nii.gz"),
            "--lung-mask", str(tmp_path / "lung.nii.gz"), "--prior", str(tmp_path / "lung.nii.gz"),
            "-o", str(tmp_path / "head.pt"),
            "--predict", str(tmp_path / "pred.nii.gz"), "--timesteps", "5", "--steps", "10",
            "--device", "cpu"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "healthy" in out
    head = load_head(tmp_path / "head.pt")
    assert head.config.features["checkpoint"] == str(ckpt) and head.config.features["timesteps"] == [5]
    pred = read_mask(tmp_path / "pred.nii.gz", volume)
    assert pred.shape == phantom.labels.shape
    assert set(np.unique(pred[phantom.lung > 0])) <= {1, 2, 3, 4, 5}
    assert not pred[phantom.lung == 0].any()
    assert main(argv) == 2  # outputs exist
    assert "file exists" in capsys.readouterr().err


def test_prior_keeps_classes_missing_from_corrections(phantom, features):
    """One corrected slice lacks some classes; the unsupervised prior supplies them at low weight."""
    truth = phantom.labels
    lung = phantom.lung > 0
    confirmed = np.zeros(truth.shape, bool)
    confirmed[8] = lung[8]
    prior = truth.copy()  # stands in for a good unsupervised result
    prior[8] = 1  # and disagrees on the corrected slice, where the correction must win
    kw = dict(hidden=16, steps=40, crop=(3, 32, 32), device="cpu")
    alone = predict_head(train_head(features, truth, confirmed, **kw), features, phantom.lung, device="cpu")
    both = predict_head(train_head(features, truth, confirmed, prior=prior, **kw), features, phantom.lung,
                        device="cpu")
    others = np.ones(truth.shape[0], bool)
    others[8] = False

    def mean_dice(pred, classes):
        return np.mean([_dice(pred[others] == c, truth[others] == c) for c in classes])

    assert mean_dice(both, range(1, 6)) > mean_dice(alone, range(1, 6)) + 0.02
    # on the corrected slice the confirmed labels, not the prior's, are learned
    assert _dice(both[8] == 1, truth[8] == 1) > _dice(both[8] == 1, prior[8] == 1)
