"""Learn from corrections: train a small head on the voxels a user checked, label the rest.

The user paints wrong voxels of a result layer and marks the axial slices
they checked with "Confirm current slice". "Learn" reads frozen diffusion
features of the CT with the shipped model, trains a correction head on the
confirmed and painted voxels and writes its labels into every other voxel of
the result layer, in a worker thread (:mod:`diffseglung_core.segment.learn`).
Confirmed slices and painted voxels are never overwritten; the update is one
step of the layer's undo history.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from diffseglung_core.device import DEVICES, device_warning
from diffseglung_core.segment.edits import HandEdits, changed_voxels, confirmed_voxels, merge_prediction
from diffseglung_core.segment.learn import learn_from_corrections

from .._layers import RESULT_KEY, stored_volume
from ._common import Job, LayerComboBox
from .segment import EDITS_KEY

#: Layer metadata key of the head last trained on a result layer.
HEAD_KEY = "diffseglung_correction_head"


class CorrectionsWidget(QWidget):
    """Dock widget: confirm slices, then learn a head from them and relabel the rest.

    Parameters
    ----------
    napari_viewer : napari.Viewer
    model : diffusion model for the features; None (what napari passes) is the
        shipped default model.
    """

    def __init__(self, napari_viewer, parent: Optional[QWidget] = None, *, model=None):
        import napari

        super().__init__(parent)
        self.viewer = napari_viewer
        self.model = model
        self.job: Optional[Job] = None
        self.head = None
        self.confirmed: dict[int, set[int]] = {}  # id(layer) -> confirmed axial slices

        self.image_combo = LayerComboBox(self.viewer, napari.layers.Image)
        self.result_combo = LayerComboBox(self.viewer, napari.layers.Labels)
        self.result_combo.currentIndexChanged.connect(self._show_confirmed)
        self.confirm_btn = QPushButton("Confirm current slice")
        self.confirm_btn.setToolTip("the labels of the axial slice shown are right: learn from them")
        self.confirm_btn.clicked.connect(lambda: self.confirm_slice())
        self.clear_btn = QPushButton("Clear")
        self.clear_btn.clicked.connect(self.clear_confirmed)
        self.confirmed_label = QLabel("")
        self.confirmed_label.setWordWrap(True)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 5000)
        self.steps_spin.setValue(300)
        self.prior_check = QCheckBox("also learn the current result, weakly")
        self.prior_check.setToolTip("keeps classes absent from your corrections")
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICES)
        self.device_warning = QLabel("")
        self.device_warning.setWordWrap(True)
        self.device_warning.setStyleSheet("color: #e0a000")
        self.device_combo.currentTextChanged.connect(
            lambda d: self.device_warning.setText(device_warning(d)))

        self.learn_btn = QPushButton("Learn")
        self.learn_btn.clicked.connect(self.run)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self.cancel)
        self.bar = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("CT", self.image_combo)
        form.addRow("Result", self.result_combo)
        form.addRow("Head steps", self.steps_spin)
        form.addRow("Prior", self.prior_check)
        form.addRow("Device", self.device_combo)
        confirm = QHBoxLayout()
        confirm.addWidget(self.confirm_btn)
        confirm.addWidget(self.clear_btn)
        buttons = QHBoxLayout()
        buttons.addWidget(self.learn_btn)
        buttons.addWidget(self.cancel_btn)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(confirm)
        layout.addWidget(self.confirmed_label)
        layout.addWidget(self.device_warning)
        layout.addLayout(buttons)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self._show_confirmed()

    # -- confirmed slices --------------------------------------------------------
    def slices(self, layer=None) -> list[int]:
        """The axial slices confirmed on ``layer`` (the chosen result layer by default)."""
        layer = self.result_combo.layer() if layer is None else layer
        return sorted(self.confirmed.get(id(layer), ())) if layer is not None else []

    def confirm_slice(self, z: Optional[int] = None) -> Optional[int]:
        """Mark axial slice ``z`` (default: the one shown) of the result layer as checked."""
        layer = self.result_combo.layer()
        if layer is None:
            self.status.setText("choose a result layer first")
            return None
        if z is None:
            z = int(round(float(layer.world_to_data(self.viewer.dims.point)[-3])))
        if not 0 <= z < layer.data.shape[-3]:
            self.status.setText(f"slice {z} is outside the result layer")
            return None
        self.confirmed.setdefault(id(layer), set()).add(int(z))
        self._show_confirmed()
        return int(z)

    def clear_confirmed(self) -> None:
        layer = self.result_combo.layer()
        if layer is not None:
            self.confirmed.pop(id(layer), None)
        self._show_confirmed()

    def _show_confirmed(self, *_) -> None:
        slices = self.slices()
        self.confirmed_label.setText(
            "confirmed slices: " + (", ".join(str(z) for z in slices) if slices else "none"))

    # -- learning ------------------------------------------------------------------
    def _edits(self, layer) -> Optional[HandEdits]:
        edits = layer.metadata.get(EDITS_KEY)
        if edits is None and RESULT_KEY in layer.metadata:
            edits = layer.metadata[EDITS_KEY] = HandEdits(layer.metadata[RESULT_KEY].labels)
        return edits

    def run(self) -> Optional[Job]:
        """Learn from the confirmed and painted voxels in a worker; relabel the rest."""
        image, layer = self.image_combo.layer(), self.result_combo.layer()
        if image is None or layer is None:
            self.status.setText("choose a CT and a result layer first")
            return None
        if image.data.shape != layer.data.shape:
            self.status.setText(f"CT {image.data.shape} and result {layer.data.shape} differ in shape")
            return None
        volume = stored_volume(image.metadata, image.data.shape)
        hu = np.asarray(image.data if volume is None else volume.hu, np.float32)
        shown = np.array(layer.data, copy=True)
        result = layer.metadata.get(RESULT_KEY)
        lung = np.asarray(result.lung) > 0 if result is not None else shown > 0
        edits = self._edits(layer)
        slices = self.slices(layer)
        confirmed = confirmed_voxels(shown, slices, edits=edits, lung=lung)
        if not confirmed.any():
            self.status.setText("paint some voxels or confirm a slice first")
            return None
        options = dict(model=self.model, steps=self.steps_spin.value(),
                       prior=self.prior_check.isChecked(), device=self.device_combo.currentText())

        def work(progress):
            return learn_from_corrections(hu, shown, confirmed, lung, progress=progress, **options)

        self.learn_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.status.setText("starting...")
        self.job = Job(work, lambda out: self._write(layer, edits, slices, *out), bar=self.bar,
                       status=self.status, on_finish=self._finished)
        return self.job.start()

    def cancel(self) -> None:
        if self.job is not None and self.job.running:
            self.job.cancel()

    def _finished(self) -> None:
        self.learn_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)

    def _write(self, layer, edits: Optional[HandEdits], slices: list[int], prediction, head) -> None:
        """Put ``prediction`` into ``layer`` except on confirmed slices and painted voxels."""
        self.head = head
        if layer not in self.viewer.layers:
            self.status.setText("the result layer was removed")
            return
        shown = np.asarray(layer.data)  # strokes painted while learning count too
        out, n_kept = merge_prediction(shown, prediction, slices, edits=edits)
        where, values = changed_voxels(shown, out)
        layer.data_setitem(where, values)  # one undoable step
        layer.metadata[HEAD_KEY] = head
        self.status.setText(f"done: {where[0].size} voxels relabelled, {n_kept} checked voxels kept")
