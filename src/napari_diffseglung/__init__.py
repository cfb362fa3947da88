"""napari-diffseglung: the napari plugin of diffseglung_core."""

from diffseglung_core import __version__

__all__ = ["__version__"]
