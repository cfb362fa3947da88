"""Distance maps and connected components agree with scipy.ndimage."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from diffseglung_core import parallel
from diffseglung_core.binary import distance_inside, label


def _blobs(shape, seed=0):
    rng = np.random.default_rng(seed)
    mask = ndi.binary_dilation(rng.random(shape) > 0.99, iterations=2)
    return mask | (rng.random(shape) > 0.8)


@pytest.mark.parametrize("shape, spacing", [
    ((17, 30, 40), (2.5, 0.7, 1.3)),  # anisotropic, three different axes
    ((30, 40), (0.78, 1.1)),
    ((200,), (0.5,)),
    ((1, 30, 40), (5.0, 0.7, 0.7)),  # a single slice
    ((30, 1, 40), (0.7, 5.0, 1.3)),  # other axes of one voxel
    ((30, 40, 1), (0.7, 1.3, 5.0)),
    ((1, 1, 40), (5.0, 0.7, 0.7)),
    ((9, 30, 40), (1e9, 0.7, 0.7)),  # slices infinitely far apart: slice by slice
])
def test_distance_inside_equals_scipy(shape, spacing):
    mask = _blobs(shape)
    got = distance_inside(mask, spacing)
    assert got.dtype == np.float32 and got.shape == mask.shape
    np.testing.assert_allclose(got, ndi.distance_transform_edt(mask, sampling=spacing), rtol=1e-6)
    assert not got[~mask].any()


def test_distance_inside_of_a_view_and_of_a_full_mask():
    mask = _blobs((12, 40, 50))
    view = mask[:, ::2, 5:]  # not contiguous
    np.testing.assert_allclose(distance_inside(view), ndi.distance_transform_edt(view), rtol=1e-6)
    # with nothing outside the mask, scipy's values (edt alone would give inf)
    full = np.ones((3, 4, 5), bool)
    np.testing.assert_allclose(distance_inside(full, (2.0, 1.0, 0.5)),
                               ndi.distance_transform_edt(full, sampling=(2.0, 1.0, 0.5)), rtol=1e-6)


@pytest.mark.parametrize("shape", [(15, 40, 50), (1, 40, 50), (40, 50), (1, 1, 9)])
def test_label_equals_scipy(shape):
    for seed, density in enumerate((0.05, 0.3, 0.6)):
        mask = np.random.default_rng(seed).random(shape) < density
        want, n_want = ndi.label(mask)
        got, n = label(mask)
        assert n == n_want and got.dtype == np.int32
        np.testing.assert_array_equal(got, want)  # the same numbers, in raster order


def test_label_with_other_structures_is_scipys():
    mask = _blobs((10, 30, 30))
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = True  # components within each slice
    for m, structure in [(mask, in_plane), (mask, np.ones((3, 3, 3), bool)),
                         (mask[0], np.ones((3, 3), bool)), (mask[0, 0], None)]:
        got, n = label(m, structure)
        want, n_want = ndi.label(m, structure)
        assert n == n_want > 1
        np.testing.assert_array_equal(got, want)


def test_library_threads_are_one_inside_a_worker(monkeypatch):
    monkeypatch.setattr(parallel, "cpu_threads", lambda: 3)
    assert parallel.free_threads() == 3
    assert parallel.thread_map(lambda _: parallel.free_threads(), range(4)) == [1] * 4
