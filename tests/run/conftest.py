"""Shared fixtures for heatlens run: small generated photos on disk and a tiny torch classifier with random weights."""

from __future__ import annotations

from pathlib import Path

import pytest
from run_photos import write_photos
from toy_models import tiny_cnn

import heatlens


@pytest.fixture(scope="session")
def tiny_network() -> heatlens.Network:
    """TinyCNN on photos as they are (0..255 floats, no resizing): fast, with a 32x32 Grad-CAM grid."""
    return heatlens.wrap(tiny_cnn(), preprocess=None, classes=["a", "b", "c", "d"])


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    write_photos(folder, 12)
    return folder
