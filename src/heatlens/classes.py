"""The 1000 ImageNet-1k class names, shipped as data (neither torch nor Keras ships them offline)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path

from .errors import ModelError


@cache
def imagenet_classes() -> tuple[str, ...]:
    """Class names in the standard ImageNet-1k index order (0 = 'tench', 281 = 'tabby', ...)."""
    text = resources.files("heatlens").joinpath("data/imagenet_classes.txt").read_text(encoding="utf-8")
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != 1000:
        raise RuntimeError(f"heatlens data file is damaged: expected 1000 class names, found {len(names)}")
    return names


def class_names(classes: str | os.PathLike | Sequence[str] | None) -> list[str] | None:
    """Class names from 'imagenet', a text file with one name per line, or a list of names."""
    if classes is None:
        return None
    if isinstance(classes, str) and classes == "imagenet":
        return list(imagenet_classes())
    if isinstance(classes, str | os.PathLike):
        path = Path(classes)
        if not path.is_file():
            raise ModelError(f"classes={str(classes)!r} is neither 'imagenet' nor a text file with one class name "
                             "per line; pass one of those or a list of names")
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    names = list(classes)
    if not all(isinstance(name, str) for name in names):
        raise ModelError(f"classes must be a list of names (str). Received: {names[:5]!r}")
    return names
