"""Sample data: synthetic chest CT phantoms with their ground-truth labels."""

from __future__ import annotations

from ._layers import ROLE_KEY, image_layer_data, labels_layer_data

SMALL_SHAPE = (32, 96, 96)
LARGE_SHAPE = (96, 256, 256)

def _phantom_layers(shape, name: str) -> list[tuple]:
    from dataclasses import replace

    from diffseglung_core.phantom import make_phantom

    phantom = make_phantom(shape, seed=0)
    volume = phantom.volume
    source = replace(volume.source, description=f"synthetic phantom {shape}")
    volume = replace(volume, source=source)
    return [image_layer_data(volume, name=name),
            labels_layer_data(phantom.labels, volume, f"{name} ground truth", visible=False,
                              metadata={ROLE_KEY: "truth"})]

def phantom_small() -> list[tuple]:
    """A small phantom (32 x 96 x 96) with every pathology class."""
    return _phantom_layers(SMALL_SHAPE, "phantom (small)")

def phantom_large() -> list[tuple]:
    """A large phantom (96 x 256 x 256) with every pathology class."""
    return _phantom_layers(LARGE_SHAPE, "phantom (large)")
