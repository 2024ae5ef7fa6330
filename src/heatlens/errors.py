"""One small exception hierarchy: every user-facing failure is a HeatlensError with a one-line message."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HeatlensError(Exception):
    """Base class: the message says what was expected, what was received and how to fix it."""


class ImageError(HeatlensError, ValueError):
    """An image could not be read, or an array is not an image."""


class LayerError(HeatlensError, ValueError):
    """A layer name is unknown or the layer cannot serve the method (e.g. no spatial output)."""


class TargetError(HeatlensError, ValueError):
    """A target class is out of range, unknown, or of the wrong form."""


class ModelError(HeatlensError, ValueError):
    """A model could not be loaded or wrapped, or produced unusable scores."""


class MethodError(HeatlensError, ValueError):
    """An unknown method, or a method asked of a model that cannot provide it."""


def close_matches(word: str, choices: Iterable[str], n: int = 5) -> str:
    """A short 'Did you mean ...?' suffix for error messages (empty when nothing is close)."""
    pool = list(choices)
    hits = difflib.get_close_matches(word, pool, n=n, cutoff=0.5)
    if not hits:
        lowered = word.lower()
        hits = [c for c in pool if lowered in c.lower()][:n]
    return f" Did you mean: {', '.join(repr(h) for h in hits)}?" if hits else ""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when the message is empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
