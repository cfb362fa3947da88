"""napari layers <-> core volumes: layer data for CT and label maps, and the volume of a layer.

No Qt here. Widgets call the core API (``diffseglung_core``) directly and use
these helpers to turn layers into volumes and results into layers.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from diffseglung_core.display import contrast_range, display_geometry, volume_from_geometry
from diffseglung_core.io import scan_name
from diffseglung_core.labels import TISSUE_COLORS, TISSUE_NAMES
from diffseglung_core.render import WINDOWS
from diffseglung_core.segment import SegmentationResult
from diffseglung_core.volume import CTVolume

#: Layer metadata key of the :class:`CTVolume` a layer belongs to.
VOLUME_KEY = "diffseglung_volume"
#: Layer metadata key of the DICOM PatientPosition the scan's file gave ("" if none), kept
#: when the user sets another one in Load CT.
POSITION_KEY = "diffseglung_file_position"
#: Layer metadata key of the segmentation result a Labels layer shows.
RESULT_KEY = "diffseglung_result"
#: Layer metadata key of what a layer is for: ``"lung_mask"``, ``"clusters"``, ``"truth"``,
#: ``"preview"``, ``"confidence"``, ``"prompt"``, ``"pleural"`` (helpers), or absent.
ROLE_KEY = "diffseglung_role"
#: Roles of helper layers: never offered as a CT, a result or labels to export.
HELPER_ROLES = ("clusters", "preview", "confidence", "prompt", "pleural")
#: Values of the pleural-space layer: what the lung mask left out of the lung there.
PLEURAL_VALUES = {"effusion": 1, "pneumothorax": 2}


def layer_role(layer) -> str:
    """What a layer is for (see :data:`ROLE_KEY`); ``"result"`` for segmentation results."""
    metadata = getattr(layer, "metadata", {}) or {}
    if RESULT_KEY in metadata:
        return "result"
    return str(metadata.get(ROLE_KEY, ""))


def is_ct_image(layer) -> bool:
    """A 3D (or 2D) grey-level Image layer that is not a helper (a CT to segment)."""
    import napari

    return (isinstance(layer, napari.layers.Image) and not getattr(layer, "rgb", False)
            and layer_role(layer) not in HELPER_ROLES and layer.data.ndim in (2, 3))


def is_tissue_labels(layer) -> bool:
    """A Labels layer of tissue classes: a result, or labels that are not a helper or a lung mask."""
    import napari

    return isinstance(layer, napari.layers.Labels) and layer_role(layer) not in (
        *HELPER_ROLES, "lung_mask")


def is_lung_mask(layer) -> bool:
    """A Labels layer that may be a lung mask (made or loaded as one, or of unknown role)."""
    import napari

    return isinstance(layer, napari.layers.Labels) and layer_role(layer) in ("lung_mask", "")


def image_layer_data(volume: CTVolume, name: Optional[str] = None) -> tuple:
    """``(data, kwargs, "image")`` showing ``volume`` in HU with the lung window."""
    scale, translate = display_geometry(volume)
    name = name or _name(volume)
    return (volume.hu, {"name": name, "scale": scale, "translate": translate,
                        "contrast_limits": WINDOWS["lung"], "colormap": "gray",
                        "metadata": {VOLUME_KEY: volume}}, "image")


def unclamp_contrast(layer) -> None:
    """Let a CT layer's contrast slider reach the scan's whole HU range, not only its window."""
    lo, hi = contrast_range(layer.data, tuple(layer.contrast_limits_range))
    layer.contrast_limits_range = (min(lo, float(layer.contrast_limits[0])),
                                   max(hi, float(layer.contrast_limits[1])))


def labels_layer_data(labels: np.ndarray, volume: CTVolume, name: str, *,
                      tissue_colors: bool = True, visible: bool = True,
                      metadata: Optional[dict] = None) -> tuple:
    """``(data, kwargs, "labels")`` on ``volume``'s grid, one named colour per class."""
    scale, translate = display_geometry(volume)
    kwargs = {"name": name, "scale": scale, "translate": translate, "visible": visible,
              "metadata": {VOLUME_KEY: volume, **(metadata or {})}}
    if tissue_colors:
        kwargs["colormap"] = tissue_colormap()
        kwargs["features"] = tissue_features()
        kwargs["opacity"] = 0.6
    return (labels, kwargs, "labels")


def cluster_layers(result: SegmentationResult, volume: CTVolume, name: str) -> list[tuple]:
    """One hidden Labels layer per clustering (final, and each feature set / timestep alone)."""
    return [labels_layer_data(result.cluster_map(key), volume, f"{name} clusters {key}",
                              tissue_colors=False, visible=False, metadata={ROLE_KEY: "clusters"})
            for key in result.clusters]


def lung_mask_layer_data(mask: np.ndarray, volume: CTVolume, name: str, *,
                         visible: bool = True) -> tuple:
    """``(data, kwargs, "labels")`` of a lung mask (1 right, 2 left), faint."""
    data, kwargs, kind = labels_layer_data(mask, volume, name, tissue_colors=False, visible=visible,
                                           metadata={ROLE_KEY: "lung_mask"})
    kwargs["opacity"] = 0.35
    return data, kwargs, kind


def pleural_layer_data(seg, volume: CTVolume, name: str) -> Optional[tuple]:
    """``(data, kwargs, "labels")`` of what a lung segmentation found in the pleural space
    (:data:`PLEURAL_VALUES`: 1 effusion, 2 pneumothorax), or None when it found nothing."""
    data = np.zeros(seg.labels.shape, np.uint8)
    for key, value in PLEURAL_VALUES.items():
        found = getattr(seg, key, None)
        if found is not None:
            data[np.asarray(found, bool)] = value
    if not data.any():
        return None
    data, kwargs, kind = labels_layer_data(data, volume, name, tissue_colors=False,
                                           metadata={ROLE_KEY: "pleural"})
    kwargs["opacity"] = 0.5
    return data, kwargs, kind


def stored_volume(metadata: Optional[dict], shape) -> Optional[CTVolume]:
    """The :class:`CTVolume` kept in a layer's metadata, if it has the layer's ``shape``."""
    stored = (metadata or {}).get(VOLUME_KEY)
    if isinstance(stored, CTVolume) and stored.shape == tuple(int(s) for s in shape):
        return stored
    return None


def reference_volume(shape, metadata: Optional[dict] = None, *, scale=None,
                     translate=None) -> CTVolume:
    """The volume a layer of ``shape`` belongs to, to write it on its source grid.

    The volume stored in ``metadata`` wins when its shape matches; otherwise an
    axis-aligned volume is made from the layer's ``scale`` and ``translate``
    (its ``hu`` is then a placeholder: use its geometry only).
    """
    stored = stored_volume(metadata, shape)
    if stored is not None:
        return stored
    return volume_from_geometry(shape, scale, translate)


def layer_volume(layer, hu=None) -> CTVolume:
    """The volume a layer shows, with ``hu`` (default the layer's data) as its HU.

    A volume kept in the layer's metadata is used when it has the layer's
    shape and no other HU are given.
    """
    shape = layer.data.shape
    stored = stored_volume(layer.metadata, shape)
    if stored is not None and hu is None:
        return stored
    volume = stored or volume_from_geometry(shape, layer.scale[-3:], layer.translate[-3:])
    return volume.with_hu(np.asarray(layer.data if hu is None else hu))


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
    path = volume.source.path
    return (scan_name(path) if path else "") or "CT"
