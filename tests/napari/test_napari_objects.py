"""Select a mass-like object by a click, relabel it as consolidation, undo it (Xvfb)."""

from __future__ import annotations

import time
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import ndimage as ndi

from diffseglung_core.labels import Tissue
from diffseglung_core.segment import segment_volume
from napari_diffseglung._layers import RESULT_KEY, image_layer_data, labels_layer_data
from napari_diffseglung._widgets.objects import ObjectsWidget
from napari_diffseglung._widgets.segment import DEFAULT_MAPPING_KEY, EDITS_KEY

pytestmark = pytest.mark.gui
phantom_mod = pytest.importorskip("diffseglung_core.phantom")


@pytest.fixture(scope="module")
def mass_phantom():
    return phantom_mod.make_phantom((40, 192, 192), case="pleural_mass", seed=0)


def _click(viewer, world):
    """A press and a release at the same world point, through the viewer's mouse callbacks."""
    from napari.utils._proxies import ReadOnlyWrapper
    from napari.utils.interactions import mouse_press_callbacks, mouse_release_callbacks

    def event(kind):
        return ReadOnlyWrapper(SimpleNamespace(type=kind, position=tuple(world), is_dragging=False,
                                               modifiers=[], view_direction=None,
                                               dims_displayed=(1, 2), dims_point=tuple(world)))

    mouse_press_callbacks(viewer, event("mouse_press"))
    mouse_release_callbacks(viewer, event("mouse_release"))


def test_click_the_mass_and_relabel_it(make_napari_viewer, qtbot, mass_phantom):
    ph = mass_phantom
    volume = ph.volume
    viewer = make_napari_viewer()
    data, kwargs, _ = image_layer_data(volume, "phantom")
    viewer.add_image(data, **kwargs)
    # a result that calls the mass (and every dense voxel) ground glass: a wrong label
    result = segment_volume(volume, lung_mask=ph.lung, features="density", k=5, refine=False)
    wrong = np.array(result.labels, copy=True)
    wrong[ph.mass] = Tissue.GGO
    result = replace(result, labels=wrong)
    data, kwargs, _ = labels_layer_data(wrong.copy(), volume, "phantom segmentation", metadata={
        RESULT_KEY: result, DEFAULT_MAPPING_KEY: result.mapping})
    layer = viewer.add_labels(data, **kwargs)
    widget = ObjectsWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.result_combo.layer() is layer
    assert widget.label_combo.currentData() == Tissue.CONSOLIDATION  # the default new label

    # the radiologist clicks the middle of the mass
    seed = np.unravel_index(ndi.distance_transform_edt(ph.mass, sampling=volume.spacing).argmax(),
                            ph.mass.shape)
    viewer.dims.set_point(0, layer.data_to_world(seed)[0])
    widget.pick_btn.setChecked(True)
    assert layer.mode == "pan_zoom"
    t = time.perf_counter()
    _click(viewer, layer.data_to_world(seed))
    seconds = time.perf_counter() - t
    sel = widget.selection
    assert sel is not None and sel.seed == tuple(int(s) for s in seed)
    found = sel.full_mask(ph.mass.shape)
    assert 2 * (found & ph.mass).sum() / (found.sum() + ph.mass.sum()) > 0.95
    assert seconds < 2.0
    preview = viewer.layers["phantom segmentation object preview"]
    assert np.array_equal(preview.data > 0, found)
    assert "mL" in widget.info.text() and "ground-glass opacity" in widget.info.text()
    # a live setting change updates the preview
    widget.spins["min_thickness_mm"].setValue(0.0)
    qtbot.waitUntil(lambda: widget.selection is not sel, timeout=5000)
    widget.spins["min_thickness_mm"].setValue(6.0)
    qtbot.waitUntil(lambda: widget.selection.spacing and widget._timer.isActive() is False, timeout=5000)

    before = np.array(layer.data, copy=True)
    step = widget.apply()
    after = np.asarray(layer.data)
    assert (after[found] == Tissue.CONSOLIDATION).all()
    assert np.array_equal(after[~found], before[~found])  # vessels and the rest untouched
    # dense healthy voxels (vessels): none more than 3 mm (or one voxel) from the mass changes,
    # and the few at its surface (partial volume of the mass's edge) are under 1 % of the object
    vessels = (ph.labels == Tissue.HEALTHY) & (volume.hu > -400)
    near = ndi.distance_transform_edt(~ph.mass, sampling=volume.spacing) <= 3.0
    near |= ndi.binary_dilation(ph.mass, np.ones((3, 3, 3), bool))  # the next slice is 7.5 mm off
    assert np.array_equal(after[vessels & ~near], before[vessels & ~near])
    assert np.count_nonzero(after[vessels] != before[vessels]) <= 0.01 * found.sum()
    assert step.n_changed == int((before[found] != Tissue.CONSOLIDATION).sum())
    assert widget.status.text().startswith("done") and "Ctrl+Z" in widget.status.text()
    assert not preview.data.any()
    # the object counts as painted by hand
    edits = layer.metadata[EDITS_KEY]
    edits.update(after)
    assert edits.mask[found & (before != Tissue.CONSOLIDATION)].all()
    # one undo step back, one redo step forward
    layer.undo()
    assert np.array_equal(layer.data, before)
    layer.redo()
    assert np.array_equal(layer.data, after)
    widget.set_picking(False)
    assert widget._on_click not in viewer.mouse_drag_callbacks


def test_box_prompt_selects_inside_the_box(make_napari_viewer, mass_phantom):
    ph = mass_phantom
    volume = ph.volume
    viewer = make_napari_viewer()
    result = segment_volume(volume, lung_mask=ph.lung, features="density", k=5, refine=False)
    data, kwargs, _ = labels_layer_data(np.array(result.labels), volume, "seg",
                                        metadata={RESULT_KEY: result})
    layer = viewer.add_labels(data, **kwargs)
    widget = ObjectsWidget(viewer)
    zz, yy, xx = np.nonzero(ph.mass)
    z = int(np.median(zz))
    viewer.dims.set_point(0, layer.data_to_world((z, 0, 0))[0])
    widget.start_box()
    shapes = viewer.layers["seg object box"]
    assert shapes.mode == "add_rectangle"
    y0, y1, x0, x1 = yy.min() - 2, yy.max() + 2, xx.min() - 2, xx.max() + 2
    shapes.add_rectangles(np.array([[z, y0, x0], [z, y0, x1], [z, y1, x1], [z, y1, x0]], float))
    sel = widget.selection
    assert sel is not None
    found = sel.full_mask(ph.mass.shape)
    assert 2 * (found & ph.mass).sum() / (found.sum() + ph.mass.sum()) > 0.9
