import numpy as np

from diffseglung_core.labels import TISSUE_COLORS, Tissue
from diffseglung_core.render import axial_overview, montage, overlay, save_png, window


def test_window_maps_limits_to_black_and_white():
    g = window(np.array([-2000, -1350, -600, 150, 900]), -1350, 150)
    np.testing.assert_allclose(g, [0, 0, 0.5, 1, 1])


def test_overlay_colours_only_labelled_pixels():
    hu = np.full((4, 4), -600.0)
    labels = np.zeros((4, 4), np.uint8)
    labels[0, 0] = Tissue.CONSOLIDATION
    rgb = overlay(hu, labels, alpha=1.0)
    expected = (np.asarray(TISSUE_COLORS[Tissue.CONSOLIDATION][:3]) * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(rgb[0, 0], expected)
    assert np.all(rgb[1:, 1:] == rgb[1, 1]) and rgb[1, 1, 0] == rgb[1, 1, 1]  # gray elsewhere


def test_montage_and_overview_shapes(tmp_path):
    tiles = [np.full((5, 6, 3), i, np.uint8) for i in range(5)]
    m = montage(tiles, columns=2, pad=1)
    assert m.shape == (3 * 6 + 1, 2 * 7 + 1, 3)
    hu = np.random.default_rng(0).normal(-800, 50, (10, 8, 8))
    labels = np.zeros(hu.shape, np.uint8)
    labels[3:7, 2:6, 2:6] = 1
    ov = axial_overview(hu, labels, n_slices=4, columns=4)
    assert ov.shape[0] == 8 + 8  # one row of 8-pixel tiles with padding
    path = save_png(tmp_path / "o.png", ov)
    from PIL import Image
    assert np.array_equal(np.asarray(Image.open(path)), ov)
