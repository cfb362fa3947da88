"""The registry is the one list of scan formats: napari.yaml and discovery follow it."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
import yaml

from diffseglung_core.errors import DiffSegLungError, ScanReadError
from diffseglung_core.io import (
    find_scans,
    is_scan_collection,
    label_suffixes,
    reader_for,
    scan_name,
    scan_suffixes,
    scans_in,
    strip_scan_suffix,
    write_labels,
    writer_for,
)
from diffseglung_core.volume import CTVolume


def _manifest() -> dict:
    text = (resources.files("napari_diffseglung") / "napari.yaml").read_text()
    return yaml.safe_load(text)["contributions"]


def test_napari_yaml_reader_patterns_are_the_registry_suffixes():
    (reader,) = _manifest()["readers"]
    assert sorted(reader["filename_patterns"]) == sorted(f"*{s}" for s in scan_suffixes())
    assert reader["accepts_directories"] is True  # DICOM folders


def test_napari_yaml_writer_extensions_are_the_registry_suffixes():
    (writer,) = _manifest()["writers"]
    assert sorted(writer["filename_extensions"]) == sorted(label_suffixes())


def test_every_suffix_has_a_reader_or_writer(tmp_path):
    assert ".mha" not in scan_suffixes()
    assert {".tif", ".tiff", ".nii.gz", ".dcm"} <= set(scan_suffixes())
    for suffix in label_suffixes():
        assert writer_for(tmp_path / f"x{suffix}").accepts(tmp_path / f"x{suffix}")
        volume = CTVolume.from_array(np.zeros((2, 3, 4)))
        assert write_labels(tmp_path / f"l{suffix}", np.ones((2, 3, 4), np.uint8), volume).is_file()
    with pytest.raises(ValueError, match="unsupported output type"):
        writer_for(tmp_path / "x.mha")
    (tmp_path / "x.mha").write_bytes(b"ObjectType = Image\n")
    with pytest.raises(ScanReadError, match="not a supported image"):
        reader_for(tmp_path / "x.mha")


def test_scan_names():
    assert strip_scan_suffix("Chest.NII.GZ") == "Chest"
    assert strip_scan_suffix("slice.tiff") == "slice"
    assert strip_scan_suffix("notes.txt") == "notes.txt"
    assert scan_name("/data/patient-17/dicom") == "patient-17"
    assert scan_name("/data/patient-17") == "patient-17"
    assert scan_name("/data/ct.nii.gz") == "ct"


def test_scans_of_a_folder(tmp_path):
    cohort = tmp_path / "cohort"
    series = cohort / "patient-2" / "dicom"
    series.mkdir(parents=True)
    (series / "1.dcm").write_bytes(b"")
    for name in ("a.nii.gz", "b.nrrd", "c.tiff", "notes.txt", ".hidden.nii"):
        (cohort / name).write_bytes(b"")
    (cohort / "empty").mkdir()
    assert scans_in(cohort) == [cohort / n for n in ("a.nii.gz", "b.nrrd", "c.tiff")]
    assert scans_in(cohort / "patient-2") == [series]
    assert is_scan_collection(cohort) and not is_scan_collection(series)
    assert find_scans([series, cohort / "a.nii.gz"]) == [series, cohort / "a.nii.gz"]
    assert find_scans([cohort])[0] == cohort / "a.nii.gz"
    with pytest.raises(DiffSegLungError, match="no scans found"):
        find_scans([cohort / "empty"])
    with pytest.raises(FileNotFoundError):
        find_scans([tmp_path / "missing"])
