"""Real photos available offline: the ones scikit-image ships inside its wheel."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from .errors import ImageError, close_matches
from .images import load_image

_FILES = {
    "cat": "chelsea.png",
    "coffee": "coffee.png",
    "astronaut": "astronaut.png",
    "rocket": "rocket.jpg",
    "motorcycle": "motorcycle_left.png",
}


def names() -> list[str]:
    """The sample names: cat, coffee, astronaut, rocket, motorcycle."""
    return list(_FILES)


def path(name: str) -> Path:
    """Where a sample photo lies on disk."""
    if name not in _FILES:
        raise ImageError(f"unknown sample '{name}'.{close_matches(name, _FILES)} Samples: {', '.join(_FILES)}")
    return Path(str(resources.files("skimage.data").joinpath(_FILES[name])))


def load(name: str) -> np.ndarray:
    """A sample photo as an (H, W, 3) uint8 RGB array, e.g. `load("cat")`."""
    return load_image(path(name))
