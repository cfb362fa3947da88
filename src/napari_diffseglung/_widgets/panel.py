"""DiffSegLung: the whole workflow in one dock, one tab per step.

Load -> Segment -> Clusters -> Object -> Learn -> Refine/Export -> Volumes.
Each tab is the step's own widget in a scroll area, so the dock fits a
1920 x 1080 screen whatever is open. The panel also keeps the contrast slider
of every CT layer free to reach the scan's whole HU range.
"""

from __future__ import annotations

from typing import Optional

from qtpy.QtWidgets import QScrollArea, QTabWidget, QVBoxLayout, QWidget

from .._layers import VOLUME_KEY, is_ct_image, unclamp_contrast
from .clusters import ClustersWidget
from .corrections import CorrectionsWidget
from .export import ExportWidget
from .load import LoadCTWidget
from .objects import ObjectsWidget
from .segment import SegmentWidget
from .volumes import VolumesWidget

#: (tab title, widget class, tooltip), in workflow order.
STEPS = (
    ("Load", LoadCTWidget, "open a CT, window presets, lung mask"),
    ("Segment", SegmentWidget, "unsupervised segmentation (engine settings)"),
    ("Clusters", ClustersWidget, "cluster table, label per cluster, refine, reset"),
    ("Object", ObjectsWidget, "click an object (a mass) and relabel it"),
    ("Learn", CorrectionsWidget, "confirm slices, next slice to check, confidence, learn"),
    ("Export", ExportWidget, "refine with a preview; labels, DICOM-SEG, report, PNG"),
    ("Volumes", VolumesWidget, "class volumes, right and left lung"),
)


class DiffSegLungPanel(QWidget):
    """Dock widget: every step of the workflow as a tab."""

    def __init__(self, napari_viewer, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.viewer = napari_viewer
        self.tabs = QTabWidget()
        self.tabs.setUsesScrollButtons(True)
        self.pages: dict[str, QWidget] = {}
        for title, cls, tip in STEPS:
            page = cls(napari_viewer)
            scroll = QScrollArea()
            scroll.setWidget(page)
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QScrollArea.Shape.NoFrame)
            index = self.tabs.addTab(scroll, title)
            self.tabs.setTabToolTip(index, tip)
            self.pages[title] = page
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tabs)
        self.setMinimumWidth(480)
        napari_viewer.layers.events.inserted.connect(self._layer_added)
        for layer in napari_viewer.layers:
            self._unclamp(layer)
        self.pages["Segment"].on_done = lambda: self.show_step("Clusters")

    def page(self, title: str) -> QWidget:
        """The widget of one step (``"Load"``, ``"Segment"``, ...)."""
        return self.pages[title]

    def show_step(self, title: str) -> QWidget:
        """Bring a step's tab to the front."""
        self.tabs.setCurrentIndex(list(self.pages).index(title))
        return self.pages[title]

    def _layer_added(self, event) -> None:
        self._unclamp(event.value)

    @staticmethod
    def _unclamp(layer) -> None:
        if is_ct_image(layer) and VOLUME_KEY in layer.metadata:
            unclamp_contrast(layer)
