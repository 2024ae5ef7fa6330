"""Model inputs from what a user hands over, prepared one way for explain(), the metrics and the looks inside."""

from __future__ import annotations

from typing import Any

import numpy as np

from .images import as_batch, as_float_batch
from .models import Network
from .preprocess import AsGiven


def model_inputs(network: Network, images: Any) -> tuple[np.ndarray | None, np.ndarray]:
    """(photos or None, model inputs): photos for networks that prepare them, model-ready floats otherwise
    (also float arrays for a predict function that takes the images as given)."""
    if network.preprocess is None or (isinstance(network.preprocess, AsGiven) and float_array(images)):
        return None, as_float_batch(images)
    photos = as_batch(images)
    return photos, network.prepare(photos)


def float_array(images: Any) -> bool:
    """Whether the images are a float array (model-ready values, not photos)."""
    return isinstance(images, np.ndarray) and images.dtype.kind == "f"
