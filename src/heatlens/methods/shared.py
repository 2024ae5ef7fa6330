"""Small helpers the method families share."""

from __future__ import annotations

import numpy as np

from ..errors import MethodError
from ..models.base import Network
from .options import finite_number
from .registry import TargetFn


def explained(network: Network, x: np.ndarray, targets: TargetFn) -> tuple[np.ndarray, np.ndarray]:
    """The logits of x and the target ids, resolved once before any sampling or masking."""
    trace = network.trace(x, targets)
    return trace.logits, trace.ids


def positive(name: str, value: int) -> None:
    """Refuse a count option that is not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise MethodError(f"{name} must be a positive integer. Received: {value!r}")


def at_least(name: str, value: float, low: float = 0.0, strict: bool = False) -> None:
    """Refuse a real-valued option that is not a finite number >= low (> low when `strict`)."""
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    ok = ok and finite_number(value) and (value > low if strict else value >= low)
    if not ok:
        raise MethodError(f"{name} must be a number {'>' if strict else '>='} {low:g}. Received: {value!r}")


def blur(x: np.ndarray, sigma: tuple[float, ...]) -> np.ndarray:
    """A Gaussian blur (scipy.ndimage, imported on first use: it costs half a second) as float32."""
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(x, sigma=sigma).astype(np.float32)
