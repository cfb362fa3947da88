"""Threaded array work gives exactly the single-call results."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from diffseglung_core import parallel


@pytest.fixture(params=[1, 3])
def threads(request, monkeypatch):
    monkeypatch.setattr(parallel, "cpu_threads", lambda: request.param)
    return request.param


def test_thread_map_keeps_order(threads):
    assert parallel.thread_map(lambda v: v * v, range(10)) == [v * v for v in range(10)]


@pytest.mark.parametrize("sigma", [(0.0, 1.0, 2.0), (1.5, 0.7, 0.7), (3.2, 1.0, 1.0)])
def test_gaussian_filter_equals_scipy(threads, sigma):
    x = np.random.default_rng(0).normal(size=(41, 23, 19)).astype(np.float32)
    want = ndi.gaussian_filter(x, sigma, truncate=2.5)
    got = parallel.gaussian_filter(x, sigma, truncate=2.5)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_by_slabs_with_a_local_operator(threads):
    mask = np.random.default_rng(1).random((50, 20, 20)) > 0.4
    ball = ndi.generate_binary_structure(3, 1)
    want = ndi.binary_opening(mask, ball, iterations=2)
    # an opening by 2 iterations of a unit cross reaches 4 slices
    got = parallel.by_slabs(lambda m: ndi.binary_opening(m, ball, iterations=2), [mask], 4)
    np.testing.assert_array_equal(got, want)


def test_by_slabs_needs_the_halo(monkeypatch):
    monkeypatch.setattr(parallel, "cpu_threads", lambda: 3)
    x = np.random.default_rng(2).normal(size=(60, 8, 8))
    want = ndi.gaussian_filter(x, (3.0, 0, 0))
    short = parallel.by_slabs(lambda v: ndi.gaussian_filter(v, (3.0, 0, 0)), [x], 2)
    assert not np.allclose(short, want)  # the slabs' seams show without the reach


def test_cpu_threads_follows_torch():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert parallel.cpu_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_nested_work_runs_in_the_calling_thread(threads):
    def outer(i):
        return parallel.thread_map(lambda j: (i, j), range(3))

    assert parallel.thread_map(outer, range(4)) == [[(i, j) for j in range(3)] for i in range(4)]


def test_set_cpu_threads_comes_first():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        parallel.set_cpu_threads(5)
        assert parallel.cpu_threads() == 5 and torch.get_num_threads() == before
        parallel.set_cpu_threads(1, torch=True)
        assert parallel.cpu_threads() == 1 and torch.get_num_threads() == 1
    finally:
        parallel.set_cpu_threads(0)
        torch.set_num_threads(before)
    assert parallel.cpu_threads() >= 1
    with pytest.raises(ValueError):
        parallel.set_cpu_threads(-2)


def _child(queue):
    queue.put(parallel.thread_map(lambda v: v + 1, range(4)))


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_gets_its_own_threads(monkeypatch):
    import multiprocessing

    monkeypatch.setattr(parallel, "cpu_threads", lambda: 2)
    parallel.thread_map(lambda v: v, range(4))  # the parent's pool exists
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child, args=(queue,))
    child.start()
    child.join(timeout=30)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive and queue.get(timeout=5) == [1, 2, 3, 4]


def test_gaussian_filter_of_a_mask_and_of_a_weighted_array(threads):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 12, 14)).astype(np.float32)
    mask = rng.random(x.shape) > 0.5
    sigma = (1.2, 1.0, 1.0)
    share = parallel.gaussian_filter(mask, sigma, truncate=2.5)
    assert share.dtype == np.float32
    np.testing.assert_array_equal(share, ndi.gaussian_filter(mask.astype(np.float32), sigma, truncate=2.5))
    weighted = parallel.gaussian_filter(x, sigma, weight=mask, truncate=2.5)
    np.testing.assert_array_equal(weighted, ndi.gaussian_filter(x * mask, sigma, truncate=2.5))
