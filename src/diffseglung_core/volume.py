"""The CT volume type and the one place where HU are normalised.

Conventions
-----------
* ``CTVolume.hu`` is float32 Hounsfield units indexed ``(z, y, x)``: ``z`` runs
  inferior to superior, ``y`` anterior to posterior, ``x`` patient right to
  patient left. An axial slice ``hu[k]`` therefore shows the patient in the
  radiological view (anterior up, patient's right on the viewer's left).
* ``CTVolume.spacing`` is the voxel size in mm along ``(z, y, x)``.
* ``CTVolume.affine`` maps ``(z, y, x, 1)`` voxel indices to RAS+ world
  coordinates in mm (the NIfTI/nibabel world).
* Readers reorient every file to this layout and keep what they undid in
  ``CTVolume.source`` so that :meth:`CTVolume.to_native` puts any array back on
  the file's own grid, and writers save it with the file's own affine.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

#: HU that map to -1 and the HU width that maps to 1 in the normalised scale.
HU_OFFSET = 1000.0
HU_SCALE = 700.0


def normalize_hu(hu: np.ndarray) -> np.ndarray:
    """Map HU to the model's scale, ``(HU + 1000) / 700 - 1``.

    Air (-1000 HU) maps to -1, water (0 HU) to about 0.43. No clipping and no
    per-patch rescaling: absolute density is kept (HU preservation). Works on
    numpy arrays and torch tensors alike.
    """
    return (hu + HU_OFFSET) / HU_SCALE - 1.0


def denormalize_hu(x: np.ndarray) -> np.ndarray:
    """Inverse of :func:`normalize_hu`: model scale back to HU."""
    return (x + 1.0) * HU_SCALE - HU_OFFSET


#: Axis codes (nibabel convention, one per array axis) of the internal layout.
CANONICAL_AXCODES = ("S", "P", "L")


@dataclass(frozen=True)
class ScanSource:
    """Where a volume came from and how to put results back on its grid.

    Attributes
    ----------
    path : str
        File or folder that was read ("" for volumes made in memory).
    format : str
        Reader name: ``"nifti"``, ``"dicom"``, ``"nrrd"``, ``"npz"``, ``"tiff"``,
        ``"phantom"``, ...
    native_shape : tuple of int
        Array shape as stored in the file.
    native_affine : (4, 4) float64 ndarray
        Voxel-to-RAS affine of the array as stored in the file.
    orientation : str
        Axis codes of the stored array, e.g. ``"LPS"`` or ``"RAS"``.
    to_canonical : (N, 2) float ndarray
        nibabel orientation transform from the stored array to ``(z, y, x)``
        (see :func:`nibabel.orientations.ornt_transform`).
    description : str
        Free text shown to users (series description, warnings, ...).
    """

    path: str = ""
    format: str = "memory"
    native_shape: tuple[int, ...] = ()
    native_affine: Optional[np.ndarray] = None
    orientation: str = "SPL"
    to_canonical: Optional[np.ndarray] = None
    description: str = ""
    metadata: dict = field(default_factory=dict)


@dataclass
class CTVolume:
    """A CT scan in HU on a known grid.

    Attributes
    ----------
    hu : (Z, Y, X) float32 ndarray
        Hounsfield units.
    spacing : tuple of 3 float
        Voxel size in mm along ``(z, y, x)``.
    affine : (4, 4) float64 ndarray
        Voxel index ``(z, y, x)`` to RAS+ world (mm).
    source : ScanSource
        Provenance and the way back to the file's grid.
    """

    hu: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    source: ScanSource = field(default_factory=ScanSource)

    def __post_init__(self) -> None:
        self.hu = np.asarray(self.hu, dtype=np.float32)
        if self.hu.ndim != 3:
            raise ValueError(f"CTVolume needs a 3D (z, y, x) array, got shape {self.hu.shape}")
        self.spacing = tuple(float(s) for s in self.spacing)
        if len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise ValueError(f"spacing must be 3 positive values in mm, got {self.spacing}")
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {self.affine.shape}")

    @classmethod
    def from_array(cls, hu: np.ndarray, spacing=(1.0, 1.0, 1.0), *,
                   origin=(0.0, 0.0, 0.0), source: Optional[ScanSource] = None) -> CTVolume:
        """Wrap a ``(z, y, x)`` HU array in the canonical layout.

        ``origin`` is the RAS world position (mm) of voxel ``(0, 0, 0)``.
        """
        return cls(hu=hu, spacing=spacing, affine=canonical_affine(spacing, origin),
                   source=source or ScanSource())

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.hu.shape)  # type: ignore[return-value]

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in mL."""
        return float(np.prod(self.spacing)) / 1000.0

    def with_hu(self, hu: np.ndarray) -> CTVolume:
        """A copy on the same grid with other HU values."""
        return replace(self, hu=hu)

    def with_position(self, code: Optional[str]) -> CTVolume:
        """A copy whose source says the patient lay in DICOM PatientPosition ``code``.

        For files that do not store it (NIfTI, NRRD, ...) or to correct it; ``""``
        makes the position unknown, None returns the volume unchanged. See
        :mod:`diffseglung_core.gravity`.
        """
        if code is None:
            return self
        metadata = {k: v for k, v in self.source.metadata.items() if k != "patient_position"}
        if code.strip():
            metadata["patient_position"] = code.strip().upper()
        return replace(self, source=replace(self.source, metadata=metadata))

    def to_native(self, array: np.ndarray) -> np.ndarray:
        """Put a ``(z, y, x)`` array on the grid of the file this volume was read from."""
        if array.shape != self.hu.shape:
            raise ValueError(f"array shape {array.shape} != volume shape {self.hu.shape}")
        if self.source.to_canonical is None:
            return array
        from nibabel.orientations import apply_orientation, ornt_transform

        # to_canonical maps native -> canonical; invert it.
        n = self.source.to_canonical.shape[0]
        identity = np.column_stack([np.arange(n), np.ones(n)])
        back = ornt_transform(identity, self.source.to_canonical)
        return np.ascontiguousarray(apply_orientation(array, back))

    @property
    def native_affine(self) -> np.ndarray:
        """The affine to write :meth:`to_native` arrays with."""
        if self.source.native_affine is None:
            return self.affine
        return self.source.native_affine


def canonical_affine(spacing, origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Voxel ``(z, y, x)`` to RAS affine of an axis-aligned canonical grid.

    ``x`` runs to patient left (RAS -x), ``y`` to posterior (RAS -y), ``z`` to
    superior (RAS +z).
    """
    sz, sy, sx = (float(s) for s in spacing)
    aff = np.zeros((4, 4))
    aff[0, 2] = -sx
    aff[1, 1] = -sy
    aff[2, 0] = sz
    aff[:3, 3] = origin
    aff[3, 3] = 1.0
    return aff
