"""Generated photos on disk for the heatlens run tests: small PNG and JPEG photos in class folders, and files that
look like images and are not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIDE = 64


def write_photos(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """`count` random photos (64x64, every third a JPEG, spread over three class folders); their paths."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"class{i % 3}" / f"photo{i:04d}.{'jpg' if i % 3 == 2 else 'png'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def write_corrupt(folder: Path) -> list[Path]:
    """Files that look like images and are not: garbage bytes, an empty file, a truncated PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "whole.png"
    Image.fromarray(np.zeros((SIDE, SIDE, 3), np.uint8)).save(good)
    files = {"garbage.jpg": b"this is no jpeg", "empty.png": b"", "truncated.png": good.read_bytes()[:60]}
    good.unlink()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return [folder / name for name in files]
