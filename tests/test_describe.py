import numpy as np

from diffseglung_core.describe import describe_volume, volume_facts
from diffseglung_core.volume import CTVolume, ScanSource


def test_describe_volume_mentions_size_spacing_and_range():
    hu = np.full((3, 4, 5), -1000.0)
    hu[1, 2, 3] = 400
    vol = CTVolume.from_array(hu, spacing=(5.0, 0.8, 0.8),
                              source=ScanSource(format="dicom", orientation="LPS", description="lung 5mm"))
    text = describe_volume(vol)
    assert "3 x 4 x 5" in text and "5 x 0.8 x 0.8 mm" in text
    assert "-1000 .. 400" in text and "LPS" in text and "lung 5mm" in text


def test_volume_facts_are_plain_numbers():
    hu = np.full((3, 4, 5), -1000.0)
    hu[1, 2, 3] = 400
    facts = volume_facts(CTVolume.from_array(hu, spacing=(5.0, 0.8, 0.8)))
    assert facts["shape_zyx"] == [3, 4, 5] and facts["spacing_zyx_mm"] == [5.0, 0.8, 0.8]
    assert (facts["hu_min"], facts["hu_max"]) == (-1000.0, 400.0)
    assert facts["volume_ml"] == round(60 * 5 * 0.8 * 0.8 / 1000, 1)
