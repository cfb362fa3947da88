"""npe2 writer: a Labels layer as NIfTI or NRRD on its source scan's grid.

A Labels layer made from a scan read by this plugin carries that scan's
:class:`CTVolume` in its metadata: the file is written in the scan's own
array order with its own affine, so it overlays the original in any viewer.
Other layers are written axis-aligned from their ``scale`` and ``translate``.
napari's save dialog asks before replacing a file; this writer replaces it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from diffseglung_core.io import write_labels as _write_labels

from ._layers import reference_volume


def write_labels(path: str, data: Any, meta: dict) -> list[str]:
    """Write one Labels layer; returns the path written."""
    labels = np.asarray(data)
    if labels.ndim != 3:
        raise ValueError(f"{path}: only 3D label maps can be saved, got shape {labels.shape}")
    reference = reference_volume(labels.shape, meta.get("metadata"),
                                 scale=meta.get("scale"), translate=meta.get("translate"))
    return [str(_write_labels(path, labels, reference, overwrite=True))]
