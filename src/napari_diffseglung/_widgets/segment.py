"""Segment: run the engine on a CT layer in a worker thread, with progress and cancel."""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from diffseglung_core.device import device_warning, get_device
from diffseglung_core.segment import SegmentOptions, segment_volume
from diffseglung_core.segment.edits import HandEdits
from diffseglung_core.segment.report import ground_glass_caution
from diffseglung_core.segment.session import CorrectionSession

from .._layers import (
    RESULT_KEY,
    cluster_layers,
    is_ct_image,
    is_lung_mask,
    labels_layer_data,
    layer_volume,
    lung_mask_layer_data,
)
from ._common import Job, LayerComboBox, done_message
from ._forms import OptionForm
from ._session import DEFAULT_MAPPING_KEY, EDITS_KEY, attach_session

__all__ = ["SegmentWidget", "EDITS_KEY", "DEFAULT_MAPPING_KEY"]

CHECKPOINT_CHOICES = ("none (weight-free)", "bundled default", "file...")
#: The engine settings shown (defaults, choices and ranges from SegmentOptions) and their labels.
OPTIONS = {"features": "Features", "timesteps": "Timesteps", "k": "Clusters (K)",
           "refine": "Refine", "device": "Device"}


class SegmentWidget(QWidget):
    """Dock widget: choose a CT, a lung mask and engine settings; run in a thread."""

    def __init__(self, napari_viewer, parent: Optional[QWidget] = None):
        import napari

        super().__init__(parent)
        self.viewer = napari_viewer
        self.job: Optional[Job] = None
        self.result_layer = None
        self.on_done = None  # called after a result is shown (the panel shows the next step)

        self.image_combo = LayerComboBox(self.viewer, napari.layers.Image, predicate=is_ct_image)
        self.mask_combo = LayerComboBox(self.viewer, napari.layers.Labels, optional=True,
                                        none_text="(compute it)", predicate=self._mask_fits)
        self.mask_combo.setToolTip("a lung-mask Labels layer, or compute the weight-free mask")
        self.image_combo.currentIndexChanged.connect(self._preselect_mask)
        self.viewer.layers.events.inserted.connect(self._layer_added)
        self._preselect_mask()

        self.checkpoint_combo = QComboBox()
        self.checkpoint_combo.addItems(CHECKPOINT_CHOICES)
        self.checkpoint_combo.currentIndexChanged.connect(self._checkpoint_changed)
        self.checkpoint_path = QLineEdit()
        self.checkpoint_path.setPlaceholderText("checkpoint file (.pt)")
        self.checkpoint_path.setVisible(False)

        form = QFormLayout()
        form.addRow("CT", self.image_combo)
        form.addRow("Lung mask", self.mask_combo)
        form.addRow("Checkpoint", self.checkpoint_combo)
        form.addRow("", self.checkpoint_path)
        self.form = OptionForm(SegmentOptions, list(OPTIONS), labels=OPTIONS, layout=form)
        self.features_combo = self.form.widgets["features"]
        self.timesteps_edit = self.form.widgets["timesteps"]
        self.k_spin = self.form.widgets["k"]
        self.refine_check = self.form.widgets["refine"]
        self.device_combo = self.form.widgets["device"]
        self.device_combo.currentTextChanged.connect(self._device_changed)
        self.device_warning = QLabel("")
        self.device_warning.setWordWrap(True)
        self.device_warning.setStyleSheet("color: #e0a000")

        self.run_btn = QPushButton("Run")
        self.run_btn.clicked.connect(self.run)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_btn)
        buttons.addWidget(self.cancel_btn)
        self.bar = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.device_warning)
        layout.addLayout(buttons)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        layout.addStretch(1)

    # -- layer pickers ----------------------------------------------------------
    def _mask_fits(self, layer) -> bool:
        image = self.image_combo.layer() if hasattr(self, "image_combo") else None
        shape_ok = image is None or tuple(layer.data.shape) == tuple(image.data.shape)
        return is_lung_mask(layer) and shape_ok

    def _preselect_mask(self, *_) -> None:
        """Choose the lung mask of the chosen CT (the one Load CT made) when there is one."""
        self.mask_combo.refresh()
        image = self.image_combo.layer()
        if image is None:
            return
        name = f"{image.name} lung mask"
        if name in self.viewer.layers and self._mask_fits(self.viewer.layers[name]):
            self.mask_combo.set_layer(self.viewer.layers[name])

    def _layer_added(self, event) -> None:
        layer = event.value
        if getattr(layer, "metadata", {}).get("diffseglung_role") == "lung_mask":
            self._preselect_mask()

    # -- settings -------------------------------------------------------------
    def _checkpoint_changed(self, index: int) -> None:
        is_file = CHECKPOINT_CHOICES[index] == "file..."
        self.checkpoint_path.setVisible(is_file)
        if is_file and not self.checkpoint_path.text():
            path, _ = QFileDialog.getOpenFileName(self, "Choose a checkpoint", "",
                                                  "Checkpoints (*.pt *.pth);;All (*)")
            self.checkpoint_path.setText(path)

    def _device_changed(self, device: str) -> None:
        self.device_warning.setText(device_warning(device))

    def options(self) -> SegmentOptions:
        """The engine settings chosen in the widget.

        Raises
        ------
        ValueError
            The timesteps are not whole numbers separated by commas.
        """
        choice = CHECKPOINT_CHOICES[self.checkpoint_combo.currentIndex()]
        checkpoint = {"none (weight-free)": None, "bundled default": "default"}.get(
            choice, self.checkpoint_path.text().strip() or None)
        values = self.form.values()
        if not values["timesteps"]:
            del values["timesteps"]  # an empty field: the default timesteps
        return SegmentOptions(checkpoint=checkpoint, **values)

    # -- running ----------------------------------------------------------------
    def run(self) -> Optional[Job]:
        """Segment the chosen CT in a worker thread; the result becomes a Labels layer."""
        image = self.image_combo.layer()
        if image is None:
            self.status.setText("choose a CT layer first")
            return None
        try:
            options = self.options()
        except ValueError:
            self.status.setText("timesteps must be whole numbers separated by commas")
            return None
        volume = layer_volume(image)
        mask_layer = self.mask_combo.layer()
        lung_mask = None if mask_layer is None else np.asarray(mask_layer.data)
        # the device warning is shown in the widget; the engine runs where it can; each feature
        # set's own clusters are shown as hidden layers
        options = replace(options, device=str(get_device(options.device, warn=False)), cluster_previews=True)

        def work(progress):
            result = segment_volume(volume, options, lung_mask=lung_mask, progress=progress)
            session = CorrectionSession(result)
            session.argmax()  # remaps start from these labels: ready before the first one
            return session

        self.run_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.status.setText("starting...")
        self.job = Job(work, lambda session: self._show(session, image, volume, mask_layer is None),
                       bar=self.bar, status=self.status, on_finish=self._finished)
        return self.job.start()

    def cancel(self) -> None:
        if self.job is not None and self.job.running:
            self.job.cancel()

    def _finished(self) -> None:
        self.run_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)

    def _show(self, session, image, volume, show_mask: bool) -> None:
        result = session.result
        name = f"{image.name} segmentation"
        labels = np.array(result.labels, copy=True)
        for data, kwargs, _ in cluster_layers(result, volume, image.name):
            self._replace_or_add(data, kwargs)
        if show_mask:
            data, kwargs, _ = lung_mask_layer_data(result.lung, volume, f"{image.name} lung mask",
                                                   visible=False)
            self._replace_or_add(data, kwargs)
        for layer in self.viewer.layers:  # helpers out of the way of the result
            if layer.metadata.get("diffseglung_role") == "lung_mask":
                layer.visible = False
        edits = HandEdits(labels)
        previous = self.viewer.layers[name] if name in self.viewer.layers else None
        if previous is not None and EDITS_KEY in previous.metadata \
                and previous.data.shape == labels.shape:
            # a re-run keeps what the user painted on the previous result
            edits = previous.metadata[EDITS_KEY]
            labels = edits.remap(np.asarray(previous.data), labels)
        data, kwargs, _ = labels_layer_data(labels, volume, name, metadata={
            RESULT_KEY: result, EDITS_KEY: edits, DEFAULT_MAPPING_KEY: result.mapping})
        self.result_layer = self._replace_or_add(data, kwargs)
        session.edits = edits
        attach_session(self.result_layer, session)
        self.viewer.layers.selection.active = self.result_layer
        seconds = result.timings.get("total", float("nan"))
        k = result.mapping.n_clusters
        seg = getattr(result, "lung_segmentation", None)
        notes = list(seg.notes) if seg is not None else []  # the lung mask computed here
        caution = ground_glass_caution(result.evidence) if result.evidence is not None else ""
        if caution:
            notes.append(caution)
        self.status.setText("\n".join([done_message(f"{name} in {seconds:.1f} s ({k} clusters)"),
                                        *notes]))
        if self.on_done is not None:
            self.on_done()

    def _replace_or_add(self, data, kwargs):
        name = kwargs["name"]
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        return self.viewer.add_labels(data, **kwargs)
