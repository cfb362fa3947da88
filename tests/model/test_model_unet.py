import pytest
import torch

from diffseglung_core.model.config import UNetConfig
from diffseglung_core.model.unet import UNet3D


def test_paper_config_has_256_channel_bottleneck():
    cfg = UNetConfig.paper()
    shape = (cfg.base_channels, cfg.channel_mults, cfg.in_channels, cfg.out_channels)
    assert shape == (64, (1, 2, 3, 4), 2, 1)
    assert cfg.bottleneck_channels == 256
    torch.manual_seed(0)
    model = UNet3D(cfg)
    feats = model.encode(torch.randn(1, 2, 8, 8, 8), torch.tensor([10]))
    assert feats.shape == (1, 256, 1, 1, 1)


def test_tiny_forward_shapes_and_features():
    torch.manual_seed(0)
    model = UNet3D(UNetConfig.tiny())
    x = torch.randn(3, 2, 16, 16, 16)
    t = torch.tensor([0, 500, 999])
    eps, feats = model(x, t, return_features=True)
    assert eps.shape == (3, 1, 16, 16, 16)
    assert feats["bottleneck"].shape == (3, 16, 8, 8, 8)
    assert [d.shape[1:] for d in feats["decoder"]] == [(16, 8, 8, 8), (8, 16, 16, 16)]
    # encode() gives the same bottleneck without running the decoder
    torch.testing.assert_close(model.encode(x, t), feats["bottleneck"])


def test_output_depends_on_timestep_and_mask():
    torch.manual_seed(0)
    model = UNet3D(UNetConfig.tiny())
    for p in model.parameters():  # zero-initialised output layers would hide dependence
        torch.nn.init.normal_(p, std=0.05)
    x = torch.randn(1, 2, 16, 16, 16)
    a = model(x, torch.tensor([10]))
    b = model(x, torch.tensor([900]))
    x2 = x.clone()
    x2[:, 1] = 1 - x2[:, 1]
    c = model(x2, torch.tensor([10]))
    assert (a - b).abs().max() > 1e-4
    assert (a - c).abs().max() > 1e-4


def test_bad_input_shapes_are_rejected():
    model = UNet3D(UNetConfig.tiny())
    with pytest.raises(ValueError, match="divisible"):
        model(torch.randn(1, 2, 15, 16, 16), torch.tensor([1]))
    with pytest.raises(ValueError, match="expected"):
        model(torch.randn(1, 1, 16, 16, 16), torch.tensor([1]))


def test_config_round_trip_and_unknown_keys():
    cfg = UNetConfig.small()
    assert UNetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        UNetConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ValueError):
        UNetConfig(attention_levels=(7,))
