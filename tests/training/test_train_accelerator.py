"""Both training stages on an accelerator in mixed precision (skipped without one).

The CPU tests of ``test_train_loop.py`` check the loop's logic in float32; these
check that the same loop learns under bf16 autocast on a GPU and that what it
writes loads and runs on the CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffseglung_core.model.checkpoint import load_model
from diffseglung_core.model.config import DistillConfig, ModelConfig, UNetConfig
from diffseglung_core.model.diffusion import Diffusion
from diffseglung_core.model.features import extract_features
from diffseglung_core.radiomics import batched_features
from diffseglung_core.training.config import TrainConfig
from diffseglung_core.training.distributed import DistInfo
from diffseglung_core.training.loop import Trainer
from diffseglung_core.volume import denormalize_hu

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

TINY = ModelConfig(unet=UNetConfig.tiny(), patch_size=(16, 16, 16))


def _tc(**kw):
    base = dict(steps=40, batch_size=8, lr=2e-3, checkpoint_every=20, log_every=5, seed=0,
                precision="bf16")
    base.update(kw)
    return TrainConfig(**base)


def test_both_stages_learn_in_bf16_on_cuda(phantom_patches, tmp_path):
    cuda = DistInfo(device=torch.device("cuda"))
    hist = Trainer(TINY, _tc(), phantom_patches, tmp_path / "s1", dist=cuda).run()["history"]
    mse = [r["mse"] for r in hist]
    assert np.isfinite(mse).all()
    assert np.mean(mse[-3:]) < 0.6 * np.mean(mse[:2])

    ct, mask = phantom_patches.batch(range(len(phantom_patches)))
    teacher = batched_features(denormalize_hu(ct[:, 0]).cuda(), mask[:, 0].cuda()).float()
    cfg = ModelConfig(unet=UNetConfig.tiny(), patch_size=(16, 16, 16),
                      distill=DistillConfig(warmup_start=0, warmup_end=5, lambda_max=1.0,
                                            temperature=0.1, student_hidden=64))
    tr = Trainer(cfg, _tc(steps=50, stage=2, log_every=10), phantom_patches, tmp_path / "s2",
                 dist=cuda, teacher_vectors=teacher, init_from=tmp_path / "s1" / "checkpoint.pt")
    nce = [r["infonce"] for r in tr.run()["history"]]
    assert np.isfinite(nce).all() and nce[-1] < 0.7 * nce[0]

    # the exported model loads on the CPU, and its features agree with the GPU's in bf16
    loaded = load_model(tmp_path / "s2" / "model.pt")
    diffusion = Diffusion(loaded.config.diffusion)
    x = torch.cat([ct[:4], mask[:4]], 1)
    cpu = extract_features(loaded.model.eval(), x, 200, diffusion=diffusion, seed=3).bottleneck
    gpu_model = load_model(tmp_path / "s2" / "model.pt", "cuda").model.eval()
    gpu = extract_features(gpu_model, x, 200, diffusion=diffusion, seed=3, precision="bf16").bottleneck
    rel = (gpu.float().cpu() - cpu).norm() / cpu.norm()
    assert rel < 3e-2, f"bf16 features on the GPU differ from the CPU's by {rel:.3g}"
