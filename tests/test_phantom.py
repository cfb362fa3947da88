import numpy as np
import pytest

from diffseglung_core.cli import main
from diffseglung_core.labels import Tissue
from diffseglung_core.phantom import make_phantom


@pytest.fixture(scope="module")
def phantom():
    return make_phantom((24, 80, 80), seed=3)


def test_deterministic_from_seed():
    a = make_phantom((8, 48, 48), seed=1)
    b = make_phantom((8, 48, 48), seed=1)
    c = make_phantom((8, 48, 48), seed=2)
    np.testing.assert_array_equal(a.volume.hu, b.volume.hu)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.volume.hu, c.volume.hu)


def test_shapes_dtypes_and_lungs(phantom):
    vol = phantom.volume
    assert vol.hu.shape == phantom.labels.shape == phantom.lung.shape == (24, 80, 80)
    assert vol.hu.dtype == np.float32 and phantom.labels.dtype == np.uint8
    assert set(np.unique(phantom.lung)) == {0, 1, 2}
    # right lung (1) lies on the low-x side: x runs patient right -> left
    x = np.arange(80)
    right_x = (x * (phantom.lung == 1).sum(axis=(0, 1))).sum() / (phantom.lung == 1).sum()
    left_x = (x * (phantom.lung == 2).sum(axis=(0, 1))).sum() / (phantom.lung == 2).sum()
    assert right_x < 40 < left_x
    assert np.array_equal(phantom.labels > 0, phantom.lung > 0)


def test_every_class_present_with_its_hu(phantom):
    hu, labels = phantom.volume.hu, phantom.labels
    lung = labels > 0
    med = {}
    for t in Tissue:
        if t == Tissue.OUTSIDE:
            continue
        sel = labels == t
        assert sel.sum() / lung.sum() > 0.02, f"{t.name} too small"
        med[t] = float(np.median(hu[sel]))
    assert med[Tissue.EMPHYSEMA] < -930
    assert -900 < med[Tissue.HEALTHY] < -800
    assert -700 < med[Tissue.GGO] < -400
    assert med[Tissue.CONSOLIDATION] > -150
    # fibrosis: mid HU, strongly textured
    assert -850 < med[Tissue.FIBROSIS] < -300
    def iqr(values):
        q1, q3 = np.percentile(values, [25, 75])
        return q3 - q1
    assert iqr(hu[labels == Tissue.FIBROSIS]) > 3 * iqr(hu[labels == Tissue.HEALTHY])


def test_outside_lung_has_air_body_and_bone(phantom):
    hu = phantom.volume.hu
    assert np.median(hu[:, 0, :]) < -950          # air at the anterior border
    assert hu.max() > 400                           # spine and ribs
    body = (hu > -300) & (phantom.lung == 0)
    assert body.sum() > 0.2 * hu.size


def test_pathologies_can_be_left_out():
    ph = make_phantom((16, 64, 64), seed=0, pathologies=("ggo",))
    assert not np.any(ph.labels == Tissue.EMPHYSEMA)
    assert not np.any(ph.labels == Tissue.CONSOLIDATION)
    assert np.any(ph.labels == Tissue.GGO)
    with pytest.raises(ValueError, match="unknown"):
        make_phantom((4, 32, 32), pathologies=("tumour",))


def test_single_slice():
    ph = make_phantom((1, 64, 64), seed=0)
    assert ph.volume.hu.shape == (1, 64, 64)
    assert np.any(ph.labels == Tissue.HEALTHY) and np.any(ph.labels == Tissue.GGO)


def test_cli_writes_files_that_read_back(tmp_path, capsys):
    from diffseglung_core.io import read_mask, read_scan

    assert main(["phantom", str(tmp_path), "--shape", "8", "48", "48", "--seed", "2"]) == 0
    ct = read_scan(tmp_path / "ct.nii.gz")
    ph = make_phantom((8, 48, 48), seed=2)
    np.testing.assert_allclose(ct.hu, np.round(ph.volume.hu), atol=0.5)
    np.testing.assert_allclose(ct.spacing, ph.volume.spacing, rtol=1e-5)
    np.testing.assert_array_equal(read_mask(tmp_path / "labels.nii.gz", ct), ph.labels)
    # nothing is replaced without --overwrite
    assert main(["phantom", str(tmp_path), "--shape", "8", "48", "48"]) == 2
    assert "exists" in capsys.readouterr().err
