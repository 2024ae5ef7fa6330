"""Reference inputs x' in model-input space, shared by path methods and perturbation methods."""

from __future__ import annotations

import numpy as np

from ..errors import MethodError
from ..models.base import Network
from .shared import blur


def make_baseline(network: Network, x: np.ndarray, baseline: str | np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The baseline x' in model-input space: 'black' (a black photo, preprocessed), 'blurred', 'uniform'
    noise over x's value range, or an array broadcastable to x."""
    if isinstance(baseline, np.ndarray):
        try:
            return np.broadcast_to(baseline.astype(np.float32), x.shape).copy()
        except ValueError:
            raise MethodError(f"baseline of shape {baseline.shape} does not fit inputs of shape {x.shape}") from None
    if baseline == "black":
        if network.preprocess is None:
            return np.zeros_like(x)
        black = network.prepare(np.zeros((1, *x.shape[1:3], 3), np.uint8))
        return np.broadcast_to(black, x.shape).copy()
    if baseline == "blurred":
        sigma = max(x.shape[1:3]) / 20
        return blur(x, (0, sigma, sigma, 0))
    if baseline == "uniform":
        low = x.min(axis=(1, 2, 3), keepdims=True)
        high = x.max(axis=(1, 2, 3), keepdims=True)
        return (low + (high - low) * rng.uniform(size=x.shape)).astype(np.float32)
    raise MethodError(f"unknown baseline {baseline!r}: use 'black', 'blurred', 'uniform' or an array")
