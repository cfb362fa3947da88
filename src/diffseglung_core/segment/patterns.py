"""Labels read as patterns over a region, not voxel by voxel.

Voxel evidence calls each voxel from what lies within a few mm of it. A
radiologist names a *region* by its pattern: ground glass among reticulation
is part of the fibrosis (fine fibrosis below the resolution of CT; Fleischner
Society glossary, Hansell et al., Radiology 246(3), 2008; the ATS/ERS/JRS/ALAT
guideline on idiopathic pulmonary fibrosis, Raghu et al., Am J Respir Crit Care
Med 198(5), 2018), while a few reticular voxels in a hazy region do not make it
fibrotic. Reticulation is a net over lobules: a patch of "walls" smaller than a
secondary pulmonary lobule is where vessels branch or a bronchial wall meets
them, not fibrosis; the cells of the net and the cysts of honeycombing are part
of it. Fibrosis is predominantly subpleural, posterior and basal,
where a band of dependent density lies too: a band that is reticular is
fibrosis, not gravity. Arrays in, arrays out.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy import ndimage as ndi

from ..binary import label
from ..labels import Tissue
from ..lung.coarse import block_mean
from ..lung.morphology import closing
from ..parallel import by_slabs, gaussian_filter
from .features import lung_bbox
from .refine import fill_from_nearest

__all__ = ["fibrosis_regions", "fibrosis_cells", "fibrotic_ground_glass", "reticular_bands"]

#: Side (mm) of the smallest secondary pulmonary lobule (1-2.5 cm across; Webb W. R.,
#: Thin-section CT of the secondary pulmonary lobule, Radiology 239(2), 2006).
LOBULE_MM = 10.0

#: Largest cell of a reticular net or cyst of honeycombing (mm) taken into the fibrosis:
#: honeycomb cysts are mostly 3-10 mm across (Fleischner Society glossary, Hansell et al. 2008).
CELL_MM = 10.0


def fibrosis_regions(labels: np.ndarray, spacing: Sequence[float], *, lobule_mm: float = LOBULE_MM,
                     join_mm: float = 2.5, keep: Optional[np.ndarray] = None) -> np.ndarray:
    """Fibrosis smaller than a secondary pulmonary lobule takes its neighbours' label.

    Reticulation and honeycombing are read over lobules. A region of fibrosis
    is its patches joined across gaps narrower than a cell of the net (a
    closing by a ball of ``join_mm``); a region smaller than a cube of
    ``lobule_mm`` is a junction of vessels, a bronchial wall or the blurred edge
    of the heart that the voxel evidence read as walls, and each of its voxels
    takes the label of the nearest voxel of another tissue (healthy lung, or
    ground glass in a hazy region). In a stack thinner than a lobule (a few
    slices) a region only shows in section: it needs the lobule's
    cross-section times the stack's depth.

    Parameters
    ----------
    labels : (Z, Y, X) uint8
        Label map (0 outside the lung, 1-5 the tissues).
    spacing : (3,) float
        Voxel size (mm) along ``(z, y, x)``.
    lobule_mm : float
        Side (mm) of the smallest region called fibrosis; 0 or less changes nothing.
    join_mm : float
        Radius (mm) of the closing that joins the patches of one net.
    keep : (Z, Y, X) bool, optional
        Voxels that never change (a label a user chose).

    Returns
    -------
    (Z, Y, X) uint8
        A new label map (``labels`` itself when no patch is that small).
    """
    F = int(Tissue.FIBROSIS)
    fib = labels == F
    if lobule_mm <= 0 or not fib.any():
        return labels
    stack_mm = labels.shape[0] * float(spacing[0])
    min_voxels = lobule_mm ** 2 * min(lobule_mm, stack_mm) / float(np.prod(spacing))
    at = lung_bbox(fib)
    parts, n = label(fib[at], np.ones((3, 3, 3), bool))
    small = np.flatnonzero(np.bincount(parts.ravel(), minlength=n + 1)[1:] < min_voxels) + 1
    if small.size == 0:
        return labels
    out = labels.copy()
    sub, fib = out[at], fib[at]
    objects = ndi.find_objects(parts)

    def grown(box: tuple, mm: float) -> tuple:
        reach = [int(np.ceil(mm / float(s))) for s in spacing]
        return tuple(slice(max(0, a.start - r), a.stop + r) for a, r in zip(box, reach))

    kept = np.zeros(n + 1, bool)
    for i in small:
        if kept[i]:
            continue
        if join_mm > 0:
            # other fibrosis within the join: the region is the patches the closing joins;
            # one as large as a lobule lies within a lobule of the patch
            near = grown(objects[i - 1], 2.0 * join_mm)
            if np.count_nonzero(fib[near]) > np.count_nonzero(parts[near] == i):
                box = grown(objects[i - 1], lobule_mm)
                region, _ = label(closing(fib[box], spacing, join_mm), np.ones((3, 3, 3), bool))
                own = region == region[parts[box] == i][0]
                if np.count_nonzero(own) >= min_voxels:
                    kept[np.unique(parts[box][own])] = True  # and the other patches of the region
                    continue
        # its neighbours lie within one voxel
        box = tuple(slice(max(0, a.start - 2), a.stop + 2) for a in objects[i - 1])
        own = parts[box] == i
        if keep is not None:
            own &= ~np.asarray(keep[at][box], bool)
        source = (sub[box] > 0) & (sub[box] != F)
        sub[box] = fill_from_nearest(sub[box], own, source, spacing)
    return out


def fibrosis_cells(labels: np.ndarray, spacing: Sequence[float], *, cell_mm: float = CELL_MM,
                   keep: Optional[np.ndarray] = None) -> np.ndarray:
    """The healthy-labelled cells of a fibrotic net are part of the fibrosis.

    Reticulation is a net of walls around cells of lung, honeycombing a
    cluster of cysts in walls: a radiologist outlines the region, cells and
    cysts included. Where the grid resolves the cells, the voxel evidence
    calls the walls fibrosis and the air of a cell keeps its cluster's label.
    Healthy voxels within the closing of the fibrosis by a box of ``cell_mm``
    (cells and cysts up to that size, open on one side or closed) become
    fibrosis; healthy lung outside the net's reach stays healthy, and no
    voxel of another label changes. The pleura closes a cell as a wall does
    (subpleural cysts of honeycombing lie in rows against it): for the
    closing, what lies outside the lung counts as net wherever the box around
    a cell reaches it. A box, not a ball: its closing is two separable
    filters, and its corners reach about a fifth further.

    Parameters
    ----------
    labels : (Z, Y, X) uint8
        Label map (0 outside the lung, 1-5 the tissues).
    spacing : (3,) float
        Voxel size (mm) along ``(z, y, x)``.
    cell_mm : float
        Side (mm) of the box: the largest cell or cyst taken in; 0 or less changes nothing.
    keep : (Z, Y, X) bool, optional
        Voxels that never change (a label a user chose).

    Returns
    -------
    (Z, Y, X) uint8
        A new label map (``labels`` itself when nothing changes).
    """
    fib = labels == Tissue.FIBROSIS
    if cell_mm <= 0 or not fib.any():
        return labels
    half = [0 if n == 1 else int(cell_mm / 2.0 // float(s)) for s, n in zip(spacing, labels.shape)]
    if not any(half):
        return labels
    size = [2 * h + 1 for h in half]
    at = lung_bbox(fib, max(half))

    def close(f: np.ndarray, outside: np.ndarray) -> np.ndarray:
        # outside the lung counts as net for the erosion; edges replicated: the net
        # does not end at the box
        grown = ndi.maximum_filter(f, size=size, mode="constant", cval=0) | outside
        return ndi.minimum_filter(grown, size=size, mode="nearest")

    outside = (labels[at] == 0).view(np.uint8)
    closed = by_slabs(close, [fib[at].view(np.uint8), outside], halo=2 * half[0]) > 0
    turn = closed & (labels[at] == Tissue.HEALTHY)
    if keep is not None:
        turn &= ~np.asarray(keep, bool)[at]
    if not turn.any():
        return labels
    out = labels.copy()
    out[at][turn] = Tissue.FIBROSIS
    return out


def fibrotic_ground_glass(labels: np.ndarray, spacing: Sequence[float], *, scale_mm: float = 10.0,
                          min_share: float = 1.0 / 3.0,
                          keep: Optional[np.ndarray] = None) -> np.ndarray:
    """Ground glass inside a fibrotic region becomes fibrosis.

    The fibrotic share of a GGO voxel is the share of fibrosis among the
    abnormal (GGO or fibrosis) voxels around it, weighted by a Gaussian of
    ``scale_mm`` (about the size of a few secondary lobules). Where it is at
    least ``min_share`` the voxel is fibrosis; elsewhere ground glass stays
    ground glass, and no voxel of another label changes. The share varies
    slowly: it is read on blocks of about ``scale_mm / 4`` (2.5 mm by default).

    Parameters
    ----------
    labels : (Z, Y, X) uint8
        Label map (0 outside the lung, 1-5 the tissues).
    spacing : (3,) float
        Voxel size (mm) along ``(z, y, x)``.
    scale_mm : float
        Gaussian sigma (mm) of the region.
    min_share : float
        Least fibrotic share, in (0, 1]; 0 or less changes nothing.
    keep : (Z, Y, X) bool, optional
        Voxels that never change (a label a user chose).

    Returns
    -------
    (Z, Y, X) uint8
        A new label map (``labels`` itself when nothing changes).
    """
    G, F = int(Tissue.GGO), int(Tissue.FIBROSIS)
    fib = labels == F
    ggo = labels == G
    if min_share <= 0 or not fib.any() or not ggo.any():
        return labels
    box = lung_bbox(fib | ggo, int(np.ceil(2.5 * scale_mm / min(float(s) for s in spacing))))
    # the share varies over ``scale_mm``: read it on blocks of about a quarter of that
    blocks = [1 if labels.shape[a] == 1 else max(1, int(scale_mm / 4.0 / float(s)))
              for a, s in enumerate(spacing)]
    sigma = [0.0 if labels.shape[a] == 1 else scale_mm / float(s) / b
             for a, (s, b) in enumerate(zip(spacing, blocks))]
    f = gaussian_filter(block_mean(fib[box], blocks), sigma, truncate=2.5)
    a = gaussian_filter(block_mean(fib[box] | ggo[box], blocks), sigma, truncate=2.5)
    at = np.nonzero(ggo[box])
    cell = tuple(i // b for i, b in zip(at, blocks))
    turn = f[cell] >= np.float32(min_share) * a[cell]
    if keep is not None:
        turn &= ~np.asarray(keep, bool)[box][at]
    if not turn.any():
        return labels
    out = labels.copy()
    out[box][tuple(i[turn] for i in at)] = F
    return out


def reticular_bands(labels: np.ndarray, band: np.ndarray, dense: np.ndarray, *,
                    min_share: float = 1.0 / 3.0, keep: Optional[np.ndarray] = None) -> np.ndarray:
    """The dense parenchyma of a band that is largely fibrosis becomes fibrosis.

    A thin band of denser lung under the posterior pleura is dependent density
    (gravity) and labelled healthy, but fibrosis is predominantly there. Each
    connected part of ``band`` of which at least ``min_share`` is labelled
    fibrosis (its net of walls) is reticulation along the pleura: its dense,
    healthy-labelled voxels are fibrosis too; the other parts stay as they are.

    Parameters
    ----------
    labels : (Z, Y, X) uint8
        Label map (0 outside the lung, 1-5 the tissues).
    band : (Z, Y, X) bool
        The band (e.g. the dependent band of :class:`~.evidence.TissueEvidence`).
    dense : (Z, Y, X) bool
        Parenchyma dense enough to be ground glass.
    min_share : float
        Least share of fibrosis in a part of the band, in (0, 1]; 0 or less changes nothing.
    keep : (Z, Y, X) bool, optional
        Voxels that never change (a label a user chose).

    Returns
    -------
    (Z, Y, X) uint8
        A new label map (``labels`` itself when nothing changes).
    """
    if min_share <= 0 or not band.any():
        return labels
    parts, n = label(band)
    size = np.bincount(parts[band], minlength=n + 1)
    fibrotic = np.bincount(parts[band & (labels == Tissue.FIBROSIS)], minlength=n + 1)
    reticular = fibrotic >= min_share * np.maximum(size, 1)
    reticular[0] = False
    turn = reticular[parts] & dense & (labels == Tissue.HEALTHY)
    if keep is not None:
        turn &= ~np.asarray(keep, bool)
    if not turn.any():
        return labels
    out = labels.copy()
    out[turn] = Tissue.FIBROSIS
    return out
