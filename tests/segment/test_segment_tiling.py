"""One sliding-window tiler: windows, Hann blending and centre crops put outputs back in place."""

import numpy as np

from diffseglung_core.segment.tiling import (
    CropStitch,
    HannBlend,
    sliding_window,
    window_corners,
    window_starts,
)


def test_window_corners_cover_the_volume():
    assert window_starts(10, 16, 8) == [0]
    assert window_starts(40, 16, 8) == [0, 8, 16, 24]
    assert window_starts(41, 16, 8) == [0, 8, 16, 24, 25]
    corners = window_corners((20, 9, 4), (8, 4, 4), (6, 4, 4))
    assert corners[0] == (0, 0, 0) and corners[-1] == (12, 5, 0)
    covered = np.zeros((20, 9, 4), bool)
    for z, y, x in corners:
        covered[z:z + 8, y:y + 4, x:x + 4] = True
    assert covered.all()


def _identity(batch, indices):
    return batch[:, :1].astype(np.float32)


def test_crop_stitch_puts_every_voxel_back_once():
    rng = np.random.default_rng(0)
    volume = rng.random((19, 23, 17)).astype(np.float32)
    window, margin = (8, 8, 8), 2
    step = [w - 2 * margin for w in window]
    out = sliding_window([volume], window_corners(volume.shape, window, step), window, _identity,
                         CropStitch(volume.shape, volume.shape, window, margin), batch_size=3)
    assert np.array_equal(out[0], volume)


def test_crop_stitch_writes_into_a_larger_volume_at_an_origin():
    volume = np.arange(10 * 12 * 8, dtype=np.float32).reshape(10, 12, 8)
    stitch = CropStitch((14, 20, 9), volume.shape, (6, 6, 6), 1, origin=(2, 5, 1),
                        extent=(9, 12, 8))
    out = sliding_window([volume], window_corners(volume.shape, (6, 6, 6), (4, 4, 4)), (6, 6, 6),
                         _identity, stitch)
    assert np.array_equal(out[0, 2:11, 5:17, 1:9], volume[:9])
    assert not out[0, 11:].any() and not out[0, :2].any()


def test_hann_blend_of_constant_outputs_is_constant_on_a_coarser_grid():
    shape, window, f = (16, 16, 16), (8, 8, 8), 4
    seen = []

    def predict(batch, indices):
        seen.extend(indices)
        return np.full((len(batch), 3, 2, 2, 2), 5.0, np.float32)

    grid = sliding_window([np.zeros(shape, np.float32)], window_corners(shape, window, (4, 4, 4)),
                          window, predict, HannBlend([s // f for s in shape], [w // f for w in window], f),
                          batch_size=4)
    assert grid.shape == (3, 4, 4, 4) and np.allclose(grid, 5.0)
    assert seen == list(range(27))
