"""The one label convention of the project (files, napari, reports)."""

from __future__ import annotations

from enum import IntEnum


class Tissue(IntEnum):
    """Voxel labels written in every label map."""

    OUTSIDE = 0
    HEALTHY = 1
    GGO = 2
    FIBROSIS = 3
    EMPHYSEMA = 4
    CONSOLIDATION = 5


#: Human-readable class names, indexed by label value.
TISSUE_NAMES: dict[int, str] = {
    Tissue.OUTSIDE: "outside lung",
    Tissue.HEALTHY: "healthy",
    Tissue.GGO: "ground-glass opacity",
    Tissue.FIBROSIS: "fibrosis",
    Tissue.EMPHYSEMA: "emphysema",
    Tissue.CONSOLIDATION: "consolidation",
}

#: Display colours (RGBA, 0..1) per label, shared by napari and PNG exports.
TISSUE_COLORS: dict[int, tuple[float, float, float, float]] = {
    Tissue.OUTSIDE: (0.0, 0.0, 0.0, 0.0),
    Tissue.HEALTHY: (0.30, 0.75, 0.35, 1.0),
    Tissue.GGO: (1.00, 0.85, 0.20, 1.0),
    Tissue.FIBROSIS: (0.85, 0.30, 0.85, 1.0),
    Tissue.EMPHYSEMA: (0.20, 0.55, 1.00, 1.0),
    Tissue.CONSOLIDATION: (0.95, 0.25, 0.20, 1.0),
}

#: The pathology classes by their short names (the keys of benchmark JSON files).
PATHOLOGIES: dict[str, Tissue] = {"ggo": Tissue.GGO, "fibrosis": Tissue.FIBROSIS,
                                  "emphysema": Tissue.EMPHYSEMA, "consolidation": Tissue.CONSOLIDATION}

#: Labels that are lung tissue (everything but OUTSIDE).
LUNG_TISSUES: tuple[Tissue, ...] = tuple(t for t in Tissue if t != Tissue.OUTSIDE)
