"""The correction session of a result layer, and applying its steps as napari undo steps.

Each result layer keeps one :class:`~diffseglung_core.segment.session.CorrectionSession`
in its metadata. A step is written with ``Labels.data_setitem`` (one entry of
the layer's undo history, so Ctrl+Z undoes exactly that step); the layer's
``set_data`` event (undo and redo emit it) lets the session follow.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from diffseglung_core.segment.edits import HandEdits
from diffseglung_core.segment.session import CorrectionSession, Step

from .._layers import RESULT_KEY

#: Layer metadata keys of a result layer: its :class:`HandEdits`, the engine's own
#: mapping and its correction session.
EDITS_KEY = "diffseglung_hand_edits"
DEFAULT_MAPPING_KEY = "diffseglung_default_mapping"
SESSION_KEY = "diffseglung_session"

_LISTENERS: dict[int, list[Callable]] = {}


def is_result(layer) -> bool:
    """A Labels layer made by Segment (it carries a segmentation result)."""
    return RESULT_KEY in getattr(layer, "metadata", {})


def session_of(layer) -> Optional[CorrectionSession]:
    """The correction session of a result layer (made on first use), or None for other layers."""
    if not is_result(layer):
        return None
    session = layer.metadata.get(SESSION_KEY)
    if isinstance(session, CorrectionSession) and session.edits.auto.shape == layer.data.shape:
        return session
    result = layer.metadata[RESULT_KEY]
    edits = layer.metadata.get(EDITS_KEY)
    if not isinstance(edits, HandEdits) or edits.auto.shape != layer.data.shape:
        edits = HandEdits(result.labels)
    return attach_session(layer, CorrectionSession(result, edits=edits))


def attach_session(layer, session: CorrectionSession) -> CorrectionSession:
    """Make ``session`` the correction session of ``layer`` (it follows the layer's undo and redo)."""
    session.default_mapping = layer.metadata.get(DEFAULT_MAPPING_KEY, session.result.mapping)
    layer.metadata[SESSION_KEY] = session
    layer.metadata[EDITS_KEY] = session.edits
    layer.metadata[RESULT_KEY] = session.result
    layer.events.set_data.connect(lambda *_: sync(layer))
    return session


def sync(layer) -> list[str]:
    """Bring the session in line with the layer's labels after an undo or redo."""
    session = layer.metadata.get(SESSION_KEY)
    if not isinstance(session, CorrectionSession):
        return []
    done = session.sync(np.asarray(layer.data))
    if done:
        layer.metadata[RESULT_KEY] = session.result
        for callback in list(_LISTENERS.get(id(layer), [])):
            callback(layer, done)
    return done


def on_sync(layer, callback: Callable) -> None:
    """Call ``callback(layer, what)`` when an undo or redo changed the session of ``layer``."""
    _LISTENERS.setdefault(id(layer), []).append(callback)


def apply_step(layer, step: Step) -> Step:
    """Write ``step`` into ``layer`` as one undo step and commit it to the session."""
    session = session_of(layer)
    if step.n_changed:
        layer.data_setitem(step.where, step.values)
    session.commit(step)
    layer.metadata[RESULT_KEY] = session.result
    return step
