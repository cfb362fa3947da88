"""Clusters: a table of the GMM clusters and the cluster -> label mapping editor.

Changing a cluster's label in its dropdown re-labels the result layer at once
from the cached cluster posteriors (no feature is recomputed). Voxels painted
by hand on the result layer keep their painted label across every re-mapping.
"""

from __future__ import annotations

from typing import Optional

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from diffseglung_core.labels import TISSUE_NAMES
from diffseglung_core.segment.remap import cluster_rows

from .._layers import RESULT_KEY
from ._common import Job, LayerComboBox
from ._relabel import start_relabel
from .segment import DEFAULT_MAPPING_KEY

COLUMNS = ("cluster", "voxels", "mean HU", "p10 HU", "median HU", "p90 HU", "label")


class ClustersWidget(QWidget):
    """Dock widget: cluster statistics and a label dropdown per cluster."""

    def __init__(self, napari_viewer, parent: Optional[QWidget] = None):
        import napari

        super().__init__(parent)
        self.viewer = napari_viewer
        self.rows: list[dict] = []
        self.mapping = None  # the mapping asked for; the layer catches up in a worker
        self.job: Optional[Job] = None
        self.result_combo = LayerComboBox(self.viewer, napari.layers.Labels,
                                          predicate=lambda layer: RESULT_KEY in layer.metadata)
        self.result_combo.currentIndexChanged.connect(self.refresh)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setMinimumHeight(240)
        self.reset_btn = QPushButton("Reset to HU-guided default")
        self.reset_btn.clicked.connect(self.reset)
        self.bar = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Result", self.result_combo)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.table)
        layout.addWidget(self.reset_btn)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        self.viewer.layers.events.inserted.connect(self._maybe_select)
        self.refresh()

    def _layer(self):
        return self.result_combo.layer()

    def _maybe_select(self, event) -> None:
        if RESULT_KEY in getattr(event.value, "metadata", {}):
            self.result_combo.set_layer(event.value)
            self.refresh()

    def refresh(self, *_) -> None:
        """Rebuild the table from the chosen result layer."""
        layer = self._layer()
        self.table.setRowCount(0)
        if layer is None:
            self.rows = []
            self.status.setText("run Segment first")
            return
        mapping = self.mapping = layer.metadata[RESULT_KEY].mapping
        self.rows = cluster_rows(mapping)
        self.table.setRowCount(len(self.rows))
        for i, row in enumerate(self.rows):
            cells = (f"{row['cluster']}", f"{row['voxels']}", f"{row['mean_hu']:.0f}",
                     f"{row['p10_hu']:.0f}", f"{row['median_hu']:.0f}", f"{row['p90_hu']:.0f}")
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if row["flag"]:
                    item.setToolTip(row["flag"])
                self.table.setItem(i, j, item)
            combo = QComboBox()
            for value, name in TISSUE_NAMES.items():
                combo.addItem(name, int(value))
            combo.setCurrentIndex(combo.findData(row["label"]))
            combo.currentIndexChanged.connect(
                lambda _, c=row["cluster"], box=combo: self.set_label(c, box.currentData()))
            self.table.setCellWidget(i, len(COLUMNS) - 1, combo)
        self.table.resizeColumnsToContents()
        self.status.setText(f"{len(self.rows)} clusters")

    def label_box(self, cluster: int) -> QComboBox:
        """The dropdown of one cluster."""
        return self.table.cellWidget(int(cluster), len(COLUMNS) - 1)

    def set_label(self, cluster: int, label: int) -> Optional[Job]:
        """Map ``cluster`` to ``label``; the result layer is re-labelled in a worker."""
        if self._layer() is None or self.mapping is None:
            return None
        self.mapping = self.mapping.with_label(int(cluster), int(label))
        return self._kick()

    def reset(self) -> Optional[Job]:
        """Go back to the HU-guided default mapping (hand edits are kept)."""
        layer = self._layer()
        if layer is None:
            return None
        self.mapping = layer.metadata.get(DEFAULT_MAPPING_KEY, layer.metadata[RESULT_KEY].mapping)
        for row, label in zip(self.rows, self.mapping.labels):
            box = self.label_box(row["cluster"])
            box.blockSignals(True)
            box.setCurrentIndex(box.findData(int(label)))
            box.blockSignals(False)
        return self._kick()

    def _kick(self) -> Optional[Job]:
        """Re-label with ``self.mapping``, one job at a time (the latest request wins)."""
        if self.job is not None and self.job.running:
            return self.job  # its end starts the next run
        layer = self._layer()
        wanted = self.mapping

        def done(updated, edits):
            kept = f"; {edits.n_edited} hand-edited voxels kept" if edits.n_edited else ""
            self.status.setText(f"{len(self.rows)} clusters{kept}")

        def finished():
            if self.mapping is not wanted and self._layer() is layer:
                self._kick()

        self.job = start_relabel(layer, mapping=wanted, bar=self.bar, status=self.status,
                                 on_done=done)
        self.job.worker.finished.connect(finished)
        return self.job
