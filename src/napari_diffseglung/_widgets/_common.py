"""Pieces shared by the dock widgets: layer pickers and background jobs."""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QComboBox, QLabel, QMessageBox, QProgressBar, QWidget

from diffseglung_core.errors import Cancelled, DiffSegLungError


class LayerComboBox(QComboBox):
    """A combo box listing the viewer's layers of one type, kept up to date.

    Parameters
    ----------
    viewer : napari.Viewer
    layer_type : the napari layer class listed (``napari.layers.Image``, ...).
    optional : add an entry for "no layer" first, named ``none_text``.
    predicate : extra test a layer must pass to be listed.
    """

    def __init__(self, viewer, layer_type, *, optional: bool = False, none_text: str = "(none)",
                 predicate: Optional[Callable] = None, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.viewer = viewer
        self.layer_type = layer_type
        self.optional = optional
        self.none_text = none_text
        self.predicate = predicate
        for event in (viewer.layers.events.inserted, viewer.layers.events.removed,
                      viewer.layers.events.reordered):
            event.connect(self.refresh)
        self.refresh()

    def _candidates(self):
        return [layer for layer in reversed(self.viewer.layers)
                if isinstance(layer, self.layer_type)
                and (self.predicate is None or self.predicate(layer))]

    def refresh(self, *_):
        current = self.layer()
        self.blockSignals(True)
        self.clear()
        if self.optional:
            self.addItem(self.none_text, None)
        for layer in self._candidates():
            self.addItem(layer.name, layer)
        index = self.findData(current) if current is not None else -1
        self.setCurrentIndex(index if index >= 0 else 0)
        self.blockSignals(False)
        if self.layer() is not current:
            self.currentIndexChanged.emit(self.currentIndex())

    def layer(self):
        """The chosen layer, or None."""
        data = self.currentData()
        return data if data is not None and data in self.viewer.layers else None

    def set_layer(self, layer) -> None:
        self.refresh()
        index = self.findData(layer)
        if index >= 0:
            self.setCurrentIndex(index)


class _Relay(QObject):
    progressed = Signal(int, int, str)


class Job:
    """Runs ``fn(progress)`` in a napari ``thread_worker``, reporting to a progress bar.

    ``fn`` receives a :data:`~diffseglung_core.progress.ProgressCallback`; a call to
    :meth:`cancel` makes that callback raise :class:`Cancelled` in the worker, so the
    core stops at its next progress report and leaves no partial output. Errors are
    shown as napari notifications, never raised in the GUI thread.

    Parameters
    ----------
    fn : callable taking the progress callback and returning the result.
    on_done : called in the GUI thread with the result.
    bar, status : progress bar and label updated in the GUI thread.
    on_finish : called in the GUI thread when the job ends, however it ends.
    """

    def __init__(self, fn: Callable, on_done: Callable, *, bar: Optional[QProgressBar] = None,
                 status: Optional[QLabel] = None, on_finish: Optional[Callable] = None,
                 on_error: Optional[Callable] = None):
        from napari.qt.threading import create_worker

        self._cancel = threading.Event()
        self.bar, self.status = bar, status
        self.relay = _Relay()
        self.relay.progressed.connect(self._show_progress)
        self.outcome: Optional[str] = None  # "done", "cancelled" or "error"
        self.started = time.perf_counter()
        self.ended = False  # True once every end-of-job callback has run in the GUI thread
        self._on_finish = on_finish
        self._on_error = on_error

        def progress(done: int, total: int, stage: str) -> None:
            if self._cancel.is_set():
                raise Cancelled("cancelled by the user")
            self.relay.progressed.emit(int(done), int(total), str(stage))

        def work():
            return fn(progress)

        self.worker = create_worker(work, _start_thread=False, _ignore_errors=True)
        self.worker.returned.connect(lambda result: self._done(result, on_done))
        self.worker.errored.connect(self._errored)
        self.worker.finished.connect(self._finished)

    def start(self) -> Job:
        if self.bar is not None:
            self.bar.setRange(0, 0)  # busy until the first report
        self.started = time.perf_counter()
        self.worker.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()
        if self.status is not None:
            self.status.setText("cancelling...")

    @property
    def running(self) -> bool:
        return self.outcome is None

    def _show_progress(self, done: int, total: int, stage: str) -> None:
        if self.outcome is not None:
            return
        if self.bar is not None:
            self.bar.setRange(0, max(total, 1))
            self.bar.setValue(min(done, max(total, 1)))
        if self.status is not None and not self._cancel.is_set():
            self.status.setText(stage + eta_text(done, total, time.perf_counter() - self.started))

    def _done(self, result, on_done: Callable) -> None:
        self.outcome = "done"
        try:
            on_done(result)
        except Exception as err:  # never let a display problem crash the GUI
            self._report(err)

    def _errored(self, err: BaseException) -> None:
        if isinstance(err, Cancelled):
            self.outcome = "cancelled"
            if self.status is not None:
                self.status.setText("cancelled")
            from napari.utils.notifications import show_info

            show_info("DiffSegLung: cancelled")
            return
        self.outcome = "error"
        self._report(err)

    def _report(self, err: BaseException) -> None:
        from napari.utils.notifications import show_error

        text = str(err) if isinstance(err, DiffSegLungError) else f"{type(err).__name__}: {err}"
        if self.status is not None:
            self.status.setText("error: " + text.splitlines()[0] if text else "error")
        show_error(f"DiffSegLung: {text}")
        if self._on_error is not None:
            self._on_error(err)

    def _finished(self) -> None:
        if self.outcome is None:
            self.outcome = "done"
        if self.bar is not None:
            self.bar.setRange(0, 1)
            self.bar.setValue(1 if self.outcome == "done" else 0)
        if self._on_finish is not None:
            self._on_finish()
        self.ended = True


def eta_text(done: int, total: int, elapsed: float) -> str:
    """`` (40%, about 12 s left)`` once the share done and the time taken allow an estimate."""
    if total <= 0 or done <= 0 or elapsed < 1.0:
        return ""
    frac = min(done / total, 1.0)
    if frac < 0.02 or frac >= 1.0:
        return f" ({100 * frac:.0f}%)"
    left = elapsed * (1.0 - frac) / frac
    when = f"{left:.0f} s" if left < 90 else f"{left / 60:.0f} min"
    return f" ({100 * frac:.0f}%, about {when} left)"


def done_message(text: str) -> str:
    """A finished job's status line."""
    return f"done: {text}"


def confirm_overwrite(parent: Optional[QWidget], path) -> bool:
    """Ask before replacing an existing file (tests monkeypatch this)."""
    answer = QMessageBox.question(parent, "Replace file?", f"{path} exists. Replace it?",
                                  QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes
