"""TensorFlow's start-up banner (an absl INFO line about oneDNN, written before TF_CPP_MIN_LOG_LEVEL applies)
kept out of the CLI's output. Only the CLI calls this: a library never mutes its host's stderr."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator


def preload_tensorflow() -> None:
    """Import TensorFlow once with file descriptor 2 muted; where it is not installed, do nothing (the
    model loader then gives its own clear error)."""
    if "tensorflow" in sys.modules or importlib.util.find_spec("tensorflow") is None:
        return
    with _muted_native_stderr():
        import tensorflow  # noqa: F401


@contextlib.contextmanager
def _muted_native_stderr() -> Iterator[None]:
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
