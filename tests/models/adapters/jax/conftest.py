"""The Keras-on-JAX tests run only in a process whose Keras backend is JAX (`make test` starts one with
KERAS_BACKEND=jax HEATLENS_JAX=required); elsewhere they are not collected, and with HEATLENS_JAX=required a
process on another backend fails instead of skipping them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REQUIRED = os.environ.get("HEATLENS_JAX") == "required"
if os.environ.get("KERAS_BACKEND") != "jax":
    if REQUIRED:
        raise pytest.UsageError("HEATLENS_JAX=required needs KERAS_BACKEND=jax in the environment")
    collect_ignore_glob = ["test_*.py"]
sys.path.insert(0, str(Path(__file__).parent))  # parity_cases, shared with the TensorFlow side's script


def jax_or_skip() -> None:
    """Skip without jax, unless HEATLENS_JAX=required (then its absence fails)."""
    if REQUIRED:
        import jax  # noqa: F401
    else:
        pytest.importorskip("jax")
