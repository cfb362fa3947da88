"""The three training CLIs end to end on a tiny patch folder."""

import json

import numpy as np
import pytest

from diffseglung_core.cli import main
from diffseglung_core.model.checkpoint import load_checkpoint, load_model


@pytest.fixture()
def patch_folder(phantom_patches, tmp_path):
    folder = tmp_path / "patches"
    folder.mkdir()
    np.save(folder / "ct.npy", phantom_patches.ct.astype(np.float16))
    np.save(folder / "mask.npy", phantom_patches.mask)
    np.save(folder / "patient_ids.npy", phantom_patches.patient_ids.astype(str))
    return folder


def test_train_cli_writes_a_loadable_checkpoint(patch_folder, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--patches", str(patch_folder), "--out", str(out), "--model", "tiny",
                 "--steps", "2", "--batch-size", "8", "--device", "cpu", "--log-every", "1"]) == 0
    model, proj, cfg = load_model(out / "model.pt")
    assert cfg.step == 2 and cfg.patch_size == (16, 16, 16) and proj is None


def test_train_cli_cuts_patches_from_a_folder_of_scans(tmp_path):
    from diffseglung_core.io import write_scan
    from diffseglung_core.phantom import make_phantom

    scans = tmp_path / "scans"
    scans.mkdir()
    write_scan(scans / "chest.nii.gz", make_phantom((32, 96, 96), seed=4).volume)
    out = tmp_path / "run"
    assert main(["train", "--scans", str(scans), "--patch-size", "16", "32", "32",
                 "--patches-per-scan", "6", "--out", str(out), "--model", "tiny", "--steps", "1",
                 "--batch-size", "3", "--device", "cpu"]) == 0
    ct = np.load(out / "patches" / "ct.npy")
    assert ct.shape == (6, 16, 32, 32)
    assert set(np.load(out / "patches" / "patient_ids.npy")) == {"chest"}
    assert load_model(out / "model.pt").config.patch_size == (16, 32, 32)


@pytest.mark.slow
def test_train_resume_distill_and_sample(patch_folder, tmp_path, capsys):
    s1 = tmp_path / "s1"
    common = ["--patches", str(patch_folder), "--batch-size", "8", "--lr", "1e-3", "--device", "cpu",
              "--checkpoint-every", "2", "--log-every", "1"]
    assert main(["train", *common, "--out", str(s1), "--model", "tiny", "--steps", "2"]) == 0
    assert main(["train", *common, "--out", str(s1), "--model", "tiny", "--steps", "3",
                 "--resume"]) == 0
    ck = load_checkpoint(s1 / "checkpoint.pt")
    assert ck["training"]["step"] == 3 and ck["model_config"]["unet"]["base_channels"] == 8
    assert len((s1 / "log.csv").read_text().strip().splitlines()) == 1 + 3

    s2 = tmp_path / "s2"
    assert main(["train-distill", "--from", str(s1 / "checkpoint.pt"), *common, "--out", str(s2),
                 "--steps", "2", "--warmup-end", "1"]) == 0
    model, proj, cfg = load_model(s2 / "model.pt")
    assert proj is not None and cfg.stage == 2 and (s2 / "teacher_vectors.npy").is_file()

    out = tmp_path / "samples"
    assert main(["sample", "--model", str(s2 / "model.pt"), "--out", str(out), "--n", "3",
                 "--steps", "3", "--reference", str(patch_folder), "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.glob("*.nii.gz")) == [f"sample_{i:03d}.nii.gz" for i in range(3)]
    assert (out / "montage.png").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["frechet_radiomic"] >= 0 and np.isfinite(metrics["psnr_db"])
    assert -1 <= metrics["ssim"] <= 1
    # existing outputs are kept unless --overwrite
    assert main(["sample", "--model", str(s2 / "model.pt"), "--out", str(out), "--n", "1",
                 "--steps", "2", "--device", "cpu"]) == 2
    assert "exists" in capsys.readouterr().err


def test_bad_checkpoint_is_a_clean_cli_error(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"nope")
    assert main(["sample", "--model", str(bad), "--out", str(tmp_path / "o"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "bad.pt" in err and "Traceback" not in err
