import numpy as np
import pytest

from diffseglung_core.volume import CTVolume, canonical_affine, denormalize_hu, normalize_hu


def test_normalisation_anchors_and_inverse():
    hu = np.array([-1000.0, -300.0, 0.0, 400.0])
    x = normalize_hu(hu)
    np.testing.assert_allclose(x[:2], [-1.0, 0.0])
    np.testing.assert_allclose(denormalize_hu(x), hu)


def test_canonical_affine_maps_axes_to_patient_directions():
    aff = canonical_affine((5.0, 0.8, 0.7), origin=(10, 20, 30))
    # one step in x (array axis 2) goes to the patient's left: RAS x decreases
    step_x = aff @ [0, 0, 1, 1] - aff @ [0, 0, 0, 1]
    np.testing.assert_allclose(step_x[:3], [-0.7, 0, 0])
    step_y = aff @ [0, 1, 0, 1] - aff @ [0, 0, 0, 1]
    np.testing.assert_allclose(step_y[:3], [0, -0.8, 0])
    step_z = aff @ [1, 0, 0, 1] - aff @ [0, 0, 0, 1]
    np.testing.assert_allclose(step_z[:3], [0, 0, 5.0])


def test_ctvolume_validates_shape_and_spacing():
    with pytest.raises(ValueError, match="3D"):
        CTVolume.from_array(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="positive"):
        CTVolume.from_array(np.zeros((2, 4, 4)), spacing=(0, 1, 1))
    vol = CTVolume.from_array(np.zeros((2, 4, 4), np.int16), spacing=(2, 1, 1))
    assert vol.hu.dtype == np.float32 and vol.voxel_volume_ml == pytest.approx(0.002)
    labels = np.ones(vol.shape, np.uint8)
    assert vol.to_native(labels) is labels


def test_with_position_sets_the_patient_position_and_keeps_the_rest():
    from diffseglung_core.volume import ScanSource

    vol = CTVolume.from_array(np.zeros((2, 3, 4)), spacing=(2.0, 1.0, 1.0),
                              source=ScanSource(format="nifti", metadata={"modality": "CT"}))
    prone = vol.with_position(" hfp")
    assert prone.source.metadata == {"modality": "CT", "patient_position": "HFP"}
    assert vol.source.metadata == {"modality": "CT"}  # the original is not changed
    assert prone.hu is vol.hu and prone.spacing == vol.spacing
    assert vol.with_position(None) is vol
    assert prone.with_position("").source.metadata == {"modality": "CT"}  # unknown again
