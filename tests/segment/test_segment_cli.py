import csv
import json

import numpy as np

from diffseglung_core.cli import main
from diffseglung_core.io import read_mask, read_scan, write_scan
from diffseglung_core.labels import Tissue

from seg_synth import make_chest


def test_segment_and_evaluate_commands(tmp_path, capsys):
    vol, lung, gt = make_chest(shape=(16, 80, 80))
    scan = write_scan(tmp_path / "chest.nii.gz", vol)
    # a lung mask file, as a user would pass with --lung-mask
    from diffseglung_core.io import write_labels

    write_labels(tmp_path / "lung.nii.gz", lung.astype(np.uint8), read_scan(scan))
    write_labels(tmp_path / "gt.nii.gz", gt, read_scan(scan))
    out = tmp_path / "labels.nii.gz"
    rc = main(["segment", str(scan), "-o", str(out), "--features", "density", "--device", "cpu",
               "--lung-mask", str(tmp_path / "lung.nii.gz"), "--report", str(tmp_path / "r.json"),
               "--save-clusters", str(tmp_path / "clusters")])
    assert rc == 0
    labels = read_mask(out, read_scan(scan))
    assert ((labels > 0) == lung).all()
    rep = json.loads((tmp_path / "r.json").read_text())
    assert {c["name"] for c in rep["classes"]} >= {"healthy", "emphysema"}
    assert list((tmp_path / "clusters").iterdir())
    # the output exists and --overwrite was not given: a one-line error, nonzero status
    assert main(["segment", str(scan), "-o", str(out), "--features", "density"]) != 0
    capsys.readouterr()
    assert main(["evaluate", str(out), str(tmp_path / "gt.nii.gz"), "--json",
                 str(tmp_path / "e.json")]) == 0
    rows = {r["label"]: r for r in json.loads((tmp_path / "e.json").read_text())}
    assert rows[Tissue.EMPHYSEMA]["dice"] > 0.8
    assert rows[Tissue.EMPHYSEMA]["surface_dice"] > 0.8
    assert "Dice" in capsys.readouterr().out
    assert main(["evaluate", str(out), str(tmp_path / "gt.nii.gz"), "--tolerance", "0", "--json",
                 str(tmp_path / "e0.json")]) == 0
    strict = {r["label"]: r for r in json.loads((tmp_path / "e0.json").read_text())}
    assert strict[Tissue.EMPHYSEMA]["tolerance_mm"] == 0.0
    assert strict[Tissue.EMPHYSEMA]["surface_dice"] <= rows[Tissue.EMPHYSEMA]["surface_dice"]
    assert "surface Dice at 0.00 mm" in capsys.readouterr().out


def test_batch_folder_writes_a_summary(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    for seed in (0, 1):
        vol, _, _ = make_chest(shape=(1, 128, 128), spacing=(1.0, 0.8, 0.8), seed=seed)
        write_scan(folder / f"s{seed}.nii.gz", vol)
    out = tmp_path / "out"
    rc = main(["segment", str(folder), "-o", str(out), "--features", "density", "--device", "cpu"])
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert len(rows) == 2
    assert rc == 0, rows
    assert all(float(r["lung_volume_ml"]) > 0 for r in rows)


def test_real_hrct_slices_emphysema_tracks_severity(cted_open):
    """On real HRCT slices, a normal slice gets far less emphysema than a severe one."""
    from diffseglung_core.lung import compute_lung_mask
    from diffseglung_core.segment import segment_volume

    slices = list(csv.DictReader(open(cted_open / "slices.csv")))
    normal = min(slices, key=lambda r: int(r["severity"]))
    severe = max(slices, key=lambda r: int(r["severity"]))
    frac = {}
    for row in (normal, severe):
        vol = read_scan(cted_open / row["file"], spacing=(1.25, 0.78, 0.78))
        lung = compute_lung_mask(vol.hu, vol.spacing)
        res = segment_volume(vol, lung_mask=lung, features="density", device="cpu", n_init=1)
        frac[row["severity"]] = (res.labels == Tissue.EMPHYSEMA).sum() / (res.labels > 0).sum()
    assert frac[normal["severity"]] < 0.05
    assert frac[severe["severity"]] > frac[normal["severity"]] + 0.05
