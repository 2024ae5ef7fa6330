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
        return _names_from_file(Path(classes))
    names = list(classes)
    if not all(isinstance(name, str) for name in names):
        raise ModelError(f"classes must be a list of names (str). Received: {names[:5]!r}")
    if not names:
        raise ModelError("classes is an empty list: give one name per model output, or leave classes out")
    return names


def _names_from_file(path: Path) -> list[str]:
    """The non-blank lines of a UTF-8 text file; anything else (a folder, binary data, no names) is refused."""
    if path.is_dir():
        raise ModelError(f"classes='{path}' is a folder; pass a text file with one class name per line")
    if not path.is_file():
        raise ModelError(f"classes='{path}' is neither 'imagenet' nor a text file with one class name "
                         "per line; pass one of those or a list of names")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ModelError(f"classes file '{path}' is not UTF-8 text (a binary file?); "
                         "pass a text file with one class name per line") from None
    except OSError as exc:
        raise ModelError(f"cannot read the classes file '{path}': {exc.strerror or exc}") from None
    if "\x00" in text:
        raise ModelError(f"classes file '{path}' contains NUL bytes (a binary file?); "
                         "pass a text file with one class name per line")
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ModelError(f"classes file '{path}' has no class names; put one name per line")
    return names
