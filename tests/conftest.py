"""Shared fixtures: where the real CT of ``../shared/data`` lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    env = os.environ.get("DIFFSEGLUNG_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real chest CT (``../shared/data``); skips tests when it is absent."""
    path = _shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real CT folder {path} not found (set DIFFSEGLUNG_DATA to point at it)")
    return path


@pytest.fixture(scope="session")
def a0001_dicom(shared_data) -> Path:
    path = shared_data / "lung-pet-ct-dx-A0001" / "dicom"
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="session")
def cip_chest(shared_data) -> Path:
    path = shared_data / "cip-chest"
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="session")
def cted_open(shared_data) -> Path:
    path = shared_data / "cted-open"
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="session")
def phantom_small():
    """A 32 x 96 x 96 synthetic chest phantom (seed 0) with all four pathologies.

    ``.volume`` (CTVolume, HU), ``.labels`` (ground truth, Tissue values) and
    ``.lung`` (1 right, 2 left); see :func:`diffseglung_core.phantom.make_phantom`.
    """
    from diffseglung_core.phantom import make_phantom

    return make_phantom((32, 96, 96), seed=0)
