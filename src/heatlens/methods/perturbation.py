"""Occlusion and RISE: scores of the inputs with windows or random masks filled, averaged per pixel. They need
predictions only, so they run on every Network, black-box predict functions included; inputs are perturbed in
model-input space, in batches built with numpy (no per-sample Python image loops), seeded for reproducibility."""

from __future__ import annotations

import numpy as np

from ..errors import MethodError
from ..models.base import Network
from ..overlay import upsample
from ..progress import progress_bar
from .batching import batch_size_for
from .masking import chunks, composite, fill_values, target_scores
from .registry import MethodOutput, TargetFn, register
from .shared import explained


@register("occlusion", "Occlusion: the score drop when a sliding window is filled, averaged per pixel",
          "Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks",
          needs_gradients=False, uses_layer=False, black_box=True)
def occlusion(network: Network, x: np.ndarray, targets: TargetFn, window: int = 16, stride: int = 8,
              fill: str | float = "black", batch_size: int | str = "auto", progress: bool = True) -> MethodOutput:
    """A(p) = mean over windows W containing p of [y(x) - y(x with W filled)]; 0 where no window covers p
    (a stride larger than the window leaves gaps)."""
    if window < 1 or stride < 1:
        raise MethodError(f"window and stride must be positive. Received: window={window}, stride={stride}")
    logits, ids = explained(network, x, targets)
    h, w = x.shape[1:3]
    rows = _window_masks(h, min(window, h), stride)
    cols = _window_masks(w, min(window, w), stride)
    masks = (rows[:, None, :, None] & cols[None, :, None, :]).reshape(-1, h, w)
    covered = masks.sum(axis=0).astype(np.float32)
    base = fill_values(network, x, fill)
    size = batch_size_for(network, x[0], batch_size, len(masks))
    maps = np.zeros((len(x), ids.shape[1], h, w), np.float32)
    for i in range(len(x)):
        def occluded(index: np.ndarray, i: int = i) -> np.ndarray:
            return composite(masks[index], base[i], x[i])

        scores = target_scores(network, occluded, len(masks), ids[i], size, "Occlusion", progress)
        drops = logits[i, ids[i]][None] - scores
        total = np.einsum("pk,phw->khw", drops, masks.astype(np.float32))
        maps[i] = np.divide(total, covered, out=np.zeros_like(total), where=covered > 0)
    return MethodOutput(maps, logits, ids, extras={"window": window, "stride": stride, "windows": len(masks)})


def _window_masks(length: int, window: int, stride: int) -> np.ndarray:
    """(positions, length) booleans: every window start at `stride`, plus one flush with the end."""
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    positions = np.arange(length)
    return (positions[None] >= np.array(starts)[:, None]) & (positions[None] < np.array(starts)[:, None] + window)


@register("rise", "RISE: scores on randomly masked inputs, averaged with their masks",
          "Petsiuk et al. 2018, RISE: Randomized Input Sampling for Explanation of Black-box Models",
          needs_gradients=False, uses_layer=False, black_box=True)
def rise(network: Network, x: np.ndarray, targets: TargetFn, n_masks: int = 2000, cells: int = 7,
         p: float = 0.5, fill: str | float = "black", batch_size: int | str = "auto", seed: int = 0,
         progress: bool = True) -> MethodOutput:
    """S = 1 / (N p) sum_i y(x_b + (x - x_b) * M_i) M_i, M_i a random cells x cells binary grid kept with
    probability p, upsampled bilinearly and shifted by a random fraction of a cell (x_b: the fill)."""
    if n_masks < 1 or cells < 1 or not 0 < p <= 1:
        raise MethodError(f"rise needs n_masks >= 1, cells >= 1 and 0 < p <= 1. Received: {n_masks}, {cells}, {p}")
    logits, ids = explained(network, x, targets)
    rng = np.random.default_rng(seed)
    grids = (rng.random((n_masks, cells, cells)) < p).astype(np.float32)
    shifts = rng.integers(0, -(-x.shape[1] // cells), n_masks), rng.integers(0, -(-x.shape[2] // cells), n_masks)
    base = fill_values(network, x, fill)
    size = batch_size_for(network, x[0], batch_size, n_masks)
    sums = np.zeros((len(x), ids.shape[1], x.shape[1] * x.shape[2]), np.float64)
    with progress_bar(n_masks * len(x), "RISE", progress and n_masks > size) as advance:
        for index in chunks(n_masks, size):
            masks = _rise_masks(grids[index], shifts[0][index], shifts[1][index], x.shape[1:3])
            flat = masks.reshape(len(index), -1)
            for i in range(len(x)):
                scores = network.predict(_blend(masks, x[i], base[i]))[:, ids[i]]
                sums[i] += scores.T @ flat
                advance(len(index))
    maps = (sums / (n_masks * p)).reshape(len(x), ids.shape[1], *x.shape[1:3]).astype(np.float32)
    return MethodOutput(maps, logits, ids, extras={"n_masks": n_masks, "cells": cells, "p": p,
                                                   "display_scale": "minmax"})


def _blend(masks: np.ndarray, image: np.ndarray, base: np.ndarray) -> np.ndarray:
    """base + (image - base) * mask for each soft mask (n, h, w): (n, h, w, C), built in one buffer."""
    out = np.multiply(masks[..., None], image - base, dtype=np.float32)
    out += base
    return out


def _rise_masks(grids: np.ndarray, dy: np.ndarray, dx: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Binary cells x cells grids upsampled bilinearly to (cells + 1) cells and cropped at the given shifts."""
    h, w = size
    cells = grids.shape[-1]
    cell_h, cell_w = -(-h // cells), -(-w // cells)
    big = (cells + 1) * cell_h, (cells + 1) * cell_w
    up = upsample(grids, big, (0.0, 0.0, float(big[0]), float(big[1])))
    rows = (dy[:, None] + np.arange(h)[None])[:, :, None]
    cols = (dx[:, None] + np.arange(w)[None])[:, None, :]
    return up[np.arange(len(grids))[:, None, None], rows, cols].astype(np.float32)
