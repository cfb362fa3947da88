import warnings

import numpy as np
import pytest
import torch

from diffseglung_core.device import DEVICES, device_warning, get_device, to_float16


def test_device_warning_names_a_missing_accelerator():
    assert device_warning("cpu") == "" and device_warning("auto") == ""
    assert (device_warning("cuda") == "") == torch.cuda.is_available()
    assert (device_warning("cuda:1") == "") == torch.cuda.is_available()


def test_get_device_falls_back_to_the_cpu_quietly_when_asked():
    assert set(DEVICES) == {"auto", "cpu", "cuda", "mps"}
    assert get_device("cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        pytest.skip("CUDA present: no fallback to test")
    with pytest.warns(UserWarning, match="CUDA"):
        assert get_device("cuda") == torch.device("cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert get_device("cuda", warn=False) == torch.device("cpu")


def test_to_float16_rounds_like_numpy_down_to_the_tiniest_values():
    rng = np.random.default_rng(0)
    x = (10.0 ** rng.uniform(-45, 5, (1000, 7))).astype(np.float32)
    x[::5] *= -1
    x[0, :3] = [0.0, np.inf, 65519.0]
    got = to_float16(x.T)  # not contiguous
    assert got.dtype == np.float16 and got.shape == (7, 1000)
    np.testing.assert_array_equal(got.view(np.uint16), x.T.astype(np.float16).view(np.uint16))
