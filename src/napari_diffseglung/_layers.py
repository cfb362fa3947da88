"""napari layer data for CT volumes and label maps (no Qt)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from diffseglung_core.labels import TISSUE_COLORS, TISSUE_NAMES
from diffseglung_core.render import WINDOWS
from diffseglung_core.viewer_support import VOLUME_KEY, layer_geometry
from diffseglung_core.volume import CTVolume

#: Layer metadata key of the segmentation result a Labels layer shows.
RESULT_KEY = "diffseglung_result"


def image_layer_data(volume: CTVolume, name: Optional[str] = None) -> tuple:
    """``(data, kwargs, "image")`` showing ``volume`` in HU with the lung window."""
    scale, translate = layer_geometry(volume)
    name = name or _name(volume)
    return (volume.hu, {"name": name, "scale": scale, "translate": translate,
                        "contrast_limits": WINDOWS["lung"], "colormap": "gray",
                        "metadata": {VOLUME_KEY: volume}}, "image")


def labels_layer_data(labels: np.ndarray, volume: CTVolume, name: str, *,
                      tissue_colors: bool = True, visible: bool = True,
                      metadata: Optional[dict] = None) -> tuple:
    """``(data, kwargs, "labels")`` on ``volume``'s grid, one named colour per class."""
    scale, translate = layer_geometry(volume)
    kwargs = {"name": name, "scale": scale, "translate": translate, "visible": visible,
              "metadata": {VOLUME_KEY: volume, **(metadata or {})}}
    if tissue_colors:
        kwargs["colormap"] = tissue_colormap()
        kwargs["features"] = tissue_features()
        kwargs["opacity"] = 0.6
    return (labels, kwargs, "labels")


def tissue_colormap():
    """napari colormap with the project's colour per tissue class."""
    from napari.utils.colormaps import DirectLabelColormap

    colors = {int(k): np.asarray(v, dtype=np.float32) for k, v in TISSUE_COLORS.items()}
    colors[None] = np.zeros(4, np.float32)
    return DirectLabelColormap(color_dict=colors)


def tissue_features():
    """A feature table naming each class, shown in napari's status bar."""
    import pandas as pd

    return pd.DataFrame({"index": list(TISSUE_NAMES), "class": list(TISSUE_NAMES.values())})


def _name(volume: CTVolume) -> str:
    from pathlib import Path

    path = volume.source.path
    if not path:
        return "CT"
    p = Path(path)
    stem = p.name
    for ending in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".npz", ".zip", ".dcm"):
        if stem.lower().endswith(ending):
            stem = stem[: -len(ending)]
            break
    if p.is_dir() and stem.lower() in ("dicom", "dcm", "ct"):
        stem = f"{p.parent.name}/{stem}"
    return stem or "CT"
