"""Refine and export: Sobel-Diffusion Fusion with a slice preview; labels, report and PNG out."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from diffseglung_core.io import label_suffixes, write_labels
from diffseglung_core.render import axial_overview, save_png
from diffseglung_core.segment.options import RefineOptions
from diffseglung_core.segment.remap import preview_slice
from diffseglung_core.segment.report import make_report, write_report

from .._layers import RESULT_KEY, labels_layer_data, layer_volume, reference_volume, stored_volume
from . import _common
from ._common import Job, LayerComboBox
from ._forms import OptionForm
from ._relabel import start_relabel
from .segment import EDITS_KEY


def export_paths(stem) -> dict[str, Path]:
    """The files one export writes from a path stem (``out/case1`` -> ``out/case1_labels.nii.gz``)."""
    stem = Path(stem)
    for ending in (*label_suffixes(), ".json", ".csv", ".png"):
        if stem.name.endswith(ending):
            stem = stem.with_name(stem.name[: -len(ending)])
    return {"labels": stem.with_name(stem.name + "_labels.nii.gz"),
            "report": stem.with_name(stem.name + "_report.json"),
            "csv": stem.with_name(stem.name + "_report.csv"),
            "png": stem.with_name(stem.name + "_overview.png")}


class ExportWidget(QWidget):
    """Dock widget: refine a result and write labels (source affine), report and overview."""

    def __init__(self, napari_viewer, parent: Optional[QWidget] = None):
        import napari

        super().__init__(parent)
        self.viewer = napari_viewer
        self.job: Optional[Job] = None
        self.labels_combo = LayerComboBox(self.viewer, napari.layers.Labels)
        self.image_combo = LayerComboBox(self.viewer, napari.layers.Image)

        # refine ------------------------------------------------------------
        self.refine_box = QGroupBox("Sobel-Diffusion Fusion")
        self.refine_box.setCheckable(True)
        self.refine_box.setChecked(True)
        rform = QFormLayout(self.refine_box)
        self.refine_form = OptionForm(RefineOptions, layout=rform)
        self.refine_params = self.refine_form.widgets
        self.preview_btn = QPushButton("Preview slice")
        self.preview_btn.clicked.connect(self.preview)
        self.apply_btn = QPushButton("Apply to volume")
        self.apply_btn.clicked.connect(self.apply_refine)
        row = QHBoxLayout()
        row.addWidget(self.preview_btn)
        row.addWidget(self.apply_btn)
        rform.addRow(row)
        self.bar = QProgressBar()
        rform.addRow(self.bar)

        # export ------------------------------------------------------------
        self.stem_edit = QLineEdit(str(Path.cwd() / "diffseglung"))
        browse = QPushButton("...")
        browse.clicked.connect(self._browse)
        stem_row = QHBoxLayout()
        stem_row.addWidget(self.stem_edit)
        stem_row.addWidget(browse)
        self.want = {key: QCheckBox(text) for key, text in (
            ("labels", "labels (NIfTI, source grid)"), ("report", "report (JSON and CSV)"),
            ("png", "PNG overview"))}
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
    def refine_options(self) -> RefineOptions:
        """The Sobel-Diffusion Fusion parameters chosen."""
        return RefineOptions(**self.refine_form.values())

    def _result_layer(self):
        layer = self.labels_combo.layer()
        if layer is None or RESULT_KEY not in layer.metadata:
            self.status.setText("choose a segmentation result (Segment widget) to refine")
            return None
        return layer

    def preview(self) -> Optional[np.ndarray]:
        """Refine the current axial slice only; show it as a preview layer."""
        layer = self._result_layer()
        if layer is None:
            return None
        result = layer.metadata[RESULT_KEY]
        z = int(self.viewer.dims.current_step[0]) if self.viewer.dims.ndim >= 3 else 0
        z = min(max(z, 0), layer.data.shape[0] - 1)
        refined = preview_slice(result, z, refine=self.refine_box.isChecked(),
                                refine_options=self.refine_options())
        preview = np.zeros(layer.data.shape, np.uint8)
        preview[z] = refined
        name = f"{layer.name} refine preview"
        if name in self.viewer.layers:
            self.viewer.layers[name].data = preview
        else:
            volume = reference_volume(preview.shape, layer.metadata, scale=layer.scale,
                                      translate=layer.translate)
            data, kwargs, _ = labels_layer_data(preview, volume, name)
            self.viewer.add_labels(data, **kwargs)
        changed = int(np.count_nonzero(refined != np.asarray(layer.data[z])))
        self.status.setText(f"preview of slice {z}: {changed} voxels differ from the result")
        return refined

    def apply_refine(self) -> Optional[Job]:
        """Re-label the whole result with these settings (hand edits are kept)."""
        layer = self._result_layer()
        if layer is None:
            return None
        self.job = start_relabel(layer, refine=self.refine_box.isChecked(),
                                 refine_options=self.refine_options(), bar=self.bar,
                                 status=self.status)
        return self.job

    # -- export --------------------------------------------------------------
    def _browse(self):
        path, _ = QFileDialog.getSaveFileName(self, "Export as (name stem)", self.stem_edit.text())
        if path:
            self.stem_edit.setText(path)

    def export(self) -> list[Path]:
        """Write the chosen files; asks before replacing any existing file."""
        labels_layer, image_layer = self.labels_combo.layer(), self.image_combo.layer()
        if labels_layer is None or image_layer is None:
            self.status.setText("choose a label layer and its CT")
            return []
        if labels_layer.data.shape != image_layer.data.shape:
            self.status.setText("the label layer and the CT differ in shape")
            return []
        wanted = {k for k, box in self.want.items() if box.isChecked()}
        if "report" in wanted:
            wanted.add("csv")
        paths = {k: p for k, p in export_paths(self.stem_edit.text()).items() if k in wanted}
        existing = [p for p in paths.values() if p.exists()]
        if existing and not _common.confirm_overwrite(self, ", ".join(str(p) for p in existing)):
            self.status.setText("export cancelled: nothing written")
            return []
        labels = np.asarray(labels_layer.data)
        volume = stored_volume(image_layer.metadata, labels.shape)
        if volume is None:
            volume = layer_volume(labels_layer, hu=image_layer.data)
        written: list[Path] = []
        try:
            if "labels" in paths:
                written.append(write_labels(paths["labels"], labels, volume, overwrite=True))
            if "report" in paths:
                result = labels_layer.metadata.get(RESULT_KEY)
                report = make_report(labels, volume.hu, volume.spacing, source=volume.source.path,
                                     mapping=getattr(result, "mapping", None),
                                     timings=getattr(result, "timings", None),
                                     params=getattr(result, "params", None))
                report["hand_edited_voxels"] = _hand_edited(labels_layer)
                written += list(write_report(report, paths["report"], overwrite=True))
            if "png" in paths:
                written.append(save_png(paths["png"], axial_overview(volume.hu, labels)))
        except Exception as err:  # noqa: BLE001 - shown to the user
            from napari.utils.notifications import show_error

            show_error(f"DiffSegLung: {err}")
            self.status.setText(f"error: {err}")
            return written
        self.status.setText("wrote " + ", ".join(p.name for p in written))
        return written


def _hand_edited(layer) -> int:
    """Voxels of a result layer painted by hand (0 for other layers)."""
    edits = layer.metadata.get(EDITS_KEY)
    if edits is None:
        return 0
    edits.update(np.asarray(layer.data))
    return edits.n_edited
