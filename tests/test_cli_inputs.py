"""What the command line says about unusual inputs: one line each, a warning or an error."""

from __future__ import annotations

import os

import numpy as np

from diffseglung_core.cli import main


def test_segment_of_a_lung_crop_warns_and_runs(a0001_dicom, tmp_path, capsys):
    """A 5 x 24 x 24 cube of A0001's lung (no tissue above -500 HU): a warning, not a refusal."""
    from diffseglung_core.io import read_scan, write_labels, write_scan
    from diffseglung_core.volume import CTVolume

    scan = read_scan(a0001_dicom)
    crop = CTVolume.from_array(scan.hu[28:33, 184:208, 176:200].copy(), spacing=scan.spacing)
    assert crop.hu.max() < -500
    path = write_scan(tmp_path / "crop.nii.gz", crop)
    lung = write_labels(tmp_path / "lung.nii.gz", np.ones(crop.shape, np.uint8), crop)
    out = tmp_path / "labels.nii.gz"
    assert main(["segment", str(path), "--lung-mask", str(lung), "-o", str(out), "--features",
                 "density"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"diffseglung segment: warning: {path}: values -1024..")
    assert "no tissue denser than air, so this is a crop of the lung" in err[0]
    assert out.is_file()


def test_max_voxels_refuses_before_reading(tmp_path, capsys):
    from diffseglung_core.io import write_scan
    from diffseglung_core.volume import CTVolume

    hu = np.random.default_rng(0).normal(-500, 300, (4, 10, 10)).astype(np.float32)
    path = write_scan(tmp_path / "ct.nii.gz", CTVolume.from_array(hu, spacing=(1, 1, 1)))
    assert main(["info", str(path), "--max-voxels", "399"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "= 400 voxels, over the limit of 399" in err[0]
    assert main(["info", str(path), "--max-voxels", "400"]) == 0


def test_an_output_no_writer_takes_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    """``-o out`` (a folder name, or an ending no writer takes) stops in one line before the
    scan is read, not with a traceback after the segmentation."""
    import diffseglung_core.io as io

    def never(*args, **kwargs):
        raise AssertionError("the scan was read")

    monkeypatch.setattr(io, "read_scan", never)
    for command in ("segment", "lungmask"):
        for name in ("out", "labels.mha"):
            assert main([command, str(tmp_path / "ct.nii.gz"), "-o", str(tmp_path / name)]) == 2
            err = capsys.readouterr().err.splitlines()
            assert len(err) == 1 and "unsupported output type (use .nii.gz" in err[0], err
            # a name without an ending may be a folder that does not exist yet: say how to make it
            assert (f"give it as {tmp_path / name}{os.sep} to make it" in err[0]) == (name == "out"), err
    assert not list(tmp_path.iterdir())


def test_an_existing_folder_as_output_gets_a_file_named_after_the_scan(tmp_path, capsys):
    """``-o out/`` writes ``out/<scan>_labels.nii.gz`` (``_lungmask`` for the lung mask); a
    DICOM folder with a generic name is named after its parent; nothing is overwritten."""
    from diffseglung_core.io import read_label_map, write_scan
    from diffseglung_core.phantom import make_phantom

    scan = write_scan(tmp_path / "chest-7.nii.gz", make_phantom((16, 64, 64), seed=0).volume)
    out = tmp_path / "out"
    out.mkdir()
    assert main(["lungmask", str(scan), "-o", str(out)]) == 0
    mask = out / "chest-7_lungmask.nii.gz"
    assert f"wrote {mask}" in capsys.readouterr().out
    assert set(np.unique(read_label_map(mask).hu)) == {0, 1, 2}
    assert main(["segment", str(scan), "-o", str(out), "--lung-mask", str(mask),
                 "--features", "density"]) == 0
    labels = out / "chest-7_labels.nii.gz"
    assert f"wrote {labels}" in capsys.readouterr().out
    # a folder given with a trailing separator is made
    new = tmp_path / "masks" / "run1"
    assert main(["lungmask", str(scan), "-o", f"{new}{os.sep}"]) == 0
    assert (new / "chest-7_lungmask.nii.gz").is_file()
    assert read_label_map(labels).shape == (16, 64, 64)
    before = labels.stat().st_mtime_ns
    assert main(["segment", str(scan), "-o", str(out), "--lung-mask", str(mask),
                 "--features", "density"]) == 2
    assert "exists" in capsys.readouterr().err
    assert labels.stat().st_mtime_ns == before


def test_output_for_names_a_dicom_folder_after_its_parent(tmp_path):
    from diffseglung_core.cli._common import output_for

    (tmp_path / "out").mkdir()
    dicom = tmp_path / "patient-17" / "dicom"
    assert output_for(tmp_path / "out", dicom, "labels") == tmp_path / "out" / "patient-17_labels.nii.gz"
    assert output_for(tmp_path / "x.nrrd", dicom, "labels") == tmp_path / "x.nrrd"


def test_segment_cautions_when_no_lung_reads_as_healthy_lung(tmp_path, capsys):
    """Lungs dense throughout (ground glass everywhere, or expiration): the ground glass is
    read against itself, and the command line says so; the same chest at its own density
    gets no such note."""
    from diffseglung_core.io import write_scan
    from diffseglung_core.phantom import make_phantom
    from diffseglung_core.volume import CTVolume

    ph = make_phantom((16, 128, 128), seed=0)  # bands of lung wide enough to read a level
    caution = "ground glass may be labelled healthy"
    for name, shift in (("clear", 0.0), ("dense", 200.0)):
        hu = ph.volume.hu + np.float32(shift) * (ph.lung > 0)
        scan = write_scan(tmp_path / f"{name}.nii.gz", CTVolume(hu=hu, spacing=ph.volume.spacing,
                                                                affine=ph.volume.affine))
        assert main(["segment", str(scan), "-o", str(tmp_path / f"{name}_labels.nii.gz"),
                     "--features", "density"]) == 0
        assert (caution in capsys.readouterr().out) == (shift > 0)
