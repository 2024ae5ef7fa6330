"""What the perturbation methods share: scoring batches of masked inputs, built with numpy in the layout models
read fastest, and the fills that stand in for hidden pixels."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from ..models.base import Network
from ..progress import progress_bar
from .baselines import make_baseline


def chunks(total: int, size: int) -> Iterator[np.ndarray]:
    """Indices 0..total-1 in consecutive runs of at most `size`."""
    for start in range(0, total, size):
        yield np.arange(start, min(start + size, total))


def target_scores(network: Network, make: Callable[[np.ndarray], np.ndarray], total: int, ids: np.ndarray,
                  batch_size: int, label: str, progress: bool) -> np.ndarray:
    """Scores (total, K) of the target classes `ids` (K,) for the `total` inputs `make(indices)` builds."""
    out = np.zeros((total, len(ids)), np.float32)
    with progress_bar(total, label, progress and total > batch_size) as advance:
        for index in chunks(total, batch_size):
            out[index] = network.predict(make(index))[:, ids]
            advance(len(index))
    return out


def composite(where: np.ndarray, inside: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """Images (n, h, w, C), C-contiguous: `inside` where the masks (n, h, w) are true, `outside` elsewhere.
    The mask is spread over channels first, so the result comes out in the layout models read fastest."""
    spread = np.ascontiguousarray(np.broadcast_to(where[..., None], (*where.shape, inside.shape[-1])))
    return np.where(spread, inside, outside)


def fill_values(network: Network, x: np.ndarray, fill: str | float) -> np.ndarray:
    """What hidden pixels of x become: a number, each image's mean colour ('mean'), or a named baseline
    ('black', 'blurred', 'uniform')."""
    if not isinstance(fill, str):
        return np.full_like(x, fill)
    if fill == "mean":
        return np.broadcast_to(x.mean(axis=(1, 2), keepdims=True), x.shape).copy()
    return make_baseline(network, x, fill, np.random.default_rng(0))
