"""Learn from corrections: confirm slices, paint fixes, let a head relabel the rest if it is better.

The user paints wrong voxels of a result layer and marks the axial slices
they checked with "Confirm current slice". "Learn" trains a small head on the
weight-free features of the CT (:func:`diffseglung_core.segment.learn.learn_from_corrections`)
in a worker, holds out part of the confirmed voxels and writes the head's
labels only where they beat the current ones there, as one undo step.
Confirmed slices and painted voxels are never overwritten.

"Next slice to check" jumps to the unconfirmed slice with the most uncertain
non-healthy voxels; "Confidence" shows the label posterior of every voxel
(:mod:`diffseglung_core.segment.guidance`).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from diffseglung_core.device import DEVICES, device_warning
from diffseglung_core.segment.edits import confirmed_voxels
from diffseglung_core.segment.guidance import confidence_map, next_slice, slice_scores
from diffseglung_core.segment.learn import FEATURE_CHOICES, learn_from_corrections

from .._layers import ROLE_KEY, reference_volume
from ._common import Job, LayerComboBox, done_message
from ._session import apply_step, is_result, session_of

#: Layer metadata key of the head last trained on a result layer.
HEAD_KEY = "diffseglung_correction_head"


def low_confidence_colormap():
    """Magenta where a label's posterior is low, fading to clear as it nears 1."""
    from napari.utils.colormaps import Colormap

    return Colormap([[1.0, 0.1, 0.9, 1.0], [1.0, 0.1, 0.9, 0.6], [1.0, 0.1, 0.9, 0.0],
                     [1.0, 0.1, 0.9, 0.0]], controls=[0.0, 0.5, 0.8, 1.0], name="low confidence")


class CorrectionsWidget(QWidget):
    """Dock widget: confirm slices, learn a head from them, relabel the rest when it is better.

    Parameters
    ----------
    napari_viewer : napari.Viewer
    model : diffusion model for the ``"diffusion"`` features; None (what napari
        passes) is the shipped default model.
    """

    def __init__(self, napari_viewer, parent: Optional[QWidget] = None, *, model=None):
        import napari

        super().__init__(parent)
        self.viewer = napari_viewer
        self.model = model
        self.job: Optional[Job] = None
        self.head = None
        self.outcome = None
        self.last_step = None

        self.result_combo = LayerComboBox(self.viewer, napari.layers.Labels, predicate=is_result)
        self.result_combo.currentIndexChanged.connect(self._show_confirmed)
        self.confirm_btn = QPushButton("Confirm current slice")
        self.confirm_btn.setToolTip("the labels of the axial slice shown are right: learn from them")
        self.confirm_btn.clicked.connect(lambda: self.confirm_slice())
        self.clear_btn = QPushButton("Clear")
        self.clear_btn.clicked.connect(self.clear_confirmed)
        self.next_btn = QPushButton("Next slice to check")
        self.next_btn.setToolTip("the unconfirmed slice with the most uncertain non-healthy voxels")
        self.next_btn.clicked.connect(lambda: self.go_to_next_slice())
        self.confidence_btn = QPushButton("Confidence")
        self.confidence_btn.setToolTip("show the posterior of the label of every voxel")
        self.confidence_btn.clicked.connect(lambda: self.show_confidence())
        self.confirmed_label = QLabel("")
        self.confirmed_label.setWordWrap(True)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(10, 5000)
        self.steps_spin.setValue(300)
        self.features_combo = QComboBox()
        self.features_combo.addItems(list(FEATURE_CHOICES))
        self.features_combo.setToolTip("weightfree: density, texture, structure and the engine's "
                                       "posteriors; diffusion: also a checkpoint's features")
        self.prior_check = QCheckBox("keep learning the current labels, weakly")
        self.prior_check.setChecked(True)
        self.prior_check.setToolTip("keeps classes absent from your corrections")
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICES)
        self.device_warning = QLabel("")
        self.device_warning.setWordWrap(True)
        self.device_warning.setStyleSheet("color: #e0a000")
        self.device_combo.currentTextChanged.connect(
            lambda d: self.device_warning.setText(device_warning(d)))

        self.learn_btn = QPushButton("Learn")
        self.learn_btn.clicked.connect(self.run)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self.cancel)
        self.bar = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Result", self.result_combo)
        form.addRow("Features", self.features_combo)
        form.addRow("Head steps", self.steps_spin)
        form.addRow("Prior", self.prior_check)
        form.addRow("Device", self.device_combo)
        confirm = QHBoxLayout()
        confirm.addWidget(self.confirm_btn)
        confirm.addWidget(self.clear_btn)
        guide = QHBoxLayout()
        guide.addWidget(self.next_btn)
        guide.addWidget(self.confidence_btn)
        buttons = QHBoxLayout()
        buttons.addWidget(self.learn_btn)
        buttons.addWidget(self.cancel_btn)
        layout = QVBoxLayout(self)
        layout.addLayout(guide)
        layout.addLayout(confirm)
        layout.addWidget(self.confirmed_label)
        layout.addLayout(form)
        layout.addWidget(self.device_warning)
        layout.addLayout(buttons)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self._show_confirmed()

    # -- confirmed slices --------------------------------------------------------
    def _session(self):
        layer = self.result_combo.layer()
        return (layer, session_of(layer)) if layer is not None else (None, None)

    def slices(self, layer=None) -> list[int]:
        """The axial slices confirmed on ``layer`` (the chosen result layer by default)."""
        layer = self.result_combo.layer() if layer is None else layer
        session = session_of(layer) if layer is not None else None
        return sorted(session.confirmed) if session is not None else []

    def _current_z(self, layer) -> int:
        return int(round(float(layer.world_to_data(self.viewer.dims.point)[-3])))

    def confirm_slice(self, z: Optional[int] = None) -> Optional[int]:
        """Mark axial slice ``z`` (default: the one shown) of the result layer as checked."""
        layer, session = self._session()
        if layer is None:
            self.status.setText("choose a result layer first")
            return None
        z = self._current_z(layer) if z is None else int(z)
        if not 0 <= z < layer.data.shape[-3]:
            self.status.setText(f"slice {z} is outside the result layer")
            return None
        session.confirm(z)
        self._show_confirmed()
        return z

    def clear_confirmed(self) -> None:
        layer, session = self._session()
        if session is not None:
            session.confirmed.clear()
        self._show_confirmed()

    def _show_confirmed(self, *_) -> None:
        slices = self.slices()
        self.confirmed_label.setText(
            "confirmed slices: " + (", ".join(str(z) for z in slices) if slices else "none"))

    # -- guidance ------------------------------------------------------------------
    def go_to_next_slice(self) -> Optional[int]:
        """Show the unconfirmed slice where a correction would help most."""
        layer, session = self._session()
        if layer is None:
            self.status.setText("choose a result layer first")
            return None
        session.sync(np.asarray(layer.data))
        probs = session.label_probabilities()
        scores = slice_scores(probs, session.result.lung)
        z = next_slice(probs, session.result.lung, session.confirmed, scores=scores,
                       slice_mm=session.result.spacing[0])
        if z is None:
            self.status.setText("no unconfirmed slice has uncertain non-healthy voxels")
            return None
        self.viewer.dims.set_point(0, layer.data_to_world((z, 0, 0))[0])
        self.status.setText(f"slice {z}: the most uncertain non-healthy voxels not yet confirmed "
                            f"(score {scores[z]:.0f}); correct it, then Confirm current slice")
        return z

    def show_confidence(self):
        """Add (or update) an Image layer of the posterior of each voxel's most probable label."""
        layer, session = self._session()
        if layer is None:
            self.status.setText("choose a result layer first")
            return None
        session.sync(np.asarray(layer.data))
        conf = confidence_map(session.label_probabilities(), session.result.lung, outside=1.0)
        name = f"{layer.name} confidence"
        if name in self.viewer.layers:
            self.viewer.layers[name].data = conf
            out = self.viewer.layers[name]
        else:
            volume = reference_volume(conf.shape, layer.metadata, scale=layer.scale,
                                      translate=layer.translate)
            from diffseglung_core.display import display_geometry

            scale, translate = display_geometry(volume)
            out = self.viewer.add_image(conf, name=name, scale=scale, translate=translate,
                                        colormap=low_confidence_colormap(), contrast_limits=(0.4, 1.0),
                                        opacity=0.9, metadata={ROLE_KEY: "confidence"})
            self.viewer.layers.selection.active = layer
        self.status.setText("confidence: the posterior of each voxel's label; the less sure, the "
                            "more magenta (clear above 0.9)")
        return out

    # -- learning ------------------------------------------------------------------
    def run(self) -> Optional[Job]:
        """Learn from the confirmed and painted voxels in a worker; relabel the rest if better."""
        layer, session = self._session()
        if layer is None:
            self.status.setText("choose a result layer first")
            return None
        shown = np.array(layer.data, copy=True)
        session.sync(shown)
        result = session.result
        lung = np.asarray(result.lung) > 0
        confirmed = confirmed_voxels(shown, sorted(session.confirmed), edits=session.edits, lung=lung)
        if not confirmed.any():
            self.status.setText("paint some voxels or confirm a slice first")
            return None
        auto = np.array(session.edits.auto, copy=True)
        posteriors = session.posteriors()
        options = dict(spacing=result.spacing, auto=auto, posteriors=posteriors,
                       features=self.features_combo.currentText(), model=self.model,
                       steps=self.steps_spin.value(), prior=self.prior_check.isChecked(),
                       device=self.device_combo.currentText())

        def work(progress):
            return learn_from_corrections(result.hu, shown, confirmed, lung, progress=progress,
                                          **options)

        self.learn_btn.setEnabled(False)
        self.cancel_btn.setEnabled(True)
        self.status.setText("starting...")
        self.job = Job(work, lambda out: self._write(layer, out), bar=self.bar, status=self.status,
                       on_finish=self._finished)
        return self.job.start()

    def cancel(self) -> None:
        if self.job is not None and self.job.running:
            self.job.cancel()

    def _finished(self) -> None:
        self.learn_btn.setEnabled(True)
        self.cancel_btn.setEnabled(False)

    def _write(self, layer, outcome) -> None:
        """Apply an accepted head (one undo step); otherwise say why nothing changed."""
        self.outcome, self.head = outcome, outcome.head
        if layer not in self.viewer.layers:
            self.status.setText("the result layer was removed")
            return
        session = session_of(layer)
        step = session.learn_step(np.asarray(layer.data), outcome)
        self.last_step = apply_step(layer, step)
        layer.metadata[HEAD_KEY] = outcome.head
        seconds = outcome.timings.get("total", float("nan"))
        self.status.setText(done_message(f"{step.message} ({seconds:.0f} s)"))
