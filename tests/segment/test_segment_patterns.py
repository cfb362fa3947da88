"""Region patterns of the labels (segment.patterns)."""

from __future__ import annotations

import numpy as np

from diffseglung_core.labels import Tissue
from diffseglung_core.segment.patterns import (
    fibrosis_cells,
    fibrosis_regions,
    fibrotic_ground_glass,
    reticular_bands,
)

H, G, F = int(Tissue.HEALTHY), int(Tissue.GGO), int(Tissue.FIBROSIS)
SPACING = (2.0, 1.0, 1.0)


def _lung(shape=(20, 100, 160)):
    return np.full(shape, H, np.uint8)


def test_fibrosis_smaller_than_a_lobule_takes_its_neighbours_label():
    """A 6 mm patch of fibrosis in healthy lung (a vessel junction) becomes healthy, one in
    ground glass becomes ground glass; a 14 mm patch (larger than the smallest lobule, 10 mm)
    and a voxel a user chose stay fibrosis."""
    labels = _lung()
    labels[4:7, 10:16, 10:16] = F                 # 3 slices x 6 x 6 mm: 216 mm3
    labels[2:12, 40:70, 10:40] = G                # a hazy region
    labels[6:9, 52:58, 22:28] = F                 # with a small patch inside
    labels[4:11, 20:34, 100:114] = F              # 14 x 14 x 14 mm: 2.7 mL
    keep = np.zeros(labels.shape, bool)
    keep[5, 12, 12] = True
    out = fibrosis_regions(labels, SPACING, keep=keep)
    assert np.all(out[4:7, 10:16, 10:16][~keep[4:7, 10:16, 10:16]] == H)
    assert out[5, 12, 12] == F
    assert np.all(out[6:9, 52:58, 22:28] == G)
    assert np.all(out[4:11, 20:34, 100:114] == F)
    assert np.array_equal(out[labels != F], labels[labels != F])  # only fibrosis changes
    assert labels[4, 10, 10] == F  # the input is left as it was
    assert fibrosis_regions(labels, SPACING, lobule_mm=0.0) is labels


def test_in_a_stack_thinner_than_a_lobule_fibrosis_needs_a_lobule_in_section():
    """Two 1 mm slices: a patch 12 x 12 mm in section is a lobule cut by the stack (it stays);
    one 6 x 6 mm is not."""
    labels = _lung((2, 60, 60))
    labels[:, 5:17, 5:17] = F
    labels[:, 30:36, 30:36] = F
    out = fibrosis_regions(labels, (0.5, 1.0, 1.0))
    assert np.all(out[:, 5:17, 5:17] == F)
    assert np.all(out[:, 30:36, 30:36] == H)


def test_ground_glass_among_reticulation_is_fibrosis_and_a_hazy_region_stays_ground_glass():
    labels = _lung()
    rng = np.random.default_rng(0)
    # a subpleural band: a net of fibrosis voxels (half of them) with ground glass between
    band = (slice(4, 16), slice(10, 40), slice(10, 70))
    labels[band] = np.where(rng.random(labels[band].shape) < 0.5, F, G)
    # a hazy region with a few reticular voxels (8 %), well away from the band
    haze = (slice(4, 16), slice(60, 90), slice(90, 150))
    labels[haze] = np.where(rng.random(labels[haze].shape) < 0.08, F, G)
    out = fibrotic_ground_glass(labels, SPACING)
    assert np.mean(out[band][2:-2, 5:-5, 5:-5] == F) > 0.99
    assert np.array_equal(out[haze] == F, labels[haze] == F)  # nothing turned there
    assert np.array_equal(out[labels != G], labels[labels != G])  # only ground glass changes
    assert out is not labels and labels[band].min() == G  # the input is left as it was


def test_keep_protects_voxels_and_zero_share_changes_nothing():
    labels = _lung()
    labels[5:15, 20:50, 20:80] = G
    labels[5:15, 20:50, 20:80:2] = F
    keep = np.zeros(labels.shape, bool)
    keep[:, :, :50] = True
    out = fibrotic_ground_glass(labels, SPACING, keep=keep)
    assert np.array_equal(out[keep], labels[keep])
    assert np.all(out[5:15, 25:45, 55:75] == F)
    assert fibrotic_ground_glass(labels, SPACING, min_share=0.0) is labels
    no_fibrosis = np.where(labels == F, G, labels).astype(np.uint8)
    assert fibrotic_ground_glass(no_fibrosis, SPACING) is no_fibrosis


def test_label_map_applies_the_pattern_with_evidence_and_keeps_clusters_a_user_named():
    from types import SimpleNamespace

    from diffseglung_core.segment.assign import LabelMapping
    from diffseglung_core.segment.engine import label_map

    lung = np.zeros((10, 40, 60), np.uint8)
    lung[2:8, 5:35, 5:55] = 1
    n = int(lung.sum())
    z, y, x = np.nonzero(lung)
    label = np.where((x + y) % 2 == 0, F, G)  # a net of fibrosis with ground glass between
    probs = np.zeros((n, 6), np.float32)
    probs[np.arange(n), label] = 1.0
    cluster = (x < 30).astype(int)  # cluster 1 on the left, 0 on the right
    posteriors = np.eye(2, dtype=np.float32)[cluster]
    result = SimpleNamespace(lung=lung, spacing=(2.0, 1.0, 1.0), posteriors=posteriors,
                             evidence=SimpleNamespace(dependent=None))
    mapping = LabelMapping(labels=[G, G])
    out = label_map(result, probs, mapping, refine=False)
    assert np.all(out[lung > 0] == F)  # the ground glass between the net is fibrosis
    named = label_map(result, probs, mapping.with_label(1, G), refine=False)
    left = (lung > 0) & (np.arange(60) < 30)[None, None, :]
    assert np.all(named[left][label[x < 30] == G] == G)  # the user's cluster keeps its GGO
    assert np.all(named[(lung > 0) & ~left] == F)
    result.evidence = None  # without structure evidence the labels are the argmax
    plain = label_map(result, probs, mapping, refine=False)
    assert np.array_equal(plain[lung > 0], label)


def test_a_dependent_band_that_is_largely_fibrosis_is_fibrosis_and_a_smooth_one_stays_healthy():
    """Two parts of a posterior band, their dense parenchyma labelled healthy (dependent density):
    one holds a net of fibrosis on 40 % of its voxels (reticulation along the pleura), the other
    on 10 %. Only the first one's dense healthy voxels turn fibrosis; light voxels, other labels
    and voxels a user chose never change."""
    labels = np.full((4, 30, 60), Tissue.HEALTHY, np.uint8)
    band = np.zeros(labels.shape, bool)
    band[:, 24:30, 2:28] = True                    # reticular part
    band[:, 24:30, 32:58] = True                   # smooth part
    rng = np.random.default_rng(0)
    net = band & (rng.random(labels.shape) < 0.4) & (np.arange(60) < 30)
    speck = band & (rng.random(labels.shape) < 0.1) & (np.arange(60) >= 30)
    labels[net | speck] = Tissue.FIBROSIS
    labels[:, 29, 5] = Tissue.EMPHYSEMA
    dense = band.copy()
    dense[:, 24, :] = False                        # the band's first row reads light
    keep = np.zeros(labels.shape, bool)
    keep[0] = True
    out = reticular_bands(labels, band, dense, min_share=1 / 3, keep=keep)
    reticular = band & (np.arange(60) < 30)
    turned = out != labels
    assert (turned == (reticular & dense & (labels == Tissue.HEALTHY) & ~keep)).all()
    assert (out[turned] == Tissue.FIBROSIS).all()
    assert reticular_bands(labels, band, dense, min_share=0) is labels
    assert reticular_bands(labels, band, dense, min_share=0.5) is labels   # 40 % is not half


def test_label_map_judges_fibrosis_regions_after_the_patterns_complete_them():
    """A reticular band of 6 mm slices whose net shows in every other slice: each slice's
    part is smaller than a lobule, the band that ``reticular_bands`` completes is not, and it
    stays fibrosis; a lone patch of fibrosis in healthy lung becomes healthy."""
    from types import SimpleNamespace

    from diffseglung_core.segment.assign import LabelMapping
    from diffseglung_core.segment.engine import label_map

    lung = np.zeros((5, 40, 60), np.uint8)
    lung[:, 2:38, 2:58] = 1
    band = np.zeros(lung.shape, bool)
    band[:, 30:36, 5:25] = True                    # 6 x 20 mm, 6 mm slices: 720 mm3 per slice
    label = np.full(lung.shape, H, np.uint8)
    label[0::2][band[0::2]] = F
    label[2, 5:10, 40:45] = F                      # 5 x 5 x 6 mm in healthy lung
    inside = lung > 0
    probs = np.zeros((int(inside.sum()), 6), np.float32)
    probs[np.arange(probs.shape[0]), label[inside]] = 1.0
    evidence = SimpleNamespace(dependent=band[inside], parenchyma_hu=np.where(band[inside], 200.0, 0.0),
                               healthy_hu=np.zeros(probs.shape[0]))
    result = SimpleNamespace(lung=lung, spacing=(6.0, 1.0, 1.0), evidence=evidence,
                             posteriors=np.ones((probs.shape[0], 1), np.float32))
    out = label_map(result, probs, LabelMapping(labels=[H]), refine=False)
    assert np.all(out[band] == F)
    assert np.all(out[2, 5:10, 40:45] == H)


def test_the_cells_of_a_fibrotic_net_are_fibrosis_and_lung_beyond_it_stays_healthy():
    """A net of 1 mm walls around 5 mm cells (reticulation) labelled fibrosis, its cells
    healthy: the cells become fibrosis. A 20 mm healthy hole inside the net keeps its middle,
    lung 8 mm or more beyond the net stays healthy, ground glass among the walls and voxels a
    user chose do not change."""
    labels = _lung((20, 100, 160))
    net = np.zeros(labels.shape, bool)
    net[:, 20:81, 20:105] = True                   # walls on rows 20, 26, .., 80 and columns 20, .., 104
    cells = net.copy()
    cells[:, 20:81:6, :] = False
    cells[:, :, 20:105:6] = False
    labels[net & ~cells] = F                       # the walls
    hole = np.zeros(labels.shape, bool)
    hole[:, 40:60, 60:80] = True
    labels[hole] = H                               # a 20 mm hole in the net
    labels[3, 23:25, 23:25] = G                    # ground glass in one cell
    keep = np.zeros(labels.shape, bool)
    keep[10, 29:31, 29:31] = True
    out = fibrosis_cells(labels, SPACING, keep=keep)
    inner = cells & ~hole & ~keep
    inner[3, 23:25, 23:25] = False
    assert np.all(out[inner] == F)
    assert np.all(out[:, 47:53, 67:73] == H)       # the middle of the 20 mm hole
    assert np.all(out[:, :, 113:] == H) and np.all(out[:, 89:, :] == H)
    assert np.all(out[3, 23:25, 23:25] == G) and np.all(out[keep] == H)
    assert fibrosis_cells(labels, SPACING, cell_mm=0.0) is labels


def test_the_pleura_closes_subpleural_cells_and_spares_lung_away_from_the_net():
    """A net of 5 mm cells whose outermost wall runs 4 mm inside the pleura (outside the lung,
    label 0), with no wall across the strip between them: the pleura closes the strip's cells
    as a wall would, and they become fibrosis. Healthy lung against the pleura 20 mm away from
    the net, and lung 8 mm or more beyond the net, stay healthy."""
    labels = _lung((20, 100, 160))
    labels[:, :10, :] = 0                          # the chest wall: the lung starts at row 10
    net = np.zeros(labels.shape, bool)
    net[:, 14:40, 20:81] = True
    cells = net.copy()
    cells[:, 14:40:5, :] = False
    cells[:, :, 20:81:5] = False
    labels[net & ~cells] = F                       # walls on rows 14, 19, .. and columns 20, 25, ..
    labels[:, 10:13, 150:156] = F                  # another patch, on the pleura
    out = fibrosis_cells(labels, SPACING)
    assert np.all(out[:, 10:14, 22:79] == F)       # the subpleural strip
    assert np.all(out[:, 10:17, 95:135] == H)      # pleura-side lung away from the net
    assert np.all(out[:, 48:, :] == H)             # lung beyond the net's reach
    assert np.array_equal(out == 0, labels == 0)   # nothing outside the lung becomes lung
