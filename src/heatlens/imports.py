"""'package.module:name' specs (user models, score functions) resolved to the Python object they name."""

from __future__ import annotations

import importlib
from typing import Any

from .errors import ModelError, first_line


def import_object(spec: str) -> Any:
    """The object `name` of the importable module `package.module`, or a one-line ModelError."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ModelError(f"expected 'package.module:name'. Received: {spec!r}")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ModelError(f"cannot import '{spec}': {exc}") from None
    except Exception as exc:  # the module itself failed while importing (a SyntaxError, its own error)
        raise ModelError(f"cannot import '{spec}': importing it raised {type(exc).__name__}: "
                         f"{first_line(exc)}") from None
