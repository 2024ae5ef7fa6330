"""Model inputs from what a user hands over, prepared one way for explain(), the metrics, the looks inside and
the methods' own image options (expected gradients' background)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .images import as_batch, as_float_batch
from .models.base import Network
from .preprocess import AsGiven


def model_inputs(network: Network, images: Any) -> tuple[np.ndarray | None, np.ndarray]:
    """(photos or None, model inputs): photos for networks that prepare them, model-ready floats otherwise
    (also float arrays for a predict function that takes the images as given)."""
    if network.preprocess is None or (isinstance(network.preprocess, AsGiven) and float_array(images)):
        return None, as_float_batch(images)
    photos = as_batch(images)
    return photos, network.prepare(photos)


def each_prepared(network: Network, images: Any) -> np.ndarray:
    """Model inputs for images that are only computed on, never shown (a background set): like model_inputs,
    but a list of photos may mix sizes, each photo is prepared on its own."""
    if network.preprocess is not None and isinstance(images, list | tuple) and images:
        return np.concatenate([model_inputs(network, image)[1] for image in images])
    return model_inputs(network, images)[1]


def float_array(images: Any) -> bool:
    """Whether the images are a float array (model-ready values, not photos)."""
    return isinstance(images, np.ndarray) and images.dtype.kind == "f"
