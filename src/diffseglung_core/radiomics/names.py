"""The 34 radiomic features: stable names, groups and fixed parameters.

The order of :data:`FEATURE_NAMES` is the column order of every ``(..., 34)``
array this package returns. Where pyradiomics computes the same quantity the
name is pyradiomics' (``firstorder_Mean``, ``glcm_Contrast``); the others carry
their own prefix (``hu_``, ``lbp_``, ``gabor_``). docs/radiomics.md gives the
definition of each.
"""

from __future__ import annotations

#: Width of one gray level when binning HU for entropy and the GLCM (HU).
BIN_WIDTH = 25.0
#: Gray levels above this are clipped to it (bounds GLCM memory; a patch
#: needs a HU range wider than ``MAX_LEVELS * BIN_WIDTH`` = 3200 HU to be affected).
MAX_LEVELS = 128

#: GLCM offsets ``(dz, dy, dx)``, distance 1: one of each +/- pair of the 26
#: neighbours, the 13 directions of pyradiomics' 3D GLCM.
GLCM_OFFSETS: tuple[tuple[int, int, int], ...] = tuple(
    (dz, dy, dx)
    for dz in (-1, 0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
    if (dz, dy, dx) > (0, 0, 0)
)

#: Percentiles of the first-order features (numpy's default linear rule).
PERCENTILES = (10.0, 25.0, 50.0, 75.0, 90.0)

#: HU thresholds of the density fractions: below -950, below -910, in [-700, -250].
FRACTION_BELOW = (-950.0, -910.0)
FRACTION_BETWEEN = (-700.0, -250.0)

#: The 8 neighbours of a 3x3 ring in a plane, in circular order ``(da, db)``.
LBP_RING: tuple[tuple[int, int], ...] = (
    (-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))
#: The three orthogonal planes of LBP-TOP, as pairs of axes of a (z, y, x) patch.
LBP_PLANES: tuple[tuple[int, int], ...] = ((1, 2), (0, 2), (0, 1))
#: Rotation-invariant uniform LBP code (0..8 ones, 9 non-uniform) -> histogram bin.
LBP_BIN_OF_CODE: tuple[int, ...] = (0, 0, 1, 1, 2, 3, 3, 4, 4, 5)

#: Gabor wavelengths (voxels); the Gaussian envelope has sigma = wavelength / 2
#: and is cut at 2 sigma (kernels 7x7 and 13x13).
GABOR_WAVELENGTHS = (3.0, 6.0)
#: Gabor orientations in the axial (y, x) plane, degrees from the x axis.
GABOR_ANGLES = (0.0, 60.0, 120.0)

FIRSTORDER_NAMES = (
    "firstorder_Mean",
    "firstorder_StandardDeviation",
    "firstorder_Skewness",
    "firstorder_Kurtosis",
    "firstorder_10Percentile",
    "firstorder_Median",
    "firstorder_90Percentile",
    "firstorder_InterquartileRange",
    "firstorder_Entropy",
    "hu_FractionBelow950",
    "hu_FractionBelow910",
    "hu_FractionBetween700And250",
)
GLCM_NAMES = (
    "glcm_Contrast",
    "glcm_JointEntropy",
    "glcm_Correlation",
    "glcm_Idm",
    "glcm_JointEnergy",
    "glcm_JointAverage",
    "glcm_Autocorrelation",
    "glcm_ClusterShade",
    "glcm_ClusterProminence",
    "glcm_DifferenceEntropy",
)
LBP_NAMES = (
    "lbp_Uniform0to1",
    "lbp_Uniform2to3",
    "lbp_Uniform4",
    "lbp_Uniform5to6",
    "lbp_Uniform7to8",
    "lbp_NonUniform",
)
GABOR_NAMES = tuple(
    f"gabor_L{int(w)}_A{int(a)}" for w in GABOR_WAVELENGTHS for a in GABOR_ANGLES
)

#: All 34 names, in column order.
FEATURE_NAMES: tuple[str, ...] = FIRSTORDER_NAMES + GLCM_NAMES + LBP_NAMES + GABOR_NAMES
N_FEATURES = len(FEATURE_NAMES)
assert N_FEATURES == 34

#: Group name -> column slice.
GROUPS: dict[str, slice] = {}
_start = 0
for _group, _names in (("firstorder", FIRSTORDER_NAMES), ("glcm", GLCM_NAMES),
                       ("lbp", LBP_NAMES), ("gabor", GABOR_NAMES)):
    GROUPS[_group] = slice(_start, _start + len(_names))
    _start += len(_names)
del _start, _group, _names

#: Features pyradiomics also computes (same name, same definition).
PYRADIOMICS_NAMES: tuple[str, ...] = tuple(
    n for n in FEATURE_NAMES if n.startswith(("firstorder_", "glcm_")))


def group_of(name: str) -> str:
    """The group (``firstorder``, ``glcm``, ``lbp``, ``gabor``) of a feature name."""
    i = FEATURE_NAMES.index(name)
    return next(g for g, s in GROUPS.items() if s.start <= i < s.stop)
