import numpy as np
import pytest
import torch

from diffseglung_core.model.config import ModelConfig, UNetConfig
from diffseglung_core.model.unet import UNet3D
from diffseglung_core.segment import segment_volume
from diffseglung_core.segment.diffusion import diffusion_features
from diffseglung_core.segment.tiling import window_starts
from diffseglung_core.training.checkpoint import make_payload, save_checkpoint

from seg_synth import make_chest


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    cfg = ModelConfig(unet=UNetConfig.tiny(), patch_size=(16, 16, 16))
    torch.manual_seed(0)
    model = UNet3D(cfg.unet)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt",
                           make_payload(cfg, model.state_dict()))


def test_window_starts_cover_the_axis():
    assert window_starts(10, 16, 8) == [0]
    assert window_starts(40, 16, 8) == [0, 8, 16, 24]
    assert window_starts(41, 16, 8)[-1] == 25


def test_diffusion_features_are_deterministic_and_per_timestep(tiny_checkpoint):
    vol, lung, _ = make_chest(shape=(16, 48, 48))
    a = diffusion_features(vol.hu, lung, checkpoint=tiny_checkpoint, timesteps=(10, 200),
                           device="cpu")
    b = diffusion_features(vol.hu, lung, checkpoint=tiny_checkpoint, timesteps=(10, 200),
                           device="cpu")
    n = int(lung.sum())
    assert len(a) == 2 and a[0].shape[0] == n and a[0].shape[1] > 1
    np.testing.assert_array_equal(a[0], b[0])
    assert np.isfinite(a[1]).all()
    assert not np.allclose(a[0], a[1])  # the timestep matters


def test_engine_with_diffusion_features(tiny_checkpoint):
    vol, lung, gt = make_chest(shape=(16, 48, 48))
    res = segment_volume(vol, lung_mask=lung, features="diffusion", checkpoint=tiny_checkpoint,
                         timesteps=(10, 200), device="cpu", n_init=1, cluster_previews=True)
    assert {"diffusion_t10", "diffusion_t200"} <= set(res.clusters)
    assert ((res.labels > 0) == lung).all()
    assert res.params["timesteps"] == [10, 200]
