"""The descending aorta traced down the slices (``diffseglung_core.lung.aorta``)."""

import numpy as np
import pytest

from diffseglung_core.lung.aorta import aorta_masks, descending_aorta, trace_tube
from diffseglung_core.lung.cavity import costal_fill, smooth_axial
from diffseglung_core.lung.skeleton import vertebral_body

SPACING = (5.0, 1.0, 1.0)


def _chest(n_slices=14, consolidated=(), oesophagus=True):
    """Slices of 1 mm pixels: body, a vertebral body (rows 150-180), the descending aorta
    (radius 13 mm, centre (132, 140): in front of the vertebral body and to its left),
    aerated lung on both sides, fat between the aorta and the middle, an oesophagus
    (radius 9 mm, in fat, in front of the vertebral body on the right). In the slices
    ``consolidated``, the left lower lobe beside and behind the aorta is dense (40 HU), a
    crescent 16 mm thick: the aorta's edge against the lung is gone there."""
    y, x = np.mgrid[:220, :240]
    body = ((y - 110) / 100) ** 2 + ((x - 120) / 115) ** 2 <= 1
    cavity = ((y - 110) / 85) ** 2 + ((x - 120) / 100) ** 2 <= 1
    vertebra = (np.abs(x - 120) <= 18) & (y >= 150) & (y <= 180)
    aorta = np.hypot(y - 132, x - 140) <= 13
    oes = np.hypot(y - 120, x - 108) <= 9
    lung_left = cavity & (x > 128) & ~aorta & ~vertebra & (y < 190)
    lung_right = cavity & (x < 104) & ~vertebra & (y < 190)
    lesion = (np.hypot(y - 132, x - 140) <= 29) & (y > 120) & lung_left  # a 16 mm crescent
    hu = np.where(body, 40.0, -1000.0)
    hu[cavity & ~vertebra & ~aorta] = -90.0  # mediastinal fat
    hu[lung_left | lung_right] = -860.0
    hu[vertebra] = 500.0
    hu[aorta] = 45.0
    if oesophagus:
        hu[oes] = 35.0
    vol = np.repeat(hu[None], n_slices, axis=0)
    for z in consolidated:
        vol[z][lesion] = 40.0
    rng = np.random.default_rng(0)
    vol = vol + rng.normal(0, 12, vol.shape)
    masks = dict(body=body, vertebra=vertebra, aorta=aorta, lesion=lesion, lung_left=lung_left)
    return vol.astype(np.float32), masks, (y, x)


def _aorta(vol, masks):
    hs = smooth_axial(vol, SPACING, 1.0)
    cage = np.repeat((masks["vertebra"])[None], vol.shape[0], axis=0)
    body = np.repeat(masks["body"][None], vol.shape[0], axis=0)
    vertebrae = [vertebral_body(cage[z], body[z], SPACING[1:], 119.5) for z in range(vol.shape[0])]
    return descending_aorta(hs, vertebrae, SPACING), hs, vertebrae


def test_the_aorta_is_traced_through_every_slice_even_where_consolidation_abuts_it():
    vol, masks, _ = _chest(consolidated=range(5, 9))
    aorta, _, _ = _aorta(vol, masks)
    assert not np.isnan(aorta).any()
    np.testing.assert_allclose(aorta[:, 0], 132, atol=2)
    np.testing.assert_allclose(aorta[:, 1], 140, atol=2)
    np.testing.assert_allclose(aorta[:, 2], 13, atol=2)


def test_a_tube_shorter_than_min_length_is_not_traced():
    vol, masks, _ = _chest(n_slices=4)  # 20 mm: not a tube through the chest
    aorta, _, _ = _aorta(vol, masks)
    assert np.isnan(aorta).all()


def test_trace_tube_prefers_a_steady_tube_to_a_jumping_best_circle():
    steady = np.array([[100.0, 100.0, 12.0, 0.6]])
    cands = []
    for z in range(10):
        c = steady.copy()
        if z in (3, 6):  # a better-scoring circle 40 mm away in two slices
            c = np.vstack([[140.0, 80.0, 12.0, 0.9], c])
        cands.append(c)
    cands.append(np.zeros((0, 4)))  # nothing in the last slice
    out = trace_tube(cands, SPACING)
    np.testing.assert_array_equal(out[:10, :2], np.tile([100.0, 100.0], (10, 1)))
    assert np.isnan(out[10]).all()


def test_trace_tube_bridges_a_long_hidden_stretch_past_a_stray_short_piece():
    """Consolidation all round the aorta over 12 slices (60 mm) leaves no circle there but
    for two slices on another round structure 20 mm away (the oesophagus): the tube runs
    straight through, as the long pieces above and below agree."""
    aorta = np.array([[100.0, 100.0, 12.0, 0.6]])
    stray = np.array([[100.0, 80.0, 12.0, 0.6]])
    cands = [aorta] * 8 + [np.zeros((0, 4))] * 5 + [stray] * 2 + [np.zeros((0, 4))] * 5 + [aorta] * 8
    out = trace_tube(cands, SPACING)
    np.testing.assert_allclose(out[:, :2], np.tile([100.0, 100.0], (len(cands), 1)))
    # a gap longer than max_gap_mm is not bridged
    out = trace_tube(cands, SPACING, max_gap_mm=40.0)
    assert np.isnan(out[8:20]).all() and not np.isnan(out[:8]).any()


def test_a_contrast_filled_aorta_against_the_vertebral_body_is_still_traced():
    """With contrast the aorta reads as dense as bone; moved against the vertebral body
    (partial volume joins them), it is split off the vertebra and traced, in a scan
    known to have contrast (without, the vertebra is never split)."""
    vol, masks, (y, x) = _chest(consolidated=range(5, 9))
    aorta_disc = np.hypot(y - 140, x - 140) <= 13  # reaches rows 150-153 of the vertebral body
    vol[:, masks["aorta"]] = -90.0  # fat where it lay
    vol[:, aorta_disc] = 250.0
    bone = (vol > 200.0)
    body = np.repeat(masks["body"][None], vol.shape[0], axis=0)
    hs = smooth_axial(vol, SPACING, 1.0)
    merged = vertebral_body(bone[0], body[0], SPACING[1:], 119.5)  # told nothing of contrast
    assert merged[0] < 140 and merged[3][np.hypot(y - 137, x - 142) <= 8].all()
    vertebrae = [vertebral_body(bone[z], body[z], SPACING[1:], 119.5, contrast=True)
                 for z in range(vol.shape[0])]
    for front, centre, _, vertebra in vertebrae:
        assert 149 <= front <= 151 and abs(centre - 120) <= 2  # the vertebral body's own front
        assert not vertebra[np.hypot(y - 137, x - 142) <= 8].any()
    aorta = descending_aorta(hs, vertebrae, SPACING)
    assert not np.isnan(aorta).any()
    np.testing.assert_allclose(aorta[:, :2], np.tile([140, 140], (vol.shape[0], 1)), atol=2)


def test_aorta_masks_split_the_disc_into_front_and_back():
    aorta = np.array([[50.0, 50.0, 10.0], [np.nan, np.nan, np.nan]])
    front, back = aorta_masks(aorta, (2, 100, 100), SPACING, margin_mm=0.0)
    disc = front[0] | back[0]
    assert abs(np.count_nonzero(disc) - np.pi * 100) < 15 and not (front[0] & back[0]).any()
    assert front[0, 42, 50] and back[0, 50, 58] and back[0, 58, 50] and not front[0, 50, 40]
    assert not (front[1] | back[1]).any()


@pytest.mark.parametrize("thick", [True, False])
def test_rays_towards_the_middle_end_on_the_aorta_behind_its_front(thick):
    """Dense lower lobe beside the aorta is reached by rays towards the body's middle that
    end on the side or back of the aorta; a thin rim (under 15 mm) is not."""
    vol, masks, (y, x) = _chest(consolidated=range(4, 10))
    aorta, hs, vertebrae = _aorta(vol, masks)
    z = 7
    front, back = aorta_masks(aorta, vol.shape, SPACING)
    lesion = masks["lesion"] if thick else masks["lesion"] & (np.hypot(y - 132, x - 140) <= 21)  # 8 mm
    hu = hs[z].copy()
    if not thick:
        hu[masks["lesion"] & ~lesion] = -860.0
    side = masks["lung_left"] & ~lesion
    ends = back[z] | vertebrae[z][3]
    body = masks["body"]
    added = costal_fill(hu, side, np.zeros_like(side), body, ends | front[z], SPACING, 119.5,
                        avoid=front[z], spine=ends, mediastinum=(y < 150) & (np.abs(x - 120) <= 18)
                        & ~(front[z] | back[z]), inward_deg=60.0, fan_deg=(-30.0, 0.0, 30.0))
    if thick:
        assert added[lesion].mean() > 0.6
    else:
        assert added[lesion].mean() < 0.1
    assert not added[masks["aorta"] | masks["vertebra"]].any()
    assert not added[~(lesion | masks["lung_left"])].any()


def test_vertebral_body_masks_fill_cancellous_bone_and_mark_the_front():
    """A vertebral body whose cancellous bone reads below the bone threshold (a cortical
    ring with a gap) and an arch behind it: the solid holds the body's inside and the
    canal, the body's front is its front part only, the band lies in front of it."""
    from diffseglung_core.lung.skeleton import vertebral_body_masks

    y, x = np.mgrid[:220, :240]
    ring = (np.abs(np.hypot(y - 165, x - 120) - 15) < 2) & ~((np.abs(x - 135) < 2) & (y < 160))
    arch = (np.abs(np.hypot(y - 192, x - 120) - 10) < 2) & (y >= 185)
    vertebra = ring | arch
    body = ((y - 110) / 100) ** 2 + ((x - 120) / 115) ** 2 <= 1
    v = vertebral_body(vertebra, body, (1.0, 1.0), 119.5)
    solid, front, band = vertebral_body_masks([v, None], (2, 220, 240), SPACING)
    assert solid[0, 165, 120] and solid[0, 160, 130] and not solid[1].any()
    assert front[0, 152, 120] and not front[0, 200, 120] and front[0].sum() < solid[0].sum()
    assert band[0, 120, 120] and not band[0, 120, 60] and not band[0, 170, 120]


def test_real_vertebrae_are_never_split_even_in_a_scan_called_contrast(a0001_dicom):
    """A0001 (no contrast): told it has contrast, no vertebra of its 64 slices loses a part
    (its bodies, arches and rib heads in slabs of slices are no round disc in front and to
    the left of the vertebral body)."""
    from diffseglung_core.io import read_scan
    from diffseglung_core.lung.body import filled_body, outside_air
    from diffseglung_core.lung.skeleton import RIB_SLAB_MM, rib_cage

    ct = read_scan(a0001_dicom)
    hs = smooth_axial(np.clip(ct.hu, -1100.0, 1500.0), ct.spacing, 1.0)
    bone = rib_cage(hs > 200.0, ct.spacing, slab_mm=RIB_SLAB_MM)
    body = filled_body(~outside_air(ct.hu < -400.0))
    x_mid = float(np.mean(np.nonzero(body.any(axis=(0, 1)))[0]))
    found = 0
    for z in range(ct.hu.shape[0]):
        plain = vertebral_body(bone[z], body[z], ct.spacing[1:], x_mid)
        told = vertebral_body(bone[z], body[z], ct.spacing[1:], x_mid, contrast=True)
        assert (plain is None) == (told is None)
        if plain is not None:
            found += 1
            assert plain[:3] == told[:3] and np.array_equal(plain[3], told[3]), z
    assert found > 50
