"""Refine and export: Sobel-Diffusion Fusion with a slice preview; labels, report and PNG out."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
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

from .._layers import (
    RESULT_KEY,
    ROLE_KEY,
    is_ct_image,
    is_tissue_labels,
    labels_layer_data,
    layer_volume,
    reference_volume,
    stored_volume,
)
from . import _common
from ._common import Job, LayerComboBox, done_message
from ._forms import OptionForm
from ._session import session_of

#: Label-map formats offered: name -> file ending.
LABEL_FORMATS = {"NIfTI": ".nii.gz", "NRRD": ".nrrd"}


def export_paths(stem, label_format: str = "NIfTI") -> dict[str, Path]:
    """The files one export writes from a path stem (``out/case1`` -> ``out/case1_labels.nii.gz``)."""
    stem = Path(stem)
    for ending in (*label_suffixes(), ".json", ".csv", ".png", ".dcm"):
        if stem.name.endswith(ending):
            stem = stem.with_name(stem.name[: -len(ending)])
    return {"labels": stem.with_name(stem.name + "_labels" + LABEL_FORMATS[label_format]),
            "dicom_seg": stem.with_name(stem.name + "_seg.dcm"),
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
        self.labels_combo = LayerComboBox(self.viewer, napari.layers.Labels,
                                          predicate=is_tissue_labels)
        self.image_combo = LayerComboBox(self.viewer, napari.layers.Image, predicate=is_ct_image)
        self.labels_combo.currentIndexChanged.connect(self._dicom_possible)
        self.image_combo.currentIndexChanged.connect(self._dicom_possible)

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
            ("labels", "labels (source grid)"), ("dicom_seg", "DICOM-SEG (of the source DICOM)"),
            ("report", "report (JSON and CSV)"), ("png", "PNG overview"))}
        for box in self.want.values():
            box.setChecked(True)
        self.format_combo = QComboBox()
        self.format_combo.addItems(list(LABEL_FORMATS))
        self.export_btn = QPushButton("Export")
        self.export_btn.clicked.connect(self.export)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Labels", self.labels_combo)
        form.addRow("CT", self.image_combo)
        eform = QFormLayout()
        eform.addRow("Save as", stem_row)
        labels_row = QHBoxLayout()
        labels_row.addWidget(self.want["labels"])
        labels_row.addWidget(self.format_combo)
        eform.addRow("", labels_row)
        for key in ("dicom_seg", "report", "png"):
            eform.addRow("", self.want[key])
        eform.addRow("", self.export_btn)
        ebox = QGroupBox("Export")
        ebox.setLayout(eform)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.refine_box)
        layout.addWidget(ebox)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self._dicom_possible()

    def _dicom_possible(self, *_) -> None:
        """DICOM-SEG needs a CT read from DICOM: the box is off (and says why) otherwise."""
        image = self.image_combo.layer()
        volume = stored_volume(image.metadata, image.data.shape) if image is not None else None
        ok = volume is not None and volume.source.format == "dicom"
        box = self.want["dicom_seg"]
        box.setEnabled(ok)
        if not ok:
            box.setChecked(False)
        box.setToolTip("" if ok else "needs a CT read from DICOM (a folder, zip or .dcm)")

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
            data, kwargs, _ = labels_layer_data(preview, volume, name,
                                                metadata={ROLE_KEY: "preview"})
            added = self.viewer.add_labels(data, **kwargs)
            # below the result: hide the result to compare, the preview never hides it
            self.viewer.layers.move(self.viewer.layers.index(added), self.viewer.layers.index(layer))
            self.viewer.layers.selection.active = layer
        changed = int(np.count_nonzero(refined != np.asarray(layer.data[z])))
        self.status.setText(f"preview of slice {z} (layer '{name}', under the result): "
                            f"{changed} voxels differ from the result")
        return refined

    def apply_refine(self) -> Optional[Job]:
        """Re-label the whole result with these settings: one undo step (hand edits are kept)."""
        from .clusters import start_refine

        layer = self._result_layer()
        if layer is None:
            return None
        name = f"{layer.name} refine preview"

        def done(step):
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)

        self.job = start_refine(layer, self.refine_options().to_dict(),
                                refine=self.refine_box.isChecked(), bar=self.bar,
                                status=self.status, on_done=done)
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
        wanted = {k for k, box in self.want.items() if box.isChecked() and box.isEnabled()}
        if "report" in wanted:
            wanted.add("csv")
        paths = {k: p for k, p in export_paths(self.stem_edit.text(),
                                                self.format_combo.currentText()).items()
                 if k in wanted}
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
            if "dicom_seg" in paths:
                from diffseglung_core.io.dicom_seg import write_dicom_seg

                written.append(write_dicom_seg(paths["dicom_seg"], labels, volume, overwrite=True))
            if "report" in paths:
                result = labels_layer.metadata.get(RESULT_KEY)
                report = make_report(labels, volume.hu, volume.spacing, source=volume.source.path,
                                     patient_position=volume.source.metadata.get("patient_position", ""),
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
        folder = written[0].parent if written else ""
        self.status.setText(done_message(f"wrote {', '.join(p.name for p in written)} in {folder}"))
        return written


def _hand_edited(layer) -> int:
    """Voxels of a result layer painted by hand (0 for other layers)."""
    session = session_of(layer)
    if session is None:
        return 0
    session.sync(np.asarray(layer.data))
    session.edits.update(np.asarray(layer.data))
    return session.edits.n_edited
