"""Select and relabel one object: click a mass (or draw a box around it), check the preview, apply.

*Pick* turns the next clicks on the canvas into object prompts: the 3D region
around the clicked voxel whose density is like it (or whose label is the
same), without structures thinner than the minimum thickness (vessels), is
shown as a preview layer (:func:`diffseglung_core.segment.objects.select_object`).
Changing the tolerance, thickness or search radius updates the preview at
once. *Apply* writes the new label into the result layer as one undo step;
the voxels count as painted by hand, so remaps, refinement and learning keep
them.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from diffseglung_core.labels import TISSUE_NAMES, Tissue
from diffseglung_core.segment.objects import CRITERIA, box_from_corners, relabel_object, select_object

from .._layers import ROLE_KEY, labels_layer_data, reference_volume
from ._common import LayerComboBox, done_message
from ._session import apply_step, is_result, session_of

#: (default, low, high, step) of the numeric settings.
SETTINGS = {"hu_tolerance": (250.0, 10.0, 1500.0, 10.0),
            "min_thickness_mm": (6.0, 0.0, 40.0, 0.5),
            "search_radius_mm": (80.0, 5.0, 400.0, 5.0)}


def preview_colormap():
    """Every label drawn in white: the outline of the object stands out over any class colour."""
    from napari.utils.colormaps import DirectLabelColormap

    colors = {value: np.array([1.0, 1.0, 1.0, 1.0], np.float32) for value in TISSUE_NAMES if value}
    colors[None] = np.zeros(4, np.float32)
    return DirectLabelColormap(color_dict=colors)


class ObjectsWidget(QWidget):
    """Dock widget: pick an object by a click or a box, preview it, relabel it in one undo step."""

    def __init__(self, napari_viewer, parent: Optional[QWidget] = None):
        import napari

        super().__init__(parent)
        self.viewer = napari_viewer
        self.seed: Optional[tuple] = None
        self.box = None
        self.selection = None
        self.last_step = None
        self._picking = False
        self._box_layer = None

        self.result_combo = LayerComboBox(self.viewer, napari.layers.Labels, predicate=is_result)
        self.result_combo.currentIndexChanged.connect(self.clear)
        self.criterion_combo = QComboBox()
        self.criterion_combo.addItem("density (HU)", "hu")
        self.criterion_combo.addItem("current label", "label")
        assert tuple(self.criterion_combo.itemData(i) for i in range(2)) == CRITERIA
        self.spins: dict[str, QDoubleSpinBox] = {}
        for name, (default, lo, hi, step) in SETTINGS.items():
            spin = QDoubleSpinBox()
            spin.setRange(lo, hi)
            spin.setSingleStep(step)
            spin.setDecimals(1)
            spin.setValue(default)
            spin.valueChanged.connect(self._schedule)
            self.spins[name] = spin
        self.spins["hu_tolerance"].setSuffix(" HU")
        self.spins["min_thickness_mm"].setSuffix(" mm")
        self.spins["search_radius_mm"].setSuffix(" mm")
        self.spins["min_thickness_mm"].setToolTip("structures thinner than this (vessels, walls) "
                                                  "are left out; 0 keeps the whole connected region")
        self.criterion_combo.currentIndexChanged.connect(self._schedule)
        self.label_combo = QComboBox()
        for value, name in TISSUE_NAMES.items():
            if value:
                self.label_combo.addItem(name, int(value))
        self.label_combo.setCurrentIndex(self.label_combo.findData(int(Tissue.CONSOLIDATION)))
        self.label_combo.currentIndexChanged.connect(self._show_preview)

        self.pick_btn = QPushButton("Pick (click the object)")
        self.pick_btn.setCheckable(True)
        self.pick_btn.toggled.connect(self.set_picking)
        self.box_btn = QPushButton("Box")
        self.box_btn.setToolTip("draw a rectangle around the object on the current slice")
        self.box_btn.clicked.connect(self.start_box)
        self.apply_btn = QPushButton("Apply")
        self.apply_btn.setEnabled(False)
        self.apply_btn.clicked.connect(self.apply)
        self.clear_btn = QPushButton("Clear")
        self.clear_btn.clicked.connect(self.clear)
        self.info = QLabel("click Pick, then click an object in the viewer")
        self.info.setWordWrap(True)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(150)
        self._timer.timeout.connect(self.update_selection)

        form = QFormLayout()
        form.addRow("Result", self.result_combo)
        form.addRow("Like the voxel in", self.criterion_combo)
        form.addRow("HU tolerance", self.spins["hu_tolerance"])
        form.addRow("Min thickness", self.spins["min_thickness_mm"])
        form.addRow("Search radius", self.spins["search_radius_mm"])
        form.addRow("New label", self.label_combo)
        prompts = QHBoxLayout()
        prompts.addWidget(self.pick_btn)
        prompts.addWidget(self.box_btn)
        buttons = QHBoxLayout()
        buttons.addWidget(self.apply_btn)
        buttons.addWidget(self.clear_btn)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(prompts)
        layout.addWidget(self.info)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addStretch(1)

    # -- prompts --------------------------------------------------------------------------
    def set_picking(self, on: bool) -> None:
        """Turn clicks on the canvas into object prompts (the result layer stops painting)."""
        self._picking = bool(on)
        callbacks = self.viewer.mouse_drag_callbacks
        if on and self._on_click not in callbacks:
            callbacks.append(self._on_click)
            layer = self.result_combo.layer()
            if layer is not None:
                layer.mode = "pan_zoom"
        elif not on and self._on_click in callbacks:
            callbacks.remove(self._on_click)
        if self.pick_btn.isChecked() != bool(on):
            self.pick_btn.setChecked(bool(on))

    def _on_click(self, viewer, event):
        if event.type != "mouse_press" or not self._picking:
            return
        layer = self.result_combo.layer()
        if layer is None:
            return
        yield  # a drag pans the view: only a click (press then release, no move) picks
        moved = False
        while event.type == "mouse_move":
            moved = True
            yield
        if not moved:
            self.select_at(layer.world_to_data(event.position))

    def select_at(self, point) -> Optional[object]:
        """Select the object around data point ``point`` (z, y, x) of the result layer."""
        layer = self.result_combo.layer()
        if layer is None:
            self.status.setText("choose a result layer first")
            return None
        point = tuple(int(round(float(p))) for p in tuple(point)[-3:])
        if not all(0 <= p < n for p, n in zip(point, layer.data.shape)):
            self.status.setText("the click is outside the scan")
            return None
        self.seed, self.box = point, None
        return self.update_selection()

    def start_box(self) -> None:
        """Add (or show) a Shapes layer to draw a rectangle around the object."""
        layer = self.result_combo.layer()
        if layer is None:
            self.status.setText("choose a result layer first")
            return
        name = f"{layer.name} object box"
        if name not in self.viewer.layers:
            self._box_layer = self.viewer.add_shapes(
                name=name, ndim=layer.data.ndim, scale=layer.scale, translate=layer.translate,
                edge_color="yellow", face_color="transparent", edge_width=1,
                metadata={ROLE_KEY: "prompt"})
            self._box_layer.events.data.connect(self._box_drawn)
        self._box_layer = self.viewer.layers[name]
        self.viewer.layers.selection.active = self._box_layer
        self._box_layer.mode = "add_rectangle"
        self.set_picking(False)
        self.info.setText("draw a rectangle around the object on this slice")

    def _box_drawn(self, event=None) -> None:
        shapes = self._box_layer
        if shapes is None or len(shapes.data) == 0:
            return
        corners = np.asarray(shapes.data[-1])
        self.select_box(corners.min(0), corners.max(0))

    def select_box(self, lo, hi) -> Optional[object]:
        """Select the object in the box of data corners ``lo``, ``hi`` (z, y, x) of the result layer.

        A box drawn on one slice reaches the search radius up and down.
        """
        layer = self.result_combo.layer()
        if layer is None:
            return None
        session = session_of(layer)
        lo, hi = box_from_corners(lo, hi, layer.data.shape, session.result.spacing,
                                  depth_mm=self.spins["search_radius_mm"].value())
        z = int(round(float(layer.world_to_data(self.viewer.dims.point)[-3])))
        self.box = (lo, hi)
        self.seed = (min(max(z, lo[0]), hi[0]), int((lo[1] + hi[1]) // 2), int((lo[2] + hi[2]) // 2))
        return self.update_selection()

    # -- selection and preview -------------------------------------------------------------
    def settings(self) -> dict:
        """The keyword arguments of ``select_object`` chosen in the widget."""
        out = {name: spin.value() for name, spin in self.spins.items()}
        out["criterion"] = self.criterion_combo.currentData()
        return out

    def _schedule(self, *_):
        if self.seed is not None:
            self._timer.start()

    def update_selection(self):
        """Select again with the current settings and show the preview."""
        layer = self.result_combo.layer()
        if layer is None or self.seed is None:
            return None
        session = session_of(layer)
        result = session.result
        self.selection = select_object(result.hu, self.seed, spacing=result.spacing,
                                       labels=np.asarray(layer.data), box=self.box,
                                       **self.settings())
        self.info.setText(self.selection.message)
        self.apply_btn.setEnabled(not self.selection.empty)
        self._show_preview()
        return self.selection

    def _preview_layer(self, layer):
        name = f"{layer.name} object preview"
        if name in self.viewer.layers:
            return self.viewer.layers[name]
        volume = reference_volume(layer.data.shape, layer.metadata, scale=layer.scale,
                                  translate=layer.translate)
        data, kwargs, _ = labels_layer_data(np.zeros(layer.data.shape, np.uint8), volume, name,
                                            metadata={ROLE_KEY: "preview"})
        kwargs["opacity"] = 1.0
        kwargs["colormap"] = preview_colormap()
        preview = self.viewer.add_labels(data, **kwargs)
        preview.contour = 2
        self.viewer.layers.selection.active = layer
        return preview

    def _show_preview(self, *_):
        layer = self.result_combo.layer()
        if layer is None:
            return
        preview = self._preview_layer(layer)
        preview.data[...] = 0
        sel = self.selection
        if sel is not None and not sel.empty:
            preview.data[sel.box][sel.mask] = self.label_combo.currentData()
        preview.refresh()

    def clear(self, *_) -> None:
        """Forget the prompt and empty the preview."""
        self.seed, self.box, self.selection = None, None, None
        self.apply_btn.setEnabled(False)
        for layer in list(self.viewer.layers):
            if layer.metadata.get(ROLE_KEY) == "preview" and layer.name.endswith("object preview"):
                layer.data[...] = 0
                layer.refresh()
        self.info.setText("click Pick, then click an object in the viewer")

    # -- applying ------------------------------------------------------------------------------
    def apply(self):
        """Relabel the selected object in the result layer: one undo step."""
        layer = self.result_combo.layer()
        if layer is None or self.selection is None or self.selection.empty:
            self.status.setText("pick an object first")
            return None
        label = int(self.label_combo.currentData())
        session = session_of(layer)
        shown = np.asarray(layer.data)
        where, values = relabel_object(shown, self.selection, label)
        step = session.relabel_step(shown, where, values)
        step.message = (f"{step.n_changed} voxels ({self.selection.volume_ml:.1f} mL object) "
                        f"relabelled as {TISSUE_NAMES[label]}; Ctrl+Z undoes it")
        self.last_step = apply_step(layer, step)
        self.status.setText(done_message(step.message))
        self.clear()
        return step
