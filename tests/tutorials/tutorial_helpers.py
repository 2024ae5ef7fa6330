"""Helpers for the tutorial oracles (import after pytest.importorskip("keras"))."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np


def seeded(build: Callable[[], keras.Model], seed: int) -> keras.Model:
    """A model built right after keras.utils.set_random_seed(seed): the same weights on every call."""
    keras.utils.set_random_seed(seed)
    return build()


def same_weights(a: keras.Model, b: keras.Model) -> bool:
    """True when two models hold identical weights (two seeded builds are one network)."""
    return all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights(), strict=True))


def normalised(values: np.ndarray) -> np.ndarray:
    """values / max |values|: the tutorials' maps are shown normalised, heatlens keeps them raw."""
    values = np.asarray(values, np.float64)
    return values / np.abs(values).max()
