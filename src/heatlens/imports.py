"""'package.module:name' specs (user models, score functions) resolved to the Python object they name."""

from __future__ import annotations

import importlib
from typing import Any

from .errors import ModelError


def import_object(spec: str) -> Any:
    """The object `name` of the importable module `package.module`, or a one-line ModelError."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ModelError(f"expected 'package.module:name'. Received: {spec!r}")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"cannot import '{spec}': {exc}") from None
