"""Batch sizes for methods that make many forward passes: given, or picked by timing ('auto').

On a CPU the best batch size depends on the model, the input size and the allocator more than on any
rule of thumb, so 'auto' times a few candidate sizes once per network and input shape and caches it.
"""

from __future__ import annotations

import time
import weakref

import numpy as np

from ..errors import MethodError
from ..models.base import Network

CANDIDATES = (4, 8, 16, 32, 64)
_chosen: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def batch_size_for(network: Network, sample: np.ndarray, batch_size: int | str, budget: int) -> int:
    """A positive batch size: as given, or for 'auto' the fastest per input among CANDIDATES (no larger
    than the `budget` of passes the method will make), timed once per network and input shape."""
    if batch_size == "auto":
        cache = _chosen.setdefault(network, {})
        key = (sample.shape, min(budget, CANDIDATES[-1]))
        if key not in cache:
            cache[key] = _fastest(network, sample, [c for c in CANDIDATES if c <= max(budget, CANDIDATES[0])])
        return cache[key]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise MethodError(f"batch_size must be a positive integer or 'auto'. Received: {batch_size!r}")
    return int(batch_size)


def _fastest(network: Network, sample: np.ndarray, candidates: list[int]) -> int:
    per_input: dict[int, float] = {}
    for size in candidates:
        batch = np.repeat(sample[None], size, axis=0)
        network.predict(batch)
        start = time.perf_counter()
        network.predict(batch)
        per_input[size] = (time.perf_counter() - start) / size
    return min(per_input, key=per_input.__getitem__)
