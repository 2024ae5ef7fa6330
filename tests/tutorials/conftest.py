"""Shared pieces for the tutorial oracles: the photo as a file (the tutorials load theirs from disk) and
keras.applications models built with random, seeded weights (nothing is downloaded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")
skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="session")
def chelsea() -> np.ndarray:
    """The cat photo the tutorials download, replaced by scikit-image's bundled one (300x451 RGB)."""
    return skimage_data.chelsea()


@pytest.fixture(scope="session")
def photo_path(chelsea: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The photo as a PNG file, for the tutorials' keras.utils.load_img."""
    from PIL import Image

    path = tmp_path_factory.mktemp("tutorial") / "cat.png"
    Image.fromarray(chelsea).save(path)
    return path
