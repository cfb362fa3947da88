"""The phantom's voxel grid in nominal anatomical millimetres.

The anatomy is always drawn in the same nominal frame, by default a 350 x 350
mm field of view and 300 mm of body along z, whatever the grid shape. ``shape``
only sets the sampling, so a 16 x 48 x 48 phantom and a 300 x 512 x 512 one
show the same chest (``fov`` varies the patient's size per seed; ``z0`` moves
the z range, e.g. below the lungs into the abdomen). Coordinates are float32
and shaped for broadcasting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Nominal field of view (mm) along ``(z, y, x)``.
NOMINAL_FOV = (300.0, 350.0, 350.0)


@dataclass(frozen=True)
class Grid:
    """Voxel centres of a ``(Z, Y, X)`` grid in nominal mm.

    ``z`` runs ``z0`` (inferior edge, default 0) to ``z0 + fov[0]`` (superior
    edge, default 300); the lung bases lie at about z = 30, the apices at about
    270 and the abdomen below 0. ``y`` is 0 at the centre and grows posterior;
    ``x`` is 0 at the centre and grows to patient left.
    """

    shape: tuple[int, int, int]
    #: Nominal mm covered along ``(z, y, x)``; a larger field of view shows a smaller patient.
    fov: tuple[float, float, float] = NOMINAL_FOV
    #: Nominal z (mm) of the inferior edge of the grid.
    z0: float = 0.0

    @property
    def step(self) -> tuple[float, float, float]:
        """Nominal mm per voxel along ``(z, y, x)``."""
        return tuple(f / n for f, n in zip(self.fov, self.shape))  # type: ignore[return-value]

    @property
    def h(self) -> float:
        """A typical voxel size in nominal mm (for anti-aliased drawing)."""
        return float(max(self.step[1], self.step[2]))

    def axis(self, a: int, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Nominal mm of voxel centres ``lo:hi`` along axis ``a``, broadcastable."""
        n = self.shape[a]
        hi = n if hi is None else hi
        c = (np.arange(lo, hi, dtype=np.float32) + 0.5) * np.float32(self.step[a])
        if a > 0:
            c -= np.float32(self.fov[a] / 2)
        elif self.z0:
            c += np.float32(self.z0)
        shape = [1, 1, 1]
        shape[a] = c.size
        return c.reshape(shape)

    @property
    def z(self) -> np.ndarray:
        return self.axis(0)

    @property
    def y(self) -> np.ndarray:
        return self.axis(1)

    @property
    def x(self) -> np.ndarray:
        return self.axis(2)

    def to_index(self, mm: np.ndarray) -> np.ndarray:
        """Continuous voxel indices of nominal ``(..., 3)`` points (z, y, x)."""
        mm = np.asarray(mm, dtype=np.float64)
        offset = np.array([-self.z0, self.fov[1] / 2, self.fov[2] / 2])
        return (mm + offset) / np.asarray(self.step) - 0.5

    def coords(self, flat_index: np.ndarray) -> np.ndarray:
        """Nominal mm ``(N, 3)`` float32 of voxels given by flat indices."""
        idx = np.unravel_index(flat_index, self.shape)
        out = np.empty((len(flat_index), 3), np.float32)
        for a in range(3):
            out[:, a] = self.axis(a).ravel()[idx[a]]
        return out
