"""Clusters: a table of the GMM clusters and the cluster -> label mapping editor.

Changing a cluster's label in its dropdown re-labels the result layer from the
cached cluster posteriors (:meth:`CorrectionSession.remap`): only the voxels
whose most probable label changes, in well under a second, as one undo step.
The status line says how many voxels changed and, when the density gates or
the structure evidence kept voxels of the cluster from the new label, why.
Voxels painted by hand keep their painted label.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from diffseglung_core.labels import TISSUE_NAMES
from diffseglung_core.segment.engine import label_map
from diffseglung_core.segment.remap import cluster_rows
from diffseglung_core.segment.report import cluster_outcomes, describe_outcome

from ._common import Job, LayerComboBox, done_message
from ._session import apply_step, is_result, on_sync, session_of

COLUMNS = ("cluster", "label", "voxels", "mean HU", "p10 HU", "median HU", "p90 HU")
LABEL_COLUMN = COLUMNS.index("label")


class ClustersWidget(QWidget):
    """Dock widget: cluster statistics and a label dropdown per cluster."""

    def __init__(self, napari_viewer, parent: Optional[QWidget] = None):
        import napari

        super().__init__(parent)
        self.viewer = napari_viewer
        self.rows: list[dict] = []
        self.job: Optional[Job] = None
        self.last_step = None
        self._pending: list[tuple[int, int]] = []
        self.result_combo = LayerComboBox(self.viewer, napari.layers.Labels, predicate=is_result)
        self.result_combo.currentIndexChanged.connect(self.refresh)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setMinimumHeight(200)
        self.force_check = QCheckBox("override gates")
        self.force_check.setToolTip("the new label wins over the density gates and the structure "
                                    "evidence for the cluster you change")
        self.reset_btn = QPushButton("Reset to the engine's labels")
        self.reset_btn.clicked.connect(self.reset)
        self.refine_btn = QPushButton("Refine")
        self.refine_btn.setToolTip("Sobel-Diffusion Fusion of the whole result with the current "
                                   "mapping (one undo step; painted voxels are kept)")
        self.refine_btn.clicked.connect(self.refine)
        self.bar = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Result", self.result_combo)
        buttons = QHBoxLayout()
        buttons.addWidget(self.force_check)
        buttons.addWidget(self.refine_btn)
        buttons.addWidget(self.reset_btn)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        self.viewer.layers.events.inserted.connect(self._maybe_select)
        self.refresh()

    def _layer(self):
        return self.result_combo.layer()

    def _maybe_select(self, event) -> None:
        if is_result(event.value):
            self.result_combo.set_layer(event.value)
            self.refresh()

    @property
    def mapping(self):
        layer = self._layer()
        return session_of(layer).mapping if layer is not None else None

    def refresh(self, *_) -> None:
        """Rebuild the table from the chosen result layer's mapping in force."""
        layer = self._layer()
        self.table.setRowCount(0)
        if layer is None:
            self.rows = []
            self.status.setText("run Segment first")
            return
        session = session_of(layer)
        if not getattr(layer, "_diffseglung_clusters_watch", False):
            on_sync(layer, self._after_undo)
            layer._diffseglung_clusters_watch = True
        mapping = session.mapping
        self.rows = cluster_rows(mapping)
        result = session.result
        final = result.clusters.get("final")
        outcomes = ([{}] * len(self.rows) if final is None else
                    cluster_outcomes(layer.data, result.lung, final, len(self.rows)))
        self.table.setRowCount(len(self.rows))
        for i, row in enumerate(self.rows):
            tip = "; ".join(t for t in (row["flag"], describe_outcome(outcomes[i])) if t)
            cells = {"cluster": f"{row['cluster']}", "voxels": f"{row['voxels']}",
                     "mean HU": f"{row['mean_hu']:.0f}", "p10 HU": f"{row['p10_hu']:.0f}",
                     "median HU": f"{row['median_hu']:.0f}", "p90 HU": f"{row['p90_hu']:.0f}"}
            for column, text in cells.items():
                j = COLUMNS.index(column)
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                item.setToolTip(tip)
                self.table.setItem(i, j, item)
            combo = QComboBox()
            for value, name in TISSUE_NAMES.items():
                if value:
                    combo.addItem(name, int(value))
            combo.setCurrentIndex(combo.findData(row["label"]))
            if row["cluster"] in session.forced:
                combo.setToolTip("gates overridden")
            combo.currentIndexChanged.connect(
                lambda _, c=row["cluster"], box=combo: self.set_label(c, box.currentData()))
            self.table.setCellWidget(i, LABEL_COLUMN, combo)
        self.table.resizeColumnsToContents()
        if not self.status.text() or self.status.text() == "run Segment first":
            self.status.setText(f"{len(self.rows)} clusters")

    def _after_undo(self, layer, what) -> None:
        if layer is self._layer():
            self.refresh()
            self.status.setText("; ".join(what))

    def label_box(self, cluster: int) -> QComboBox:
        """The dropdown of one cluster."""
        return self.table.cellWidget(int(cluster), LABEL_COLUMN)

    # -- remaps ---------------------------------------------------------------------------
    def set_label(self, cluster: int, label: int) -> Optional[Job]:
        """Map ``cluster`` to ``label``: the changed voxels are relabelled (one undo step)."""
        if self._layer() is None:
            return None
        self._pending.append((int(cluster), int(label)))
        return self._kick()

    def _kick(self) -> Optional[Job]:
        """Compute the next pending remap in a worker; one at a time, in order."""
        if self.job is not None and self.job.running:
            return self.job  # its end starts the next one
        layer = self._layer()
        if layer is None or not self._pending:
            return self.job
        cluster, label = self._pending.pop(0)
        session = session_of(layer)
        session.sync(np.asarray(layer.data))
        mapping = session.mapping.with_label(cluster, label)
        forced = set(session.forced)
        if self.force_check.isChecked():
            forced.add(cluster)
        else:
            forced.discard(cluster)

        def work(progress):
            return session.remap(mapping, forced)

        def done(change):
            if layer not in self.viewer.layers:
                return
            step = session.remap_step(np.asarray(layer.data), change, mapping, forced)
            self.last_step = apply_step(layer, step)
            self.status.setText(done_message(f"cluster {cluster} -> {TISSUE_NAMES[label]}: "
                                             + step.message))

        self.job = Job(work, done, bar=self.bar, status=self.status, on_finish=self._next)
        return self.job.start()

    def _next(self) -> None:
        if self._pending:
            self._kick()
        else:
            self.refresh()

    def reset(self) -> Optional[Job]:
        """Back to the engine's mapping and labels (hand edits are kept); one undo step."""
        layer = self._layer()
        if layer is None:
            return None
        session = session_of(layer)

        def work(progress):
            return None

        def done(_):
            step = session.reset_step(np.asarray(layer.data))
            self.last_step = apply_step(layer, step)
            self.status.setText(done_message(step.message))

        self.job = Job(work, done, bar=self.bar, status=self.status, on_finish=self._next)
        return self.job.start()

    def refine(self, refine_options: Optional[dict] = None) -> Optional[Job]:
        """Sobel-Diffusion Fusion of the whole result under the current mapping, in a worker."""
        layer = self._layer()
        if layer is None:
            return None
        self.job = start_refine(layer, refine_options, bar=self.bar, status=self.status,
                                on_done=lambda step: setattr(self, "last_step", step))
        self.job.worker.finished.connect(self._next)
        return self.job


def start_refine(layer, refine_options: Optional[dict] = None, *, refine: bool = True, bar=None,
                 status=None, on_done=None) -> Job:
    """Refine ``layer``'s result under its mapping in a worker; one undo step (painted voxels kept).

    ``refine=False`` writes the plain argmax labels instead.
    """
    session = session_of(layer)
    session.sync(np.asarray(layer.data))
    result = session.result
    options = dict(result.params.get("refine_options", {}) if refine_options is None
                   else refine_options)

    def work(progress):
        return label_map(result, session.posteriors(), result.mapping, refine=refine,
                         refine_options=options, progress=progress)

    def done(labels):
        step = session.replace_step("refine", np.asarray(layer.data), labels)
        step.message = (f"refined: {step.n_changed} voxels changed" if refine
                        else f"argmax labels: {step.n_changed} voxels changed")
        apply_step(layer, step)
        params = dict(session.result.params, refine=bool(refine), refine_options=options)
        session.result.params = params
        if status is not None:
            status.setText(done_message(step.message))
        if on_done is not None:
            on_done(step)

    return Job(work, done, bar=bar, status=status).start()
