"""The one-panel workflow: pickers that offer the right layers, the lung mask just made, one dock (Xvfb)."""

from __future__ import annotations

import numpy as np
import pytest

from diffseglung_core.io import write_scan
from diffseglung_core.labels import Tissue
from diffseglung_core.render import WINDOWS
from napari_diffseglung._widgets.panel import STEPS, DiffSegLungPanel

pytestmark = pytest.mark.gui


def _names(combo):
    return [combo.itemText(i) for i in range(combo.count())]


def test_panel_runs_the_workflow_with_sensible_pickers(make_napari_viewer, qtbot, tmp_path, chest):
    viewer = make_napari_viewer()
    panel = DiffSegLungPanel(viewer)
    viewer.window.add_dock_widget(panel, name="DiffSegLung")
    assert [panel.tabs.tabText(i) for i in range(panel.tabs.count())] == [s[0] for s in STEPS]

    load = panel.page("Load")
    hu = np.array(chest.hu, copy=True)
    hu[0, 0, 0] = 1500.0  # a bright voxel (bone, contrast): beyond the lung window
    load.set_path(write_scan(tmp_path / "chest.nii.gz", chest.with_hu(hu)))
    job = load.load()
    qtbot.waitUntil(lambda: job.ended, timeout=30_000)
    ct = viewer.layers["chest"]
    assert tuple(ct.contrast_limits) == WINDOWS["lung"]
    lo, hi = ct.contrast_limits_range  # the slider reaches the whole scan, not only the window
    assert lo <= float(ct.data.min()) and hi >= 1500.0
    assert load.status.text().startswith("done")
    job = load.compute_mask()
    qtbot.waitUntil(lambda: job.ended, timeout=30_000)
    assert "right" in load.status.text() and "left" in load.status.text()

    segment = panel.page("Segment")
    # the lung mask Load CT just made is chosen, not "(compute it)"
    assert segment.mask_combo.layer() is viewer.layers["chest lung mask"]
    segment.features_combo.setCurrentText("density")
    segment.k_spin.setValue(4)
    job = segment.run()
    qtbot.waitUntil(lambda: job.ended, timeout=60_000)
    assert job.outcome == "done", segment.status.text()
    assert panel.tabs.tabText(panel.tabs.currentIndex()) == "Clusters"
    result = viewer.layers["chest segmentation"]
    assert not viewer.layers["chest lung mask"].visible  # helpers out of the way
    assert all(not viewer.layers[n].visible for n in (lay.name for lay in viewer.layers)
               if "clusters" in n)

    # only results where a result is needed, only tissue labels where labels are exported
    for title in ("Clusters", "Object", "Learn"):
        assert _names(panel.page(title).result_combo) == ["chest segmentation"]
    export_labels = _names(panel.page("Export").labels_combo)
    assert "chest segmentation" in export_labels
    assert not any("lung mask" in n or "clusters" in n for n in export_labels)
    assert _names(panel.page("Export").image_combo) == ["chest"]
    # a confidence layer is no CT
    panel.page("Learn").show_confidence()
    assert "chest segmentation confidence" in viewer.layers
    assert _names(panel.page("Segment").image_combo) == ["chest"]

    # per-lung volumes
    volumes = panel.page("Volumes")
    volumes.labels_combo.set_layer(result)
    volumes.refresh()
    rows = {r["label"]: r for r in volumes.rows}
    lung = np.asarray(result.metadata["diffseglung_result"].lung)
    ml = float(np.prod(chest.spacing)) / 1000
    right = sum(r["right_ml"] for r in rows.values())
    assert right == pytest.approx(np.count_nonzero(lung == 1) * ml)
    assert rows[Tissue.HEALTHY]["left_ml"] is not None
    assert "right" in volumes.total.text()
    assert volumes.table.horizontalHeaderItem(3).text() == "right mL"


def test_panel_fits_a_1080p_screen(make_napari_viewer):
    viewer = make_napari_viewer()
    panel = DiffSegLungPanel(viewer)
    viewer.window.add_dock_widget(panel, name="DiffSegLung")
    # every tab scrolls: the dock asks for little height whatever tab is open
    for i in range(panel.tabs.count()):
        panel.tabs.setCurrentIndex(i)
        assert panel.minimumSizeHint().height() < 700, panel.tabs.tabText(i)
    assert panel.sizeHint().width() < 700
