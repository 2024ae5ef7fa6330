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
from typing import NamedTuple

import numpy as np

from ..models.base import Network
from ..progress import progress_bar


class Block(NamedTuple):
    """A box of rows top:bottom, columns left:right and channels first:end of the input."""

    top: int
    bottom: int
    left: int
    right: int
    first: int
    end: int

    @property
    def size(self) -> int:
        return (self.bottom - self.top) * (self.right - self.left) * (self.end - self.first)


class WorkItem(NamedTuple):
    """A block to share out in a context: the blocks switched on around it, the scores (K,) without and with
    the block, and the weight of this context in the block's Owen value."""

    block: Block
    context: tuple[Block, ...]
    off: np.ndarray
    on: np.ndarray
    weight: float


class Settled(NamedTuple):
    """A block not split further and the scores' change (K,) it keeps, weighted."""

    block: Block
    share: np.ndarray


def owen_values(network: Network, shape: tuple[int, ...], compose: Callable[[np.ndarray], np.ndarray],
                ids: np.ndarray, max_evals: int, min_block: int, split_channels: bool, round_size: int,
                batch_size: int, seed: int, progress: bool) -> tuple[np.ndarray, list[Settled], np.ndarray]:
    """Owen values (K, H, W, C) of one input of `shape`, the settled blocks with their values, and
    y(fully masked). `compose(keep)` turns keep masks (B, H, W, C) into model inputs."""
    whole = Block(0, shape[0], 0, shape[1], 0, shape[2])
    ends = _scores(network, compose, [(), (whole,)], shape, ids, batch_size)
    values = np.zeros((len(ids), *shape), np.float64)
    settled: list[Settled] = []
    ties = np.random.RandomState(seed)
    queue: list[tuple[float, float, int, WorkItem]] = [(0.0, 0.0, 0, WorkItem(whole, (), ends[0], ends[1], 1.0))]
    count, evals, budget = 1, 0, max_evals - 2
    with progress_bar(budget, "SHAP partition", progress and budget > round_size) as advance:
        while queue:
            if evals >= budget:
                for *_, item in queue:
                    _settle(values, settled, item)
                break
            batch: list[tuple[WorkItem, tuple[Block, Block]]] = []
            while queue and 2 * len(batch) < round_size and evals + 2 * len(batch) < budget:
                item = heapq.heappop(queue)[-1]
                halves = _halves(item.block, min_block, split_channels)
                if halves is None:
                    _settle(values, settled, item)
                else:
                    batch.append((item, halves))
            if not batch:
                continue
            # shap's left child is the second half here: its masks are (context + second, context + first)
            contexts = [(*item.context, half) for item, (first, second) in batch for half in (second, first)]
            scores = _scores(network, compose, contexts, shape, ids, batch_size)
            evals += len(contexts)
            advance(len(contexts))
            for j, (item, (first, second)) in enumerate(batch):
                with_second, with_first = scores[2 * j], scores[2 * j + 1]
                context, half = item.context, item.weight / 2
                for child in (WorkItem(second, context, item.off, with_second, half),
                              WorkItem(first, context, item.off, with_first, half),
                              WorkItem(second, (*context, first), with_first, item.on, half),
                              WorkItem(first, (*context, second), with_second, item.on, half)):
                    priority = -float(np.max(np.abs(child.on - child.off))) * half
                    heapq.heappush(queue, (priority, ties.randn(), count, child))
                    count += 1
    return values.astype(np.float32), settled, ends[0]


def _scores(network: Network, compose: Callable[[np.ndarray], np.ndarray], contexts: list[tuple[Block, ...]],
            shape: tuple[int, ...], ids: np.ndarray, batch_size: int) -> np.ndarray:
    """Target scores (len(contexts), K) of the inputs that keep each context's blocks, in batches."""
    out = []
    for start in range(0, len(contexts), batch_size):
        keep = np.zeros((len(contexts[start : start + batch_size]), *shape), bool)
        for mask, blocks in zip(keep, contexts[start : start + batch_size], strict=True):
            for block in blocks:
                mask[block.top : block.bottom, block.left : block.right, block.first : block.end] = True
        out.append(network.predict(compose(keep))[:, ids])
    return np.concatenate(out).astype(np.float64)


def _halves(block: Block, min_block: int, split_channels: bool) -> tuple[Block, Block] | None:
    """Split the longer side in half (rows first on a tie; an odd side's larger half first, as SHAP's Image
    masker does); single pixels split their channels when asked (the first half the larger)."""
    height, width, channels = block.bottom - block.top, block.right - block.left, block.end - block.first
    if height >= width and height >= 2 * min_block:
        middle = block.top + (height + 1) // 2
        return block._replace(bottom=middle), block._replace(top=middle)
    if width >= 2 * min_block:
        middle = block.left + (width + 1) // 2
        return block._replace(right=middle), block._replace(left=middle)
    if split_channels and height == 1 and width == 1 and channels > 1:
        middle = block.first + (channels + 1) // 2
        return block._replace(end=middle), block._replace(first=middle)
    return None


def _settle(values: np.ndarray, settled: list[Settled], item: WorkItem) -> None:
    """A block that is not split further keeps its weighted marginal contribution, spread over its features
    (shap leaves it on its tree node, then lowers it to the leaves in proportion to their sizes)."""
    block = item.block
    share = item.weight * (item.on - item.off)
    values[:, block.top : block.bottom, block.left : block.right, block.first : block.end] += (
        share / block.size)[:, None, None, None]
    settled.append(Settled(block, share))
