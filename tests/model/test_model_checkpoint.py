import os

import pytest
import torch

from diffseglung_core.errors import CheckpointError
from diffseglung_core.model.checkpoint import (
    FORMAT_VERSION,
    default_checkpoint_path,
    load_checkpoint,
    load_model,
)
from diffseglung_core.model.config import DistillConfig, ModelConfig, UNetConfig
from diffseglung_core.model.distill import StudentProjection
from diffseglung_core.model.unet import UNet3D
from diffseglung_core.training.checkpoint import make_payload, save_checkpoint


def _tiny(stage2=False):
    cfg = ModelConfig(unet=UNetConfig.tiny(), distill=DistillConfig() if stage2 else None,
                      patch_size=(16, 16, 16), stage=2 if stage2 else 1)
    torch.manual_seed(0)
    model = UNet3D(cfg.unet)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    student = StudentProjection(cfg.unet.bottleneck_channels, cfg.distill) if stage2 else None
    return cfg, model, student


def test_round_trip_rebuilds_model_and_projection(tmp_path):
    cfg, model, student = _tiny(stage2=True)
    path = save_checkpoint(tmp_path / "m.pt", make_payload(cfg, model.state_dict(), student.state_dict()))
    loaded, proj, cfg2 = load_model(path)
    assert cfg2 == cfg
    x, t = torch.randn(2, 2, 16, 16, 16), torch.tensor([3, 700])
    torch.testing.assert_close(loaded(x, t), model(x, t))
    f = model.encode(x, t)
    torch.testing.assert_close(proj(f), student(f))
    assert not loaded.training


def test_half_precision_checkpoint_is_close(tmp_path):
    cfg, model, _ = _tiny()
    path = save_checkpoint(tmp_path / "h.pt", make_payload(cfg, model.state_dict(), half=True))
    loaded, proj, _ = load_model(path)
    assert proj is None
    x, t = torch.randn(1, 2, 16, 16, 16), torch.tensor([50])
    torch.testing.assert_close(loaded(x, t), model(x, t), atol=5e-3, rtol=5e-2)
    assert os.path.getsize(path) < os.path.getsize(
        save_checkpoint(tmp_path / "f.pt", make_payload(cfg, model.state_dict())))


def test_atomic_save_keeps_old_file_on_failure(tmp_path):
    cfg, model, _ = _tiny()
    path = save_checkpoint(tmp_path / "a.pt", make_payload(cfg, model.state_dict()))
    before = path.read_bytes()
    with pytest.raises(Exception):
        save_checkpoint(path, {"bad": lambda: 0})  # cannot be pickled
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt"]


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_checkpoint_with_code_is_refused(tmp_path):
    cfg, model, _ = _tiny()
    payload = make_payload(cfg, model.state_dict())
    payload["extra"] = Evil()
    path = tmp_path / "evil.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)


@pytest.mark.parametrize("edit, message", [
    (lambda p: p.pop("weights"), "missing weights"),
    (lambda p: p.update(format_version=FORMAT_VERSION + 1), "newer"),
    (lambda p: p.update(format="something-else"), "not a DiffSegLung"),
])
def test_clear_errors(tmp_path, edit, message):
    cfg, model, _ = _tiny()
    payload = make_payload(cfg, model.state_dict())
    edit(payload)
    path = tmp_path / "x.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=message) as err:
        load_model(path)
    assert str(path) in str(err.value)


def test_wrong_model_and_missing_or_corrupt_files(tmp_path):
    cfg, model, _ = _tiny()
    payload = make_payload(cfg, model.state_dict())
    payload["model_config"]["unet"]["base_channels"] = 16
    torch.save(payload, tmp_path / "wrong.pt")
    with pytest.raises(CheckpointError, match="do not match"):
        load_model(tmp_path / "wrong.pt")
    with pytest.raises(CheckpointError, match="no such"):
        load_model(tmp_path / "absent.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip file at all")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_model(tmp_path / "junk.pt")


def test_default_checkpoint_ships_and_loads():
    path = default_checkpoint_path()
    if not path.is_file():
        pytest.skip("default checkpoint not built yet")
    assert path.stat().st_size < 25 * 1024 * 1024
    model, proj, cfg = load_model(None)
    f = cfg.unet.downsampling
    x = torch.zeros((1, 2) + tuple(cfg.patch_size))
    assert model(x, torch.tensor([10])).shape == (1, 1) + tuple(cfg.patch_size)
    assert proj is not None and cfg.stage == 2
    assert all(s % f == 0 for s in cfg.patch_size)
