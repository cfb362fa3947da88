"""Load CT: open a file, DICOM folder or zip, show what was read, window presets, lung mask."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

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

from diffseglung_core.describe import describe_volume
from diffseglung_core.gravity import POSITIONS
from diffseglung_core.io import label_suffixes, list_dicom_series, read_mask, read_scan, scan_suffixes
from diffseglung_core.lung import lung_volumes_ml, segment_scan_lungs
from diffseglung_core.render import WINDOWS

from .._layers import (
    POSITION_KEY,
    VOLUME_KEY,
    image_layer_data,
    is_ct_image,
    layer_volume,
    lung_mask_layer_data,
    pleural_layer_data,
    unclamp_contrast,
)
from ._common import Job, LayerComboBox, done_message


def describe_shape(volume) -> str:
    """``64 x 512 x 512, 5 x 0.84 x 0.84 mm``."""
    size = " x ".join(str(n) for n in volume.shape)
    mm = " x ".join(f"{s:.3g}" for s in volume.spacing)
    return f"{size}, {mm} mm"


def _patterns(suffixes) -> str:
    return " ".join(f"*{s}" for s in suffixes)


class LoadCTWidget(QWidget):
    """Dock widget: read a scan into an Image layer in HU and make its lung mask."""

    def __init__(self, napari_viewer, parent: Optional[QWidget] = None):
        import napari

        super().__init__(parent)
        self.viewer = napari_viewer
        self.job: Optional[Job] = None
        self.mask_layer = None

        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("NIfTI, NRRD, NPZ, DICOM folder or .zip")
        self.path_edit.editingFinished.connect(self._path_changed)
        file_btn = QPushButton("File...")
        file_btn.clicked.connect(self._pick_file)
        folder_btn = QPushButton("Folder...")
        folder_btn.clicked.connect(self._pick_folder)
        row = QHBoxLayout()
        row.addWidget(self.path_edit)
        row.addWidget(file_btn)
        row.addWidget(folder_btn)

        self.series_combo = QComboBox()
        self.series_combo.setEnabled(False)
        self.load_btn = QPushButton("Load")
        self.load_btn.clicked.connect(self.load)

        self.image_combo = LayerComboBox(self.viewer, napari.layers.Image, predicate=is_ct_image)
        self.image_combo.currentIndexChanged.connect(self._show_info)
        self.info = QLabel("no scan loaded")
        self.info.setWordWrap(True)
        self.window_combo = QComboBox()
        self.window_combo.addItems(list(WINDOWS))
        self.window_combo.currentTextChanged.connect(self.apply_window)
        # how the patient lay: the rules for dependent lung follow it (NIfTI does not store it)
        self.position_combo = QComboBox()
        self.position_combo.addItem("as the scan says (supine if unknown)", "")
        for code in ("HFS", "HFP", "HFDR", "HFDL"):
            self.position_combo.addItem(f"{POSITIONS[code][0]} ({code})", code)
        self.position_combo.currentIndexChanged.connect(self.apply_position)

        self.mask_btn = QPushButton("Compute lung mask")
        self.mask_btn.clicked.connect(self.compute_mask)
        self.load_mask_btn = QPushButton("Load mask...")
        self.load_mask_btn.clicked.connect(self._pick_mask)
        mask_row = QHBoxLayout()
        mask_row.addWidget(self.mask_btn)
        mask_row.addWidget(self.load_mask_btn)

        self.bar = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Scan", row)
        form.addRow("Series", self.series_combo)
        form.addRow("", self.load_btn)
        form.addRow("CT layer", self.image_combo)
        form.addRow("Window", self.window_combo)
        form.addRow("Patient lay", self.position_combo)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.info)
        layout.addLayout(mask_row)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self._show_info()

    # -- choosing a scan --------------------------------------------------
    def _pick_file(self):
        kinds = f"CT ({_patterns(scan_suffixes())});;All (*)"
        path, _ = QFileDialog.getOpenFileName(self, "Open a CT scan", "", kinds)
        if path:
            self.set_path(path)

    def _pick_folder(self):
        path = QFileDialog.getExistingDirectory(self, "Open a DICOM folder")
        if path:
            self.set_path(path)

    def set_path(self, path) -> None:
        """Choose a scan; DICOM folders and zips list their series."""
        self.path_edit.setText(str(path))
        self._path_changed()

    def _path_changed(self):
        path = Path(self.path_edit.text().strip())
        self.series_combo.clear()
        self.series_combo.setEnabled(False)
        if not path.exists() or not (path.is_dir() or path.suffix.lower() == ".zip"):
            return
        try:
            series = list_dicom_series(path)
        except Exception as err:  # noqa: BLE001 - shown to the user
            self.status.setText(f"cannot list DICOM series: {err}")
            return
        for info in series:
            self.series_combo.addItem(info.label, info.uid)
        self.series_combo.setEnabled(len(series) > 1)

    # -- loading ------------------------------------------------------------
    def load(self) -> Optional[Job]:
        """Read the chosen scan in a worker thread and add it as an Image layer."""
        text = self.path_edit.text().strip()
        if not text:
            self.status.setText("choose a scan first")
            return None
        path = Path(text)
        series = self.series_combo.currentData() if self.series_combo.count() > 1 else None

        def work(progress):
            return read_scan(path, series=series, progress=progress)

        def done(volume):
            data, kwargs, _ = image_layer_data(volume)
            layer = self.viewer.add_image(data, **kwargs)
            unclamp_contrast(layer)
            self.image_combo.set_layer(layer)
            self.viewer.reset_view()
            self.status.setText(done_message(f"loaded {layer.name} ({describe_shape(volume)})"))

        return self._run(work, done)

    def _show_info(self, *_):
        layer = self.image_combo.layer()
        volume = layer.metadata.get(VOLUME_KEY) if layer is not None else None
        self.info.setText(describe_volume(volume) if volume is not None else "no scan loaded")
        # the position this layer was given here, or "as the scan says"
        given = volume.source.metadata.get("patient_position", "") \
            if volume is not None and POSITION_KEY in layer.metadata else ""
        self.position_combo.blockSignals(True)
        self.position_combo.setCurrentIndex(max(self.position_combo.findData(given), 0))
        self.position_combo.blockSignals(False)

    def apply_position(self, *_) -> None:
        """Set how the patient lay on the chosen CT (for the lung mask and Segment)."""
        layer = self.image_combo.layer()
        volume = layer.metadata.get(VOLUME_KEY) if layer is not None else None
        if volume is None:
            return
        own = layer.metadata.setdefault(POSITION_KEY, volume.source.metadata.get("patient_position", ""))
        code = self.position_combo.currentData()
        layer.metadata[VOLUME_KEY] = volume.with_position(code or own)
        if not code:
            del layer.metadata[POSITION_KEY]
        self._show_info()
        lay = (f"lay {POSITIONS[code][0]} ({code})" if code else
               f"position as the scan says ({own or 'not stored: supine assumed'})")
        self.status.setText(f"{layer.name}: patient {lay}; the lung mask and Segment look for "
                            "dependent lung on that side (a mask computed before stays as it was)")

    def apply_window(self, name: Optional[str] = None) -> None:
        """Set the chosen CT layer's contrast limits to a window preset."""
        name = name or self.window_combo.currentText()
        layer = self.image_combo.layer()
        if layer is not None:
            layer.contrast_limits_range = (min(layer.contrast_limits_range[0], WINDOWS[name][0]),
                                           max(layer.contrast_limits_range[1], WINDOWS[name][1]))
            layer.contrast_limits = WINDOWS[name]

    # -- lung mask ----------------------------------------------------------
    def _volume(self):
        layer = self.image_combo.layer()
        if layer is None:
            self.status.setText("load a CT first")
            return None, None
        return layer, layer_volume(layer)

    def compute_mask(self) -> Optional[Job]:
        """Compute the weight-free lung mask of the chosen CT in a worker thread."""
        layer, volume = self._volume()
        if volume is None:
            return None

        def work(progress):
            return segment_scan_lungs(volume, progress=progress)

        def done(seg):
            self._add_mask(seg.labels, volume, f"{layer.name} lung mask")
            # what it left out in the pleural space, to be seen (1 effusion, 2 pneumothorax)
            name = f"{layer.name} pleural space"
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
            pleural = pleural_layer_data(seg, volume, name)
            if pleural is not None:
                self.viewer.add_labels(pleural[0], **pleural[1])
                self.viewer.layers.selection.active = layer
            if seg.notes:  # effusion, pneumothorax, gas, contrast, a swapped orientation
                self.status.setText("\n".join([self.status.text(), *seg.notes]))

        return self._run(work, done)

    def _pick_mask(self):
        path, _ = QFileDialog.getOpenFileName(self, "Open a lung mask", "",
                                              f"Masks ({_patterns(label_suffixes())});;All (*)")
        if path:
            self.load_mask(path)

    def load_mask(self, path) -> None:
        """Read a mask on the chosen CT's grid and add it as a Labels layer."""
        layer, volume = self._volume()
        if volume is None:
            return
        try:
            mask = read_mask(path, volume)
        except Exception as err:  # noqa: BLE001 - shown to the user
            from napari.utils.notifications import show_error

            show_error(f"DiffSegLung: {err}")
            self.status.setText(f"error: {err}")
            return
        self._add_mask(mask, volume, f"{layer.name} lung mask")

    def _add_mask(self, mask, volume, name):
        if name in self.viewer.layers:
            self.viewer.layers.remove(name)
        data, kwargs, _ = lung_mask_layer_data(mask, volume, name)
        self.mask_layer = self.viewer.add_labels(data, **kwargs)
        image = self.image_combo.layer()
        if image is not None:
            self.viewer.layers.selection.active = image
        ml = lung_volumes_ml(mask, volume.spacing)
        self.status.setText(done_message(f"{name}: right {ml['right']:.0f} mL, left {ml['left']:.0f} mL"))

    def _run(self, work, done) -> Job:
        self.load_btn.setEnabled(False)
        self.mask_btn.setEnabled(False)

        def finish():
            self.load_btn.setEnabled(True)
            self.mask_btn.setEnabled(True)

        self.job = Job(work, done, bar=self.bar, status=self.status, on_finish=finish).start()
        return self.job
