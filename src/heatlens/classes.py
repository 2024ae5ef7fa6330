"""The 1000 ImageNet-1k class names, shipped as data (neither torch nor Keras ships them offline)."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def imagenet_classes() -> tuple[str, ...]:
    """Class names in the standard ImageNet-1k index order (0 = 'tench', 281 = 'tabby', ...)."""
    text = resources.files("heatlens").joinpath("data/imagenet_classes.txt").read_text(encoding="utf-8")
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != 1000:
        raise RuntimeError(f"heatlens data file is damaged: expected 1000 class names, found {len(names)}")
    return names
