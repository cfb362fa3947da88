"""Random fields: smooth textures, lesion propensities and CT noise."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .grid import Grid


def coarse_field(grid: Grid, scale_mm: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Unit-variance smooth noise on a coarse grid with features of ``scale_mm``.

    Returns the coarse ``(z, y, x)`` float32 field and its nominal spacing (mm),
    to be sampled with :func:`sample_field`. Coarse sampling keeps large
    phantoms cheap: the field is only evaluated where it is needed.
    """
    cstep = np.maximum(np.asarray(grid.step), scale_mm / 2.5)
    fov = np.asarray(grid.step) * np.asarray(grid.shape)
    cshape = np.maximum(np.ceil(fov / cstep).astype(int) + 2, 1)
    field = rng.standard_normal(tuple(cshape), dtype=np.float32)
    sigma = scale_mm / 2.0 / cstep
    sigma[np.asarray(grid.shape) == 1] = 0.0
    field = ndi.gaussian_filter(field, sigma, mode="wrap")
    field /= max(float(field.std()), 1e-6)
    return field, cstep


def sample_field(field: tuple[np.ndarray, np.ndarray], grid: Grid, points_mm: np.ndarray) -> np.ndarray:
    """Values (N,) float32 of a :func:`coarse_field` at nominal ``(N, 3)`` points."""
    data, cstep = field
    offset = np.array([-grid.z0, grid.step[1] * grid.shape[1] / 2, grid.step[2] * grid.shape[2] / 2])
    idx = ((points_mm + offset) / cstep).T
    return ndi.map_coordinates(data, idx, order=1, mode="nearest").astype(np.float32)


def ct_noise(shape: tuple[int, int, int], spacing, noise_hu: float, rng: np.random.Generator,
             correlation_mm: float = 0.6) -> np.ndarray:
    """Gaussian CT noise (HU) of standard deviation ``noise_hu``, slightly correlated.

    White noise is smoothed by a Gaussian of ``correlation_mm`` (in-plane, the
    reconstruction kernel's footprint) and rescaled to ``noise_hu``.
    """
    if noise_hu <= 0:
        return np.zeros(shape, np.float32)
    noise = rng.standard_normal(shape, dtype=np.float32)
    sigma = [0.0 if n == 1 else 0.5 * correlation_mm / s for n, s in zip(shape, spacing)]
    sigma[0] = min(sigma[0], 0.5)
    if any(sg > 0 for sg in sigma):
        noise = ndi.gaussian_filter(noise, sigma)
    noise *= np.float32(noise_hu / max(float(noise.std()), 1e-6))
    return noise
