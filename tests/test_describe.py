import numpy as np

from diffseglung_core.describe import describe_volume, position_note, volume_facts
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


def test_a_patient_who_did_not_lie_supine_gets_a_note():
    assert position_note("HFS") is None and position_note("ffs") is None and position_note("") is None
    prone = position_note("HFP")
    assert "prone" in prone and "in front" in prone and "HFP" in prone
    assert "on the left" in position_note("FFDL") and "on the right" in position_note("HFDR")
    unusual = position_note("XYZ")  # an unusual code is named, not guessed
    assert "XYZ" in unusual and "supine" in unusual
    hu = np.full((3, 4, 5), -1000.0)
    prone_scan = CTVolume.from_array(hu, spacing=(5.0, 0.8, 0.8),
                                     source=ScanSource(format="dicom", metadata={"patient_position": "HFP"}))
    assert "note: the patient lay prone" in describe_volume(prone_scan)
    assert volume_facts(prone_scan)["patient_position"] == "HFP"
    assert "note" not in describe_volume(CTVolume.from_array(hu, spacing=(5.0, 0.8, 0.8)))
