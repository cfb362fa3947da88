"""Re-label a result layer from its cached clusters, keeping the user's hand edits."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from diffseglung_core.segment.edits import HandEdits
from diffseglung_core.segment.remap import relabel

from .._layers import RESULT_KEY
from ._common import Job
from .segment import EDITS_KEY


def start_relabel(layer, *, mapping=None, refine: Optional[bool] = None,
                  refine_options=None, bar=None, status=None,
                  on_done: Optional[Callable] = None) -> Job:
    """Recompute ``layer``'s labels in a worker; voxels painted by hand keep their label.

    The new labels are merged into whatever the layer shows when the work ends,
    so strokes painted while it runs are kept too.
    """
    result = layer.metadata[RESULT_KEY]
    edits = layer.metadata.get(EDITS_KEY)
    if edits is None:
        edits = layer.metadata[EDITS_KEY] = HandEdits(result.labels)
    mapping = result.mapping if mapping is None else mapping

    def work(progress):
        return relabel(result, mapping, refine=refine, refine_options=refine_options,
                       progress=progress)

    def done(out):
        updated, labels = out
        layer.data = edits.remap(np.asarray(layer.data), labels)
        layer.metadata[RESULT_KEY] = updated
        if on_done is not None:
            on_done(updated, edits)

    return Job(work, done, bar=bar, status=status).start()
