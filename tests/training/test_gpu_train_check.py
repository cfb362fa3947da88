"""The one-command GPU check runs end to end on CPU with a tiny configuration."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from diffseglung_core.model.checkpoint import load_model

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_train_check.py"


@pytest.fixture(scope="module")
def gpu_train_check():
    spec = importlib.util.spec_from_file_location("gpu_train_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_run_on_cpu(gpu_train_check, tmp_path, capsys):
    out = tmp_path / "run"
    assert gpu_train_check.main([
        "--out", str(out), "--data", str(tmp_path / "no-data"), "--model", "tiny",
        "--patch", "8", "16", "16", "--device", "cpu", "--batch", "4", "--threads", "1",
        "--workers", "1", "--stage1-seconds", "1", "--stage2-seconds", "1",
        "--patches-per-source", "3", "--kinds", "phantom", "--phantom-shape", "24", "64", "64",
        "--eval-phantoms", "1", "--eval-shape", "24", "96", "96", "--testbed-cases", "--samples", "2",
        "--ablation",
    ]) == 0
    report = json.loads((out / "gpu_train_check.json").read_text())
    for stage in ("stage1", "stage2"):
        r = report[stage]
        assert r["steps"] >= 2 and r["timed_steps"] == r["steps"] - 1
        assert r["steps_per_s"] > 0 and r["gflop_per_step"] > 0 and 0 < r["mfu"] < 1
        assert r["voxels_per_s"] == pytest.approx(r["patches_per_s"] * 8 * 16 * 16)
    assert report["stage2"]["last_infonce"] is not None
    assert (out / "model.pt").is_file() and report["model_file_MB"] < 1
    assert report["generation"]["n"] == 2 and report["generation"]["ssim"] <= 1
    # the HU-preservation ablation: a second stage-1 model, recorded as such in its file
    assert report["ablation_stage1"]["steps"] >= 2
    assert load_model(out / "model_ablation.pt").config.diffusion.hu_preserving is False
    assert load_model(out / "model_stage1.pt").config.diffusion.hu_preserving is True
    dice = report["segmentation"]["phantoms"]["chest-s20"]
    assert set(dice) == {"diffusion", "stage1", "stage1-no-hu-preservation", "weight-free"}
    for m in dice.values():
        assert 0.5 < m["dice"]["healthy"] <= 1  # a real segmentation of the phantom's lung
    assert "Dice" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_refuses_a_missing_gpu(gpu_train_check, tmp_path, capsys):
    # without the GPU it was asked to check, it stops at once instead of training on the CPU
    assert gpu_train_check.main(["--out", str(tmp_path / "run"), "--device", "cuda"]) == 2
    assert "--device cuda" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
