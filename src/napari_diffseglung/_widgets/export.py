"""Refine and export: Sobel-Diffusion Fusion with a slice preview; labels, report and PNG out."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
from qtpy.QtWidgets import (QCheckBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox,
                            QHBoxLayout, QLabel, QLineEdit, QPushButton, QSpinBox, QVBoxLayout,
                            QWidget)

from diffseglung_core.io import write_labels
from diffseglung_core.render import axial_overview, save_png
from diffseglung_core.viewer_support import VOLUME_KEY, reference_volume

from . import _common
from ._common import LayerComboBox


def export_paths(stem) -> dict[str, Path]:
    """The files one export writes, from a path stem (``out/case1`` -> ``out/case1_labels.nii.gz``...)."""
    stem = Path(stem)
    for ending in (".nii.gz", ".nii", ".json", ".csv", ".png"):
        if stem.name.endswith(ending):
            stem = stem.with_name(stem.name[: -len(ending)])
    return {"labels": stem.with_name(stem.name + "_labels.nii.gz"),
            "json": stem.with_name(stem.name + "_report.json"),
            "csv": stem.with_name(stem.name + "_report.csv"),
            "png": stem.with_name(stem.name + "_overview.png")}


class ExportWidget(QWidget):
    """Dock widget: refine a result and write labels (source affine), report and overview."""

    def __init__(self, napari_viewer, parent: Optional[QWidget] = None):
        import napari

        super().__init__(parent)
        self.viewer = napari_viewer
        self.labels_combo = LayerComboBox(self.viewer, napari.layers.Labels)
        self.image_combo = LayerComboBox(self.viewer, napari.layers.Image)

        # refine ------------------------------------------------------------
        self.refine_box = QGroupBox("Sobel-Diffusion Fusion")
        self.refine_box.setCheckable(True)
        self.refine_box.setChecked(True)
        self.refine_params = self._refine_parameter_widgets()
        rform = QFormLayout(self.refine_box)
        for label, widget in self.refine_params.values():
            rform.addRow(label, widget)
        self.preview_btn = QPushButton("Preview on current slice")
        self.preview_btn.clicked.connect(self.preview)
        self.apply_btn = QPushButton("Apply to volume")
        self.apply_btn.clicked.connect(self.apply_refine)
        row = QHBoxLayout()
        row.addWidget(self.preview_btn)
        row.addWidget(self.apply_btn)
        rform.addRow(row)

        # export ------------------------------------------------------------
        self.stem_edit = QLineEdit(str(Path.cwd() / "diffseglung"))
        browse = QPushButton("...")
        browse.clicked.connect(self._browse)
        stem_row = QHBoxLayout()
        stem_row.addWidget(self.stem_edit)
        stem_row.addWidget(browse)
        self.want = {key: QCheckBox(text) for key, text in (
            ("labels", "labels (NIfTI, source grid)"), ("json", "report (JSON)"),
            ("csv", "report (CSV)"), ("png", "PNG overview"))}
        for box in self.want.values():
            box.setChecked(True)
        self.export_btn = QPushButton("Export")
        self.export_btn.clicked.connect(self.export)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Labels", self.labels_combo)
        form.addRow("CT", self.image_combo)
        eform = QFormLayout()
        eform.addRow("Save as", stem_row)
        for box in self.want.values():
            eform.addRow("", box)
        eform.addRow("", self.export_btn)
        ebox = QGroupBox("Export")
        ebox.setLayout(eform)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.refine_box)
        layout.addWidget(ebox)
        layout.addWidget(self.status)
        layout.addStretch(1)

    # -- refine --------------------------------------------------------------
    def _refine_parameter_widgets(self) -> dict:
        params = {}
        for name, (default, lo, hi, step) in _refine_defaults().items():
            if isinstance(default, int):
                w = QSpinBox()
                w.setRange(int(lo), int(hi))
            else:
                w = QDoubleSpinBox()
                w.setRange(lo, hi)
                w.setSingleStep(step)
                w.setDecimals(3)
            w.setValue(default)
            params[name] = (name.replace("_", " "), w)
        return params

    def refine_kwargs(self) -> dict:
        return {name: w.value() for name, (_, w) in self.refine_params.items()}

    def _inputs(self):
        labels_layer, image_layer = self.labels_combo.layer(), self.image_combo.layer()
        if labels_layer is None or image_layer is None:
            self.status.setText("choose a label layer and its CT")
            return None
        if labels_layer.data.shape != image_layer.data.shape:
            self.status.setText("the label layer and the CT differ in shape")
            return None
        return labels_layer, image_layer

    def preview(self) -> None:
        """Refine the current axial slice only and show it as a preview layer."""
        inputs = self._inputs()
        if inputs is None:
            return
        labels_layer, image_layer = inputs
        z = int(self.viewer.dims.current_step[0]) if self.viewer.dims.ndim >= 3 else 0
        z = min(max(z, 0), labels_layer.data.shape[0] - 1)
        refined = _refine(image_layer.data, labels_layer.data, labels_layer, z=z, **self.refine_kwargs())
        preview = np.zeros_like(labels_layer.data)
        preview[z] = refined
        name = f"{labels_layer.name} refine preview"
        if name in self.viewer.layers:
            self.viewer.layers[name].data = preview
        else:
            from .._layers import labels_layer_data

            volume = reference_volume(preview.shape, labels_layer.metadata,
                                      scale=labels_layer.scale, translate=labels_layer.translate)
            data, kwargs, _ = labels_layer_data(preview, volume, name)
            self.viewer.add_labels(data, **kwargs)
        changed = int(np.count_nonzero(refined != labels_layer.data[z]))
        self.status.setText(f"preview of slice {z}: {changed} voxels change")

    def apply_refine(self) -> None:
        inputs = self._inputs()
        if inputs is None:
            return
        labels_layer, image_layer = inputs
        refined = _refine(image_layer.data, labels_layer.data, labels_layer, **self.refine_kwargs())
        changed = int(np.count_nonzero(refined != labels_layer.data))
        labels_layer.data = refined
        self.status.setText(f"refined: {changed} voxels changed")

    # -- export --------------------------------------------------------------
    def _browse(self):
        path, _ = QFileDialog.getSaveFileName(self, "Export as (name stem)", self.stem_edit.text())
        if path:
            self.stem_edit.setText(path)

    def export(self) -> list[Path]:
        """Write the chosen files; asks before replacing any existing file."""
        inputs = self._inputs()
        if inputs is None:
            return []
        labels_layer, image_layer = inputs
        paths = {k: p for k, p in export_paths(self.stem_edit.text()).items() if self.want[k].isChecked()}
        existing = [p for p in paths.values() if p.exists()]
        if existing and not _common.confirm_overwrite(self, ", ".join(str(p) for p in existing)):
            self.status.setText("export cancelled: nothing written")
            return []
        labels = np.asarray(labels_layer.data)
        volume = image_layer.metadata.get(VOLUME_KEY)
        if volume is None or volume.shape != labels.shape:
            volume = reference_volume(labels.shape, labels_layer.metadata, scale=labels_layer.scale,
                                      translate=labels_layer.translate).with_hu(image_layer.data)
        written = []
        try:
            if "labels" in paths:
                written.append(write_labels(paths["labels"], labels, volume, overwrite=True))
            if "json" in paths or "csv" in paths:
                written += _write_report(paths, volume, labels)
            if "png" in paths:
                written.append(save_png(paths["png"], axial_overview(volume.hu, labels)))
        except Exception as err:  # noqa: BLE001 - shown to the user
            from napari.utils.notifications import show_error

            show_error(f"DiffSegLung: {err}")
            self.status.setText(f"error: {err}")
            return written
        self.status.setText("wrote " + ", ".join(p.name for p in written))
        return written


def _refine_defaults() -> dict:
    """Parameters of the core refinement: name -> (default, min, max, step)."""
    return {}


def _refine(hu, labels, labels_layer, z=None, **params):
    raise NotImplementedError("refinement not wired yet")


def _write_report(paths, volume, labels) -> list[Path]:
    raise NotImplementedError("report not wired yet")
