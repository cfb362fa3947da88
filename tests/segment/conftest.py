"""Fixtures of the segmentation tests."""

from __future__ import annotations

import pytest

from seg_synth import make_chest


@pytest.fixture(scope="session")
def chest():
    return make_chest()
