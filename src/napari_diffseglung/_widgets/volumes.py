"""Class volumes: a per-class table (mL, % of lung) and a bar chart of a label layer."""

from __future__ import annotations

from typing import Optional

import numpy as np
from qtpy.QtCore import QRectF, Qt, QTimer
from qtpy.QtGui import QColor, QPainter
from qtpy.QtWidgets import (
    QFormLayout,
    QLabel,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from diffseglung_core.labels import TISSUE_COLORS
from diffseglung_core.segment.sides import class_volumes_by_side

from .._layers import RESULT_KEY, is_lung_mask, is_tissue_labels
from ._common import LayerComboBox

_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter


class BarChart(QWidget):
    """Horizontal bars, one per class, in the class colours (percent of lung)."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.rows: list[dict] = []
        self.setMinimumHeight(130)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def set_rows(self, rows: list[dict]) -> None:
        self.rows = rows
        self.update()

    def paintEvent(self, event):  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        n = max(len(self.rows), 1)
        h = self.height() / n
        name_w = min(150.0, self.width() * 0.4)
        text_color = self.palette().windowText().color()
        top = max((r["percent_of_lung"] for r in self.rows), default=0) or 1.0
        for i, row in enumerate(self.rows):
            y = i * h
            painter.setPen(text_color)
            painter.drawText(QRectF(0, y, name_w - 6, h), Qt.AlignmentFlag.AlignRight |
                             Qt.AlignmentFlag.AlignVCenter, row["name"])
            room = self.width() - name_w - 60
            width = max(room * row["percent_of_lung"] / top, 1.0)
            bar = QRectF(name_w, y + 0.2 * h, width, 0.6 * h)
            r, g, b, _ = TISSUE_COLORS.get(row["label"], (0.6, 0.6, 0.6, 1.0))
            painter.fillRect(bar, QColor.fromRgbF(r, g, b))
            painter.drawText(QRectF(bar.right() + 4, y, 60, h), Qt.AlignmentFlag.AlignLeft |
                             Qt.AlignmentFlag.AlignVCenter, f"{row['percent_of_lung']:.1f}%")
        painter.end()


class VolumesWidget(QWidget):
    """Dock widget: volume of each tissue class of a Labels layer, updated as it changes."""

    COLUMNS = ("class", "mL", "% of lung", "right mL", "left mL")

    def __init__(self, napari_viewer, parent: Optional[QWidget] = None):
        import napari

        super().__init__(parent)
        self.viewer = napari_viewer
        self.rows: list[dict] = []
        self._watched = None
        self.labels_combo = LayerComboBox(self.viewer, napari.layers.Labels,
                                          predicate=is_tissue_labels)
        self.labels_combo.currentIndexChanged.connect(self._watch)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setMinimumHeight(180)
        self.chart = BarChart()
        self.total = QLabel("")
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(150)
        self._timer.timeout.connect(self.refresh)

        form = QFormLayout()
        form.addRow("Labels", self.labels_combo)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.table)
        layout.addWidget(self.chart)
        layout.addWidget(self.total)
        self._watch()

    def _watch(self, *_):
        if self._watched is not None:
            for name in ("data", "paint", "set_data"):
                ev = getattr(self._watched.events, name, None)
                if ev is not None:
                    ev.disconnect(self._schedule)
        self._watched = self.labels_combo.layer()
        if self._watched is not None:
            for name in ("data", "paint", "set_data"):
                ev = getattr(self._watched.events, name, None)
                if ev is not None:
                    ev.connect(self._schedule)
        self.refresh()

    def _schedule(self, *_):
        self._timer.start()

    def _sides(self, layer):
        """The right/left lung mask of a label layer: its result's, or a lung-mask layer's."""
        result = layer.metadata.get(RESULT_KEY)
        if result is not None and tuple(result.lung.shape) == tuple(layer.data.shape):
            return result.lung
        for other in self.viewer.layers:
            if is_lung_mask(other) and other.metadata.get("diffseglung_role") == "lung_mask" \
                    and other.data.shape == layer.data.shape:
                return other.data
        return None

    def refresh(self) -> None:
        """Recompute the table and chart from the chosen layer."""
        layer = self.labels_combo.layer()
        if layer is None or layer.data.ndim != 3:
            self.rows = []
        else:
            self.rows = class_volumes_by_side(np.asarray(layer.data), layer.scale[-3:],
                                              self._sides(layer))
        self.table.setRowCount(len(self.rows))

        def ml(value):
            return "-" if value is None else f"{value:.1f}"

        for i, row in enumerate(self.rows):
            cells = (row["name"], f"{row['volume_ml']:.1f}", f"{row['percent_of_lung']:.1f}",
                     ml(row["right_ml"]), ml(row["left_ml"]))
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if j:
                    item.setTextAlignment(_RIGHT)
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        self.chart.set_rows(self.rows)
        lung = sum(r["volume_ml"] for r in self.rows)
        text = f"lung: {lung:.1f} mL" if self.rows else "choose a label layer"
        if self.rows and self.rows[0]["right_ml"] is not None:
            right = sum(r["right_ml"] for r in self.rows)
            left = sum(r["left_ml"] or 0.0 for r in self.rows)
            text += f" (right {right:.1f} mL, left {left:.1f} mL)"
        self.total.setText(text)
