import numpy as np
import pytest
import torch

from diffseglung_core.model.config import DiffusionConfig, DistillConfig, UNetConfig
from diffseglung_core.model.diffusion import Diffusion
from diffseglung_core.model.distill import StudentProjection
from diffseglung_core.model.features import extract_features, patch_noise
from diffseglung_core.model.unet import UNet3D
from diffseglung_core.volume import normalize_hu


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = UNet3D(UNetConfig.tiny()).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    proj = StudentProjection(16, DistillConfig()).eval()
    rng = np.random.default_rng(0)
    hu = np.where(rng.random((4, 16, 16, 16)) < 0.5, -900.0, -100.0)
    patches = np.stack([normalize_hu(hu), np.ones_like(hu)], axis=1).astype(np.float32)
    return model, proj, Diffusion(DiffusionConfig()), patches


def test_features_are_deterministic_given_seed(setup):
    model, proj, diff, patches = setup
    a = extract_features(model, patches, 100, diffusion=diff, projection=proj, seed=7)
    b = extract_features(model, patches, 100, diffusion=diff, projection=proj, seed=7)
    c = extract_features(model, patches, 100, diffusion=diff, projection=proj, seed=8)
    torch.testing.assert_close(a.bottleneck, b.bottleneck)
    assert (a.bottleneck - c.bottleneck).abs().max() > 1e-4
    assert a.bottleneck.shape == (4, 16, 8, 8, 8)
    assert a.embedding.shape == (4, 128) and a.embedding_map.shape == (4, 128, 8, 8, 8)
    torch.testing.assert_close(a.embedding.norm(dim=1), torch.ones(4))
    assert a.decoder is None


def test_per_patch_seeds_do_not_depend_on_the_batch(setup):
    model, _, diff, patches = setup
    full = extract_features(model, patches, 250, diffusion=diff, seed=[10, 11, 12, 13])
    part = extract_features(model, patches[2:], 250, diffusion=diff, seed=[12, 13])
    torch.testing.assert_close(full.bottleneck[2:], part.bottleneck, atol=1e-5, rtol=1e-5)


def test_decoder_features_and_bad_arguments(setup):
    model, _, diff, patches = setup
    out = extract_features(model, torch.from_numpy(patches), 0, diffusion=diff, decoder=True)
    assert [d.shape[1] for d in out.decoder] == [16, 8]
    with pytest.raises(ValueError, match="timestep"):
        extract_features(model, patches, 1000, diffusion=diff)
    with pytest.raises(ValueError, match="patches"):
        extract_features(model, patches[:, :1], 10, diffusion=diff)


def test_noise_depends_on_timestep_strength(setup):
    model, _, diff, patches = setup
    # At t=0 the input is nearly clean: features of two seeds almost agree; at t=999 they do not.
    d0 = (extract_features(model, patches, 0, diffusion=diff, seed=1).bottleneck
          - extract_features(model, patches, 0, diffusion=diff, seed=2).bottleneck).abs().mean()
    d1 = (extract_features(model, patches, 999, diffusion=diff, seed=1).bottleneck
          - extract_features(model, patches, 999, diffusion=diff, seed=2).bottleneck).abs().mean()
    assert d0 < 0.2 * d1
    assert patch_noise((2, 1, 4, 4, 4), 3).shape == (2, 1, 4, 4, 4)
