"""Owen values within a budget of evaluations, scheduled as shap's Partition explainer schedules them, so
that the same hierarchy, masking and `max_evals` give the shap package's values.

The work queue is a priority queue of (block, context) items ordered by how much the block changes the
scores (max over outputs of |y(with) - y(without)|, times the item's weight); ties are broken by a seeded
standard normal draw per item, in the order shap draws `np.random.randn()`. Each round takes items from the
queue until it holds `round_size` masks (shap's `batch_size`, 10 for images by default), skipping past
blocks that cannot be split (settled at once, not counted) and stopping once the masks would reach the
budget. Whatever is left when the budget is spent keeps its value spread evenly over its features.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

import numpy as np

from ..models.base import Network
from ..progress import progress_bar

Block = tuple[int, int, int, int, int, int]  # top, bottom, left, right, first channel, end channel


def owen_values(network: Network, shape: tuple[int, ...], compose: Callable[[np.ndarray], np.ndarray],
                ids: np.ndarray, max_evals: int, min_block: int, split_channels: bool, round_size: int,
                batch_size: int, seed: int, progress: bool) -> tuple[np.ndarray, list, np.ndarray]:
    """Owen values (K, H, W, C) of one input of `shape`, the settled blocks with their values, and
    y(fully masked). `compose(keep)` turns keep masks (B, H, W, C) into model inputs."""
    ends = _scores(network, compose, [[], [(0, shape[0], 0, shape[1], 0, shape[2])]], shape, ids, batch_size)
    values = np.zeros((len(ids), *shape), np.float64)
    settled: list = []
    ties = np.random.RandomState(seed)
    # queue entries: (priority, tie, count, (block, context blocks switched on, y without, y with, weight))
    queue = [(0.0, 0.0, 0, ((0, shape[0], 0, shape[1], 0, shape[2]), (), ends[0], ends[1], 1.0))]
    count, evals, budget = 1, 0, max_evals - 2
    with progress_bar(budget, "SHAP partition", progress and budget > round_size) as advance:
        while queue:
            if evals >= budget:
                for *_, item in queue:
                    _settle(values, settled, item)
                break
            batch = []
            while queue and 2 * len(batch) < round_size and evals + 2 * len(batch) < budget:
                item = heapq.heappop(queue)[-1]
                halves = _halves(item[0], min_block, split_channels)
                if halves is None:
                    _settle(values, settled, item)
                else:
                    batch.append((item, halves))
            if not batch:
                continue
            # shap's left child is the second half here: its masks are (context + second, context + first)
            contexts = [(*ctx, half) for (_, ctx, *_), (first, second) in batch for half in (second, first)]
            scores = _scores(network, compose, contexts, shape, ids, batch_size)
            evals += len(contexts)
            advance(len(contexts))
            for j, ((_, context, off, on, weight), (first, second)) in enumerate(batch):
                with_second, with_first = scores[2 * j], scores[2 * j + 1]
                half = weight / 2
                for child in ((second, context, off, with_second, half), (first, context, off, with_first, half),
                              (second, (*context, first), with_first, on, half),
                              (first, (*context, second), with_second, on, half)):
                    priority = -float(np.max(np.abs(child[3] - child[2]))) * half
                    heapq.heappush(queue, (priority, ties.randn(), count, child))
                    count += 1
    return values.astype(np.float32), settled, ends[0]


def _scores(network: Network, compose: Callable[[np.ndarray], np.ndarray], contexts: list, shape: tuple[int, ...],
            ids: np.ndarray, batch_size: int) -> np.ndarray:
    """Target scores (len(contexts), K) of the inputs that keep each context's blocks, in batches."""
    out = []
    for start in range(0, len(contexts), batch_size):
        keep = np.zeros((len(contexts[start : start + batch_size]), *shape), bool)
        for mask, blocks in zip(keep, contexts[start : start + batch_size], strict=True):
            for top, bottom, left, right, first, end in blocks:
                mask[top:bottom, left:right, first:end] = True
        out.append(network.predict(compose(keep))[:, ids])
    return np.concatenate(out).astype(np.float64)


def _halves(block: Block, min_block: int, split_channels: bool) -> tuple[Block, Block] | None:
    """Split the longer side in half (rows first on a tie; an odd side's larger half first, as SHAP's Image
    masker does); single pixels split their channels when asked (the first half the larger)."""
    top, bottom, left, right, first, end = block
    if bottom - top >= right - left and bottom - top >= 2 * min_block:
        middle = top + (bottom - top + 1) // 2
        return (top, middle, left, right, first, end), (middle, bottom, left, right, first, end)
    if right - left >= 2 * min_block:
        middle = left + (right - left + 1) // 2
        return (top, bottom, left, middle, first, end), (top, bottom, middle, right, first, end)
    if split_channels and bottom - top == 1 and right - left == 1 and end - first > 1:
        middle = first + (end - first + 1) // 2
        return (top, bottom, left, right, first, middle), (top, bottom, left, right, middle, end)
    return None


def _settle(values: np.ndarray, settled: list, item: tuple) -> None:
    """A block that is not split further keeps its weighted marginal contribution, spread over its features
    (shap leaves it on its tree node, then lowers it to the leaves in proportion to their sizes)."""
    (top, bottom, left, right, first, end), _, off, on, weight = item
    share = weight * (on - off)
    size = (bottom - top) * (right - left) * (end - first)
    values[:, top:bottom, left:right, first:end] += (share / size)[:, None, None, None]
    settled.append(((top, bottom, left, right, first, end), share))
