"""Unsupervised segmentation: features, GMM, HU-guided labels, Sobel-Diffusion Fusion, reports."""

from .assign import AssignmentRules, LabelMapping
from .engine import SegmentationResult, apply_mapping, segment_volume
from .options import RefineOptions, SegmentOptions

__all__ = ["segment_volume", "apply_mapping", "SegmentationResult", "SegmentOptions",
           "RefineOptions", "LabelMapping", "AssignmentRules"]
