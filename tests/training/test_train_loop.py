import csv

import numpy as np
import pytest
import torch

from diffseglung_core.errors import CheckpointError
from diffseglung_core.model.checkpoint import load_checkpoint, load_model
from diffseglung_core.model.config import DistillConfig, ModelConfig, UNetConfig
from diffseglung_core.radiomics import batched_features
from diffseglung_core.training.config import TrainConfig
from diffseglung_core.training.loop import Trainer
from diffseglung_core.volume import denormalize_hu

TINY = ModelConfig(unet=UNetConfig.tiny(), patch_size=(16, 16, 16))


def _tc(**kw):
    base = dict(steps=40, batch_size=8, lr=2e-3, checkpoint_every=20, log_every=5, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def test_stage1_loss_falls_and_outputs_are_written(phantom_patches, tmp_path):
    out = Trainer(TINY, _tc(sample_every=40, sample_steps=4), phantom_patches, tmp_path).run()
    mse = [r["mse"] for r in out["history"]]
    assert len(mse) == 40
    assert np.mean(mse[-8:]) < 0.6 * np.mean(mse[:4])
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [int(r["step"]) for r in rows] == list(range(5, 41, 5))
    assert float(rows[0]["patches_per_s"]) > 0
    assert (tmp_path / "samples" / "step_0000040.png").is_file()
    assert any((tmp_path / "tb").iterdir())
    ck = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ck["training"]["step"] == 40 and ck["training"]["scans"] == phantom_patches.scans
    assert ck["normalization"] == {"hu_offset": 1000.0, "hu_scale": 700.0, "hu_preserving": True}
    model, proj, cfg = load_model(tmp_path / "model.pt")
    assert proj is None and cfg.step == 40 and cfg.unet == TINY.unet


def test_resume_continues_exactly(phantom_patches, tmp_path):
    full = Trainer(TINY, _tc(steps=10, checkpoint_every=5), phantom_patches, tmp_path / "a")
    full.run()
    first = Trainer(TINY, _tc(steps=5, checkpoint_every=5), phantom_patches, tmp_path / "b")
    first.run()
    resumed = Trainer(TINY, _tc(steps=10, checkpoint_every=5), phantom_patches, tmp_path / "b",
                      resume=tmp_path / "b" / "checkpoint.pt")
    assert resumed.step == 5
    # same data order for the remaining steps
    fresh = Trainer(TINY, _tc(steps=10), phantom_patches, tmp_path / "c")
    steps = range(5, 10)
    assert [resumed._batch_indices(s) for s in steps] == [fresh._batch_indices(s) for s in steps]
    resumed.run()
    rows = list(csv.DictReader(open(tmp_path / "b" / "log.csv")))
    assert [int(r["step"]) for r in rows] == list(range(5, 11, 5))  # no duplicate rows
    for live in ("objective", "ema"):
        a, b = getattr(full, live).state_dict(), getattr(resumed, live).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), live
    # a run without the resume is different (the check above can fail)
    other = Trainer(TINY, _tc(steps=10, seed=1), phantom_patches, tmp_path / "d")
    other.run()
    assert not torch.equal(other.objective.unet.stem.weight, full.objective.unet.stem.weight)


def test_resume_rejects_other_stage(phantom_patches, tmp_path):
    Trainer(TINY, _tc(steps=2), phantom_patches, tmp_path).run()
    tv = torch.randn(len(phantom_patches), 34)
    with pytest.raises(CheckpointError, match="stage-1"):
        Trainer(TINY, _tc(steps=4, stage=2), phantom_patches, tmp_path / "s2", teacher_vectors=tv,
                resume=tmp_path / "checkpoint.pt")


def test_stage2_infonce_falls(phantom_patches, tmp_path):
    Trainer(TINY, _tc(steps=5), phantom_patches, tmp_path / "s1").run()
    ct, mask = phantom_patches.batch(range(len(phantom_patches)))
    teacher = batched_features(denormalize_hu(ct[:, 0]), mask[:, 0]).float()
    cfg = ModelConfig(unet=UNetConfig.tiny(), patch_size=(16, 16, 16),
                      distill=DistillConfig(warmup_start=0, warmup_end=5, lambda_max=1.0,
                                            temperature=0.1, student_hidden=64))
    tr = Trainer(cfg, _tc(steps=50, stage=2, log_every=10), phantom_patches, tmp_path / "s2",
                 teacher_vectors=teacher, init_from=tmp_path / "s1" / "checkpoint.pt")
    # stage 2 starts from the stage-1 EMA weights
    s1 = load_model(tmp_path / "s1" / "model.pt").model
    assert torch.equal(tr.ema.unet.stem.weight, s1.stem.weight)
    hist = tr.run()["history"]
    nce = [r["infonce"] for r in hist]
    assert [r["lambda"] for r in hist[:6]] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert np.mean(nce[-10:]) < 0.7 * np.mean(nce[:5])
    assert all(r["emb_std"] > 0.1 for r in hist[-10:])  # not collapsed
    model, proj, cfg2 = load_model(tmp_path / "s2" / "model.pt")
    assert proj is not None and cfg2.stage == 2 and cfg2.teacher_stats is not None
    assert len(cfg2.teacher_stats["median"]) == 34


def test_hu_preserving_off_is_recorded(phantom_patches, tmp_path):
    from dataclasses import replace

    from diffseglung_core.model.config import DiffusionConfig
    cfg = replace(TINY, diffusion=DiffusionConfig(hu_preserving=False, schedule="cosine"))
    Trainer(cfg, _tc(steps=2), phantom_patches, tmp_path).run()
    ck = load_checkpoint(tmp_path / "model.pt")
    assert ck["normalization"]["hu_preserving"] is False
    assert load_model(tmp_path / "model.pt").config.diffusion.schedule == "cosine"


def test_teacher_vectors_are_the_project_radiomics(phantom_patches, tmp_path):
    from diffseglung_core.radiomics import batched_features
    from diffseglung_core.training.data import cached_teacher_vectors

    ct, mask = phantom_patches.batch(range(4))
    direct = batched_features(denormalize_hu(ct[:, 0]), mask[:, 0]).numpy()
    cache = tmp_path / "tv.npy"
    v = cached_teacher_vectors(phantom_patches, cache)
    assert v.shape == (len(phantom_patches), 34) and np.isfinite(v).all()
    assert np.array_equal(v[:4], direct)
    assert np.array_equal(np.load(cache), v)
    assert np.array_equal(cached_teacher_vectors(phantom_patches, cache, write=False), v)


def test_max_seconds_stops_the_run_and_writes_the_step_reached(phantom_patches, tmp_path):
    trainer = Trainer(TINY, _tc(steps=10_000, log_every=1000), phantom_patches, tmp_path)
    out = trainer.run(max_seconds=1.0)
    assert 1 <= trainer.step < 10_000
    assert load_checkpoint(tmp_path / "checkpoint.pt")["training"]["step"] == trainer.step
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [int(r["step"]) for r in rows] == [trainer.step]  # the last step is logged
    assert len(out["history"]) == trainer.step
