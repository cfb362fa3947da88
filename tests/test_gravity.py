import numpy as np
import pytest

from diffseglung_core.gravity import DEPENDENT_SIDES, dependent_of_centre, dependent_side, gravity_axis


def test_dependent_side_follows_the_dicom_patient_position():
    assert dependent_side("HFS") == dependent_side("ffs") == "back"
    assert dependent_side("HFP") == dependent_side("FFP") == "front"
    assert dependent_side("HFDR") == "right" and dependent_side("FFDL") == "left"
    # unknown: supine, as most chest CT
    assert dependent_side("") == dependent_side("XYZ") == dependent_side(None) == "back"


def test_gravity_axis_names_every_side_and_refuses_others():
    assert {gravity_axis(s) for s in DEPENDENT_SIDES} == {(1, 1), (1, -1), (2, 1), (2, -1)}
    with pytest.raises(ValueError, match="dependent side"):
        gravity_axis("up")


@pytest.mark.parametrize("side", DEPENDENT_SIDES)
def test_dependent_of_centre_is_the_half_beyond_each_slices_centre(side):
    rng = np.random.default_rng(0)
    mask = np.zeros((3, 30, 40), bool)
    mask[0, 5:25, 10:20] = True          # centre y 14.5, x 14.5
    mask[1, 10:12, 30:36] = True         # centre y 10.5, x 32.5
    mask[2] = rng.random((30, 40)) < 0.3
    out = np.broadcast_to(dependent_of_centre(mask, side), mask.shape)
    axis, sign = gravity_axis(side)
    for z in range(3):
        coords = np.nonzero(mask[z])[axis - 1]
        centre = coords.mean()
        grid = np.indices(mask.shape[1:])[axis - 1]
        assert (out[z] == (sign * (grid - centre) > 0)).all()
