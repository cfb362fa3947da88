"""Exceptions raised by the core for problems a user can fix.

Every error that reaches a user carries one line that names the file (when
there is one) and the problem. The CLI and the napari plugin print
``str(err)`` and nothing else.
"""

from __future__ import annotations


class DiffSegLungError(Exception):
    """Base class of every error the core raises on purpose."""


class ScanReadError(DiffSegLungError):
    """A scan file cannot be read, or is not a usable chest CT."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class OutputExistsError(DiffSegLungError):
    """A file would be overwritten without the caller asking for it."""

    def __init__(self, path):
        self.path = str(path)
        super().__init__(f"{self.path}: file exists (pass overwrite=True / --overwrite to replace it)")


class OutputTypeError(DiffSegLungError, ValueError):
    """No writer takes the ending of an output file name."""


class GridMismatchError(DiffSegLungError):
    """Two arrays that must share a voxel grid do not."""


def require_same_grid(shape, reference, what: str, of: str) -> None:
    """Raise :class:`GridMismatchError` unless an array of ``shape`` lies on ``reference``'s grid.

    Parameters
    ----------
    shape, reference : sequence of int
        The array's shape and the shape it must have.
    what, of : str
        Names of the two, for the message (``"lung mask"``, ``"scan"``).
    """
    if tuple(shape) != tuple(reference):
        raise GridMismatchError(f"{what} shape {tuple(shape)} != {of} shape {tuple(reference)}")


class NoLungFoundError(DiffSegLungError):
    """No lung could be found in a scan."""


class CheckpointError(DiffSegLungError):
    """A checkpoint is missing, corrupt, or from an incompatible model."""


class Cancelled(DiffSegLungError):
    """Long work was cancelled by the caller (see :mod:`diffseglung_core.progress`)."""
