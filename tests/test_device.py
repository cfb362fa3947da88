import warnings

import pytest
import torch

from diffseglung_core.device import DEVICES, device_warning, get_device


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
