"""Written files: the umask's mode, and nothing left behind by a write that fails."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from diffseglung_core.io import registry, write_labels, write_scan
from diffseglung_core.io.writers import file_mode
from diffseglung_core.volume import CTVolume

from io_builders import unique_hu


@pytest.fixture
def umask():
    """Set the process umask for one test; the old one is put back."""
    old = os.umask(0o022)
    os.umask(old)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("name", ["labels.nii.gz", "labels.nii", "labels.nrrd", "labels.npz"])
@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_honour_the_umask(tmp_path, umask, name, mask, expected):
    umask(mask)
    assert file_mode() == expected
    vol = CTVolume.from_array(unique_hu((3, 4, 5)), spacing=(1, 1, 1))
    out = write_labels(tmp_path / name, np.ones(vol.shape, np.uint8), vol)
    assert _mode(out) == expected
    replaced = write_labels(tmp_path / name, np.ones(vol.shape, np.uint8), vol, overwrite=True)
    assert _mode(replaced) == expected
    scan = write_scan(tmp_path / f"scan-{name}", vol)
    assert _mode(scan) == expected


@pytest.mark.filterwarnings("ignore:The string .* person name:UserWarning")
def test_dicom_seg_honours_the_umask(a0001_dicom, tmp_path, umask):
    from diffseglung_core.io import read_scan, write_dicom_seg

    scan = read_scan(a0001_dicom)
    labels = np.zeros(scan.shape, np.uint8)
    labels[30:33, 200:260, 120:180] = 1
    umask(0o022)
    out = write_dicom_seg(tmp_path / "seg" / "seg.dcm", labels, scan)
    assert _mode(out) == 0o644
    umask(0o027)
    out = write_dicom_seg(tmp_path / "seg" / "seg.dcm", labels, scan, overwrite=True)
    assert _mode(out) == 0o640
    assert os.listdir(tmp_path / "seg") == ["seg.dcm"]  # no temporary file left


@pytest.mark.parametrize("error", [MemoryError, KeyboardInterrupt])
def test_a_write_that_fails_leaves_no_file(tmp_path, monkeypatch, error):
    vol = CTVolume.from_array(unique_hu((3, 4, 5)), spacing=(1, 1, 1))
    nifti = next(w for w in registry.WRITERS if w.name == "nifti")

    def half_then_fail(path, array, reference, role):
        path.write_bytes(b"\x1f\x8b half a file")  # a partial file on disk, as a real failure leaves
        raise error()

    monkeypatch.setattr(registry, "WRITERS", [nifti.__class__(nifti.name, nifti.suffixes, half_then_fail),
                                              *registry.WRITERS[1:]])
    with pytest.raises(error):
        write_labels(tmp_path / "labels.nii.gz", np.ones(vol.shape, np.uint8), vol)
    assert os.listdir(tmp_path) == []


def test_reports_and_checkpoints_honour_the_umask_and_never_clobber(tmp_path, umask):
    from diffseglung_core.errors import OutputExistsError
    from diffseglung_core.io.writers import write_text
    from diffseglung_core.segment.report import write_report
    from diffseglung_core.training.checkpoint import save_checkpoint

    umask(0o027)
    report = {"classes": [{"label": 1, "name": "healthy", "voxels": 3, "volume_ml": 0.5,
                           "percent_of_lung": 100.0}],
              "density": {"laa950_percent": 1.0, "laa910_percent": 2.0, "pd15_hu": -900.0}}
    js, table = write_report(report, tmp_path / "r" / "report.json")
    assert _mode(js) == _mode(table) == 0o640
    assert table.read_text().splitlines()[1] == "1,healthy,3,0.500,100.000"
    with pytest.raises(OutputExistsError):
        write_report(report, js, overwrite=False)
    with pytest.raises(OutputExistsError):
        write_text(js, "other", overwrite=False)
    assert sorted(os.listdir(tmp_path / "r")) == ["report.csv", "report.json"]  # nothing half-written
    assert _mode(save_checkpoint(tmp_path / "c.pt", {"step": 1})) == 0o640
