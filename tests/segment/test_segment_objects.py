"""Selecting one object from a click: a mass without the vessels touching it."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import ndimage as ndi

from diffseglung_core.segment.objects import relabel_object, select_object

SPACING = (2.0, 0.8, 0.8)


def _scene(shape=(30, 120, 120)):
    """Lung at -850 HU with a 12 mm-radius mass at 30 HU and a 4 mm-wide vessel touching it."""
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[: shape[0], : shape[1], : shape[2]].astype(np.float32)
    zc, yc, xc = shape[0] / 2, 60.0, 50.0
    mm = [(z - zc) * SPACING[0], (y - yc) * SPACING[1], (x - xc) * SPACING[2]]
    mass = mm[0] ** 2 + mm[1] ** 2 + mm[2] ** 2 <= 12.0 ** 2
    # a vessel along x from the mass's surface to the right, 4 mm wide, in the mass's mid-plane
    vessel = (np.abs(mm[0]) <= 2.0) & (np.abs(mm[1]) <= 2.0) & (mm[2] > 0) & (mm[2] <= 45) & ~mass
    hu = np.full(shape, -850.0, np.float32)
    hu[mass] = 30.0
    hu[vessel] = 40.0
    hu += rng.normal(0, 20, shape).astype(np.float32)
    labels = np.ones(shape, np.uint8)
    labels[:, :, :3] = 0  # a strip outside the lung
    return hu, labels, mass, vessel, (int(zc), int(yc), int(xc))


def test_thickness_keeps_the_vessel_out():
    hu, labels, mass, vessel, seed = _scene()
    plain = select_object(hu, seed, spacing=SPACING, labels=labels, min_thickness_mm=0)
    assert (plain.full_mask(hu.shape) & vessel).sum() > 0.5 * vessel.sum()  # it leaks without
    sel = select_object(hu, seed, spacing=SPACING, labels=labels, min_thickness_mm=6)
    found = sel.full_mask(hu.shape)
    assert (found & vessel).sum() <= 0.05 * vessel.sum()
    dice = 2 * (found & mass).sum() / (found.sum() + mass.sum())
    assert dice > 0.95, dice
    assert sel.volume_ml == pytest.approx(found.sum() * np.prod(SPACING) / 1000)
    assert "mL" in sel.message and "healthy 100%" in sel.message


def test_label_criterion_and_lung_limit():
    hu, labels, mass, vessel, seed = _scene()
    labels[mass] = 5
    sel = select_object(hu, seed, spacing=SPACING, labels=labels, criterion="label", min_thickness_mm=0)
    np.testing.assert_array_equal(sel.full_mask(hu.shape), mass & (labels > 0))
    # outside the lung labels there is nothing to select
    out = select_object(hu, (seed[0], seed[1], 1), spacing=SPACING, labels=labels)
    assert out.empty and "no object" in out.message


def test_box_prompt_and_search_edge():
    hu, labels, mass, vessel, seed = _scene()
    zz, yy, xx = np.nonzero(mass)
    box = ((zz.min(), yy.min(), xx.min()), (zz.max(), yy.max(), xx.max()))
    sel = select_object(hu, None, spacing=SPACING, labels=labels, box=box, min_thickness_mm=0)
    found = sel.full_mask(hu.shape)
    inside = np.zeros(hu.shape, bool)
    inside[tuple(slice(a, b + 1) for a, b in zip(*box))] = True
    assert not (found & ~inside).any()  # the box cuts the vessel off
    assert 2 * (found & mass).sum() / (found.sum() + mass.sum()) > 0.95
    small = select_object(hu, seed, spacing=SPACING, labels=labels, search_radius_mm=6,
                          min_thickness_mm=0)
    assert small.at_search_edge and "search radius" in small.message
    with pytest.raises(ValueError):
        select_object(hu, None, spacing=SPACING)
    with pytest.raises(ValueError):
        select_object(hu, seed, spacing=SPACING, criterion="colour")


def test_relabel_object_returns_only_changes():
    hu, labels, mass, vessel, seed = _scene()
    labels[mass & (np.arange(hu.shape[2]) < 50)] = 5  # half the mass is already consolidation
    sel = select_object(hu, seed, spacing=SPACING, labels=labels)
    where, values = relabel_object(labels, sel, 5)
    assert values.dtype == labels.dtype and (values == 5).all()
    assert (labels[where] != 5).all()
    after = labels.copy()
    after[where] = values
    assert (after[sel.full_mask(hu.shape)] == 5).all()
    assert np.array_equal(after[~sel.full_mask(hu.shape)], labels[~sel.full_mask(hu.shape)])
    with pytest.raises(ValueError):
        relabel_object(labels, sel, 0)


def test_phantom_mass_is_found_fast():
    from diffseglung_core.phantom import make_phantom

    ph = make_phantom((40, 192, 192), case="pleural_mass", seed=0)
    spacing = ph.volume.spacing
    seed = np.unravel_index(ndi.distance_transform_edt(ph.mass, sampling=spacing).argmax(), ph.mass.shape)
    t = time.perf_counter()
    sel = select_object(ph.volume.hu, seed, spacing=spacing, labels=ph.labels)
    seconds = time.perf_counter() - t
    found = sel.full_mask(ph.mass.shape)
    dice = 2 * (found & ph.mass).sum() / (found.sum() + ph.mass.sum())
    assert dice > 0.95, dice
    vessels = (ph.labels == 1) & (ph.volume.hu > -400)
    assert (found & vessels).sum() <= 0.01 * found.sum()
    assert seconds < 2.0
