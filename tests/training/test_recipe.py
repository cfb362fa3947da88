"""Tests of the training corpus (PatchSource, focus sampling, slabs) and of the exported model."""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pytest
import torch

from diffseglung_core.errors import NoLungFoundError
from diffseglung_core.training.patches import PatchSource, extract_patch, precompute
from diffseglung_core.training.recipe import (
    corpus_sources,
    corpus_summary,
    patch_counts,
    precompute_corpus,
    thin_slab,
)
from diffseglung_core.volume import CTVolume

SHAPE = (16, 40, 40)


def _box_source(lesion: bool, lung: bool = True):
    """A volume with a box of lung (-850 HU) and, optionally, a small lesion (focus) in one corner."""
    hu = np.full(SHAPE, 40.0, np.float32)
    mask = np.zeros(SHAPE, bool)
    if lung:
        mask[2:14, 4:36, 4:36] = True
        hu[mask] = -850.0
    focus = None
    if lesion:
        focus = np.zeros(SHAPE, bool)
        focus[6:10, 28:34, 28:34] = True
        hu[focus] = -600.0
    return CTVolume.from_array(hu, (2.0, 2.0, 2.0)), mask, focus


def test_focus_fraction_draws_centres_in_the_lesions(tmp_path):
    src = PatchSource("box/lesion", partial(_box_source, True))
    folder = precompute([src], tmp_path / "p", patches_per_scan=40, patch_size=(4, 8, 8),
                        focus_fraction=0.5, workers=1, seed=0)
    info = json.loads((folder / "patches.json").read_text())["scans"][0]
    centres = np.array(info["centres"])
    _, _, focus = _box_source(True)
    in_focus = focus[tuple(centres.T)]
    assert info["id"] == "box/lesion" and info["focus_centres"] == 20
    assert in_focus[:20].all()                   # the focus share is drawn in the lesion
    assert in_focus[20:].mean() < 0.2            # the rest anywhere in the lung (lesion ~3 % of it)
    assert info["patches_with_focus"] == sum(
        extract_patch(focus.astype(np.uint8), c, (4, 8, 8)).any() for c in centres)


def test_sources_without_lung_are_skipped_or_raise(tmp_path):
    good = PatchSource("box/ok", partial(_box_source, False))
    empty = PatchSource("box/empty", partial(_box_source, False, False))
    with pytest.raises(NoLungFoundError, match="box/empty"):
        precompute([good, empty], tmp_path / "a", patches_per_scan=[5, 7], patch_size=(4, 8, 8),
                   workers=1)
    assert not (tmp_path / "a" / "ct.npy").exists()
    folder = precompute([empty, good], tmp_path / "b", patches_per_scan=[7, 5], patch_size=(4, 8, 8),
                        workers=1, skip_empty=True)
    settings = json.loads((folder / "patches.json").read_text())
    assert settings["n_patches"] == 5 and [s["id"] for s in settings["skipped"]] == ["box/empty"]
    assert np.load(folder / "ct.npy").shape == (5, 4, 8, 8)
    assert set(np.load(folder / "patient_ids.npy")) == {"box/ok"}
    assert (np.load(folder / "mask.npy") > 0).mean() > 0.25
    with pytest.raises(ValueError, match="2 patch counts for 1 scans"):
        precompute([good], tmp_path / "c", patches_per_scan=[1, 2])


def test_thin_slab_repeats_slices_to_the_patch_depth():
    vol = CTVolume.from_array(np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4), (5.0, 1.0, 1.0))
    lung = np.ones((2, 4, 4), bool)
    slab, slab_lung, focus = thin_slab(vol, lung, None, 5)
    assert slab.shape == (6, 4, 4) and slab_lung.shape == (6, 4, 4) and focus is None
    assert np.array_equal(slab.hu[:3], np.repeat(vol.hu[:1], 3, 0)) and slab.spacing == vol.spacing
    assert thin_slab(vol, lung, None, 2)[0] is vol


def test_corpus_of_phantoms_without_data(tmp_path):
    sources = corpus_sources(tmp_path / "nothing", patch_depth=8, phantom_cases=("chest", "abdomen"),
                             phantom_shape=(24, 64, 64))
    assert [s.name for s in sources] == ["phantom/chest-s100", "phantom/abdomen-s101"]
    assert patch_counts(sources, 8) == [8, 8]
    assert patch_counts(sources, 8, {"phantom": 0.25}) == [2, 2]
    with pytest.raises(ValueError, match="unknown source kinds"):
        corpus_sources(tmp_path, patch_depth=8, kinds=("scan", "bogus"))
    folder = precompute_corpus(tmp_path / "p", tmp_path / "nothing", patch_size=(8, 16, 16),
                               patches_per_source=6, phantom_cases=("chest", "abdomen"),
                               phantom_shape=(24, 64, 64), workers=1)
    summary = corpus_summary(folder)
    assert summary["kinds"]["phantom"]["patches"] == 6          # the abdomen has no lung
    assert summary["skipped"] == ["phantom/abdomen-s101"]
    assert 3 <= summary["kinds"]["phantom"]["patches_with_pathology"] <= 6


def test_export_model_is_half_precision_with_provenance(tmp_path):
    from diffseglung_core.model.checkpoint import load_checkpoint, load_model
    from diffseglung_core.model.config import ModelConfig, UNetConfig
    from diffseglung_core.model.unet import UNet3D
    from diffseglung_core.training.checkpoint import export_model, make_payload, save_checkpoint

    cfg = ModelConfig(unet=UNetConfig.tiny(), patch_size=(8, 16, 16))
    unet = UNet3D(cfg.unet)
    src = save_checkpoint(tmp_path / "ckpt.pt",
                          make_payload(cfg, unet.state_dict(), training={"step": 3}))
    out = export_model(src, tmp_path / "model.pt", {"recipe": "test"})
    ck = load_checkpoint(out)
    assert "training" not in ck and ck["provenance"] == {"recipe": "test"}
    assert all(v.dtype == torch.float16 for v in ck["weights"]["unet"].values() if v.is_floating_point())
    model, _, cfg2 = load_model(out, torch.device("cpu"))
    assert cfg2.unet == cfg.unet
    x = torch.zeros((1, 2, 8, 16, 16))
    t = torch.zeros(1, dtype=torch.long)
    with torch.no_grad():
        assert torch.allclose(model(x, t), unet.eval()(x, t), atol=2e-2)
