"""Clusters: a table of the GMM clusters and the cluster -> label mapping editor.

Changing a cluster's label in its dropdown re-labels the result layer at once
from the cached clusters (no feature is recomputed). Voxels painted by hand on
the result layer keep their painted label across every re-mapping.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (QComboBox, QFormLayout, QLabel, QPushButton, QTableWidget,
                            QTableWidgetItem, QVBoxLayout, QWidget)

from diffseglung_core.labels import TISSUE_NAMES
from diffseglung_core.viewer_support import VOLUME_KEY, HandEdits, cluster_table

from .. import _engine
from .._layers import RESULT_KEY
from ._common import LayerComboBox
from .segment import EDITS_KEY

COLUMNS = ("cluster", "voxels", "mean HU", "p5 HU", "p50 HU", "p95 HU", "label")


class ClustersWidget(QWidget):
    """Dock widget: cluster statistics and a label dropdown per cluster."""

    def __init__(self, napari_viewer, parent: Optional[QWidget] = None):
        import napari

        super().__init__(parent)
        self.viewer = napari_viewer
        self.mapping: dict[int, int] = {}
        self.rows: list[dict] = []
        self.result_combo = LayerComboBox(self.viewer, napari.layers.Labels,
                                          predicate=lambda layer: RESULT_KEY in layer.metadata)
        self.result_combo.currentIndexChanged.connect(self.refresh)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.reset_btn = QPushButton("Reset to HU-guided default")
        self.reset_btn.clicked.connect(self.reset)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Result", self.result_combo)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.table)
        layout.addWidget(self.reset_btn)
        layout.addWidget(self.status)
        self.refresh()

    def _layer(self):
        return self.result_combo.layer()

    def refresh(self, *_) -> None:
        """Rebuild the table from the chosen result layer."""
        layer = self._layer()
        self.table.setRowCount(0)
        if layer is None:
            self.rows, self.mapping = [], {}
            self.status.setText("run Segment first")
            return
        result = layer.metadata[RESULT_KEY]
        volume = layer.metadata.get(VOLUME_KEY)
        self.mapping = _engine.current_mapping(result)
        hu = volume.hu if volume is not None else np.zeros(layer.data.shape, np.float32)
        self.rows = cluster_table(hu, _engine.result_clusters(result), self.mapping)
        self.table.setRowCount(len(self.rows))
        for i, row in enumerate(self.rows):
            cells = (f"{row['cluster']}", f"{row['voxels']}", f"{row['mean_hu']:.0f}",
                     f"{row['p5_hu']:.0f}", f"{row['p50_hu']:.0f}", f"{row['p95_hu']:.0f}")
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(i, j, item)
            combo = QComboBox()
            for value, name in TISSUE_NAMES.items():
                combo.addItem(name, int(value))
            combo.setCurrentIndex(combo.findData(row["label"]))
            combo.currentIndexChanged.connect(
                lambda _, c=row["cluster"], box=combo: self.set_label(c, box.currentData()))
            self.table.setCellWidget(i, len(COLUMNS) - 1, combo)
        self.table.resizeColumnsToContents()
        edits = layer.metadata.get(EDITS_KEY)
        self.status.setText(f"{len(self.rows)} clusters" +
                            (f"; {edits.n_edited} voxels edited by hand" if edits and edits.n_edited else ""))

    def label_box(self, cluster: int) -> QComboBox:
        """The dropdown of one cluster (for scripts and tests)."""
        row = next(i for i, r in enumerate(self.rows) if r["cluster"] == cluster)
        return self.table.cellWidget(row, len(COLUMNS) - 1)

    def set_label(self, cluster: int, label: int) -> None:
        """Map ``cluster`` to ``label`` and update the result layer at once."""
        mapping = dict(self.mapping)
        mapping[int(cluster)] = int(label)
        self._apply(mapping)

    def reset(self) -> None:
        """Go back to the HU-guided default mapping (hand edits are kept)."""
        layer = self._layer()
        if layer is not None:
            self._apply(_engine.default_mapping(layer.metadata[RESULT_KEY]))
            self.refresh()

    def _apply(self, mapping: dict[int, int]) -> None:
        layer = self._layer()
        if layer is None:
            return
        result = layer.metadata[RESULT_KEY]
        edits = layer.metadata.setdefault(EDITS_KEY, HandEdits(layer.data))
        try:
            auto = _engine.remap(result, mapping)
        except Exception as err:  # noqa: BLE001 - shown to the user
            from napari.utils.notifications import show_error

            show_error(f"DiffSegLung: {err}")
            return
        layer.data = edits.remap(np.asarray(layer.data), auto)
        layer.metadata[RESULT_KEY] = _engine.with_mapping(result, mapping)
        self.mapping = dict(mapping)
        for row in self.rows:
            row["label"] = self.mapping.get(row["cluster"], row["label"])
            row["label_name"] = TISSUE_NAMES.get(row["label"], str(row["label"]))
        kept = f"; {edits.n_edited} hand-edited voxels kept" if edits.n_edited else ""
        self.status.setText(f"{len(self.rows)} clusters{kept}")
