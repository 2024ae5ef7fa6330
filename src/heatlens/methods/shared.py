"""Small helpers the method families share."""

from __future__ import annotations

import numpy as np

from ..errors import MethodError
from ..models.base import Network
from .registry import TargetFn


def explained(network: Network, x: np.ndarray, targets: TargetFn) -> tuple[np.ndarray, np.ndarray]:
    """The logits of x and the target ids, resolved once before any sampling or masking."""
    trace = network.trace(x, targets)
    return trace.logits, trace.targets


def positive(name: str, value: int) -> None:
    """Refuse a count option that is not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise MethodError(f"{name} must be a positive integer. Received: {value!r}")
