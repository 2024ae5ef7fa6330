"""Perturbation methods: occlusion, RISE, LIME and SHAP partition. They need predictions only, so they run on every
Network, black-box predict functions included. Inputs are perturbed in model-input space, in batches
built with numpy (no per-sample Python image loops), seeded for reproducibility."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from ..errors import MethodError
from ..models.base import Network
from ..overlay import upsample
from ..progress import progress_bar
from .baselines import make_baseline
from .batching import batch_size_for
from .colours import photo_pixels
from .inpainting import inpainting_composer
from .owen import owen_values
from .registry import MethodOutput, TargetFn, register
from .shared import at_least, blur, explained, positive


def _chunks(total: int, size: int) -> Iterator[np.ndarray]:
    for start in range(0, total, size):
        yield np.arange(start, min(start + size, total))


def _target_scores(network: Network, make: Callable[[np.ndarray], np.ndarray], total: int, ids: np.ndarray,
                   batch_size: int, label: str, progress: bool) -> np.ndarray:
    """Scores (total, K) of the target classes `ids` (K,) for the `total` inputs `make(indices)` builds."""
    out = np.zeros((total, len(ids)), np.float32)
    with progress_bar(total, label, progress and total > batch_size) as advance:
        for index in _chunks(total, batch_size):
            out[index] = network.predict(make(index))[:, ids]
            advance(len(index))
    return out


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
    base = _fill(network, x, fill)
    size = batch_size_for(network, x[0], batch_size, len(masks))
    maps = np.zeros((len(x), ids.shape[1], h, w), np.float32)
    for i in range(len(x)):
        scores = _target_scores(network, lambda index, i=i: _composite(masks[index], base[i], x[i]),
                                len(masks), ids[i], size, "Occlusion", progress)
        drops = logits[i, ids[i]][None] - scores
        total = np.einsum("pk,phw->khw", drops, masks.astype(np.float32))
        maps[i] = np.divide(total, covered, out=np.zeros_like(total), where=covered > 0)
    return MethodOutput(maps, logits, ids, extras={"window": window, "stride": stride, "windows": len(masks)})


def _composite(where: np.ndarray, inside: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """Images (n, h, w, C), C-contiguous: `inside` where the masks (n, h, w) are true, `outside` elsewhere.
    The mask is spread over channels first, so the result comes out in the layout models read fastest."""
    spread = np.ascontiguousarray(np.broadcast_to(where[..., None], (*where.shape, inside.shape[-1])))
    return np.where(spread, inside, outside)


def _window_masks(length: int, window: int, stride: int) -> np.ndarray:
    """(positions, length) booleans: every window start at `stride`, plus one flush with the end."""
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    positions = np.arange(length)
    return (positions[None] >= np.array(starts)[:, None]) & (positions[None] < np.array(starts)[:, None] + window)


def _fill(network: Network, x: np.ndarray, fill: str | float) -> np.ndarray:
    if isinstance(fill, int | float | np.integer | np.floating) and not isinstance(fill, bool):
        return np.full_like(x, fill)
    if fill == "mean":
        return np.broadcast_to(x.mean(axis=(1, 2), keepdims=True), x.shape).copy()
    return make_baseline(network, x, fill, np.random.default_rng(0))


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
    base = _fill(network, x, fill)
    size = batch_size_for(network, x[0], batch_size, n_masks)
    sums = np.zeros((len(x), ids.shape[1], x.shape[1] * x.shape[2]), np.float64)
    with progress_bar(n_masks * len(x), "RISE", progress and n_masks > size) as advance:
        for index in _chunks(n_masks, size):
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


SEGMENTATIONS = ("quickshift", "slic", "felzenszwalb")


@register("lime", "LIME: a weighted linear surrogate over superpixels switched on and off",
          "Ribeiro et al. 2016, \"Why Should I Trust You?\": Explaining the Predictions of Any Classifier",
          needs_gradients=False, uses_layer=False, black_box=True)
def lime(network: Network, x: np.ndarray, targets: TargetFn, num_samples: int = 1000,
         segmentation: str = "quickshift", segments: np.ndarray | None = None, hide: str | float = "mean",
         kernel_width: float = 0.25, samples: np.ndarray | None = None, batch_size: int | str = "auto",
         seed: int = 0, progress: bool = True) -> MethodOutput:
    """Sample z in {0, 1}^F (the first all ones), score x with the superpixels where z = 0 hidden, weight
    each sample by sqrt(exp(-d^2 / width^2)), d the cosine distance of z to all ones, and fit a weighted
    ridge regression (alpha 1) per target; a pixel's map value is its superpixel's coefficient.

    `hide`: 'mean' (each superpixel's mean colour, as lime does), 'blur', 'black' or a number.
    `segments`: your own label image (h, w) or (N, h, w) instead of `segmentation`. `samples`: your own
    binary sample matrix (num_samples, superpixels) instead of the seeded random one. Segmentation runs on
    the inputs in the photo's RGB, the preprocessing's colour map undone (BGR, mean-subtracted, scaled);
    that picture is extras['segmented_images'], uint8 (N, h, w, 3)."""
    from sklearn.linear_model import Ridge  # imported here: it is most of `import heatlens`'s cost otherwise
    from sklearn.metrics import pairwise_distances

    positive("num_samples", num_samples)
    if num_samples < 2:
        raise MethodError(f"num_samples must be at least 2. Received: {num_samples}")
    at_least("kernel_width", kernel_width, strict=True)
    logits, ids = explained(network, x, targets)
    size = batch_size_for(network, x[0], batch_size, num_samples)
    pictures = photo_pixels(network, x)
    labels = _segments(pictures, segmentation, segments, seed)
    maps = np.zeros((len(x), ids.shape[1], *x.shape[1:3]), np.float32)
    weights, intercepts, fits = [], [], []
    for i in range(len(x)):
        seg = labels[i]
        count = int(seg.max()) + 1
        z = _sample_matrix(samples, num_samples, count, seed)
        hidden = _hidden(network, x[i], seg, hide)
        kept = z.astype(bool)
        scores = _target_scores(network, lambda index, seg=seg, kept=kept, hidden=hidden, i=i: _composite(
            kept[index][:, seg], x[i], hidden), num_samples, ids[i], size, "LIME", progress)
        distances = pairwise_distances(z, z[:1], metric="cosine").ravel()
        kernel = np.sqrt(np.exp(-np.square(distances / kernel_width)))  # a tiny width underflows to 0, not NaN
        coefs, bias, r2 = [], [], []
        for k in range(ids.shape[1]):
            model = Ridge(alpha=1.0, fit_intercept=True).fit(z, scores[:, k], sample_weight=kernel)
            coefs.append(model.coef_)
            bias.append(model.intercept_)
            r2.append(model.score(z, scores[:, k], sample_weight=kernel))
        weights.append(np.array(coefs, np.float32))
        intercepts.append(bias)
        fits.append(r2)
        maps[i] = weights[-1][:, seg]
    return MethodOutput(maps, logits, ids, extras={
        "segments": labels, "weights": weights, "intercept": np.array(intercepts), "score": np.array(fits),
        "num_samples": num_samples, "segmented_images": pictures})


def _sample_matrix(given: np.ndarray | None, num_samples: int, count: int, seed: int) -> np.ndarray:
    """Which superpixels each sample keeps: the given matrix, or seeded coin flips; the first keeps all."""
    if given is None:
        z = np.random.RandomState(seed).randint(0, 2, num_samples * count).reshape(num_samples, count)
    else:
        z = np.asarray(given)
        if z.shape != (num_samples, count) or not np.isin(z, (0, 1)).all():
            raise MethodError(f"samples must be a 0/1 matrix of shape ({num_samples}, {count}). Received: {z.shape}")
        z = z.copy()
    z[0, :] = 1
    return z


def _segments(pictures: np.ndarray, segmentation: str, given: np.ndarray | None, seed: int) -> np.ndarray:
    """Superpixel labels (N, h, w): the given ones, renumbered 0..F-1, or a segmentation of the uint8 RGB
    pictures of the inputs in the photo's colours (as lime segments the photo)."""
    if given is not None:
        labels = np.asarray(given)
        labels = np.broadcast_to(labels, (len(pictures), *labels.shape[-2:])) if labels.ndim == 2 else labels
        if labels.shape != pictures.shape[:3] or labels.dtype.kind not in "iu" or labels.min() < 0:
            raise MethodError(f"segments must be non-negative integer labels of shape {pictures.shape[1:3]}. "
                              f"Received: shape={labels.shape}, dtype={labels.dtype}")
        return np.stack([np.unique(s, return_inverse=True)[1].reshape(s.shape) for s in labels])
    from skimage import segmentation as skseg

    if segmentation == "quickshift":
        return np.stack([skseg.quickshift(img, kernel_size=4, max_dist=200, ratio=0.2, rng=seed) for img in pictures])
    if segmentation == "slic":
        return np.stack([skseg.slic(img, n_segments=50, compactness=10, start_label=0) for img in pictures])
    if segmentation == "felzenszwalb":
        return np.stack([skseg.felzenszwalb(img, scale=100, sigma=0.5, min_size=50) for img in pictures])
    raise MethodError(f"unknown segmentation '{segmentation}': use one of {', '.join(SEGMENTATIONS)}")


def _hidden(network: Network, image: np.ndarray, segments: np.ndarray, hide: str | float) -> np.ndarray:
    """The image as it looks with every superpixel hidden."""
    if hide == "mean":
        count = int(segments.max()) + 1
        sums = np.zeros((count, image.shape[-1]))
        np.add.at(sums, segments, image)
        means = sums / np.bincount(segments.ravel(), minlength=count)[:, None]
        return means[segments].astype(np.float32)
    if hide == "blur":
        sigma = max(image.shape[:2]) / 20
        return blur(image, (sigma, sigma, 0))
    return _fill(network, image[None], hide)[0]


@register("shap_partition", "SHAP partition: Owen values over a hierarchy of image halves, within max_evals",
          "Lundberg & Lee 2017, A Unified Approach to Interpreting Model Predictions (Partition explainer: "
          "Owen values)", needs_gradients=False, uses_layer=False, black_box=True)
def shap_partition(network: Network, x: np.ndarray, targets: TargetFn, max_evals: int = 1000,
                   masker: str | float = "blur", min_block: int = 1, split_channels: bool = True,
                   round_size: int = 10, batch_size: int | str = "auto", seed: int = 0,
                   progress: bool = True) -> MethodOutput:
    """Owen values on a binary partition of the image (each block split in halves along its longer side,
    then single pixels' colour channels: SHAP's Image masker's hierarchy), scheduled as shap does.

    A block's value in a context is shared between its halves as the average of each half's marginal
    contribution with the other half absent and present; blocks not expanded within `max_evals` keep
    their value spread evenly over their features, so sum A = y(x) - y(x fully masked) exactly. `masker`:
    'blur' (a heavy Gaussian blur of x), 'black', a number, or 'inpaint_telea' / 'inpaint_ns' (OpenCV
    inpainting of the photo's 0..255 pixels, a pixel masked when any channel is; the mean colour when all
    are, as shap; pip install 'heatlens[inpaint]'). `min_block` > 1 or `split_channels=False` stop the
    hierarchy at larger blocks. `round_size`: masks per round of the priority queue (shap's batch_size);
    `batch_size`: masks per model call ('auto': a whole round); `seed`: breaks ties between equal
    priorities (as np.random.seed(seed) before shap does)."""
    if max_evals < 2 or min_block < 1:
        raise MethodError(f"shap_partition needs max_evals >= 2 and min_block >= 1. Received: {max_evals}, "
                          f"{min_block}")
    positive("round_size", round_size)
    logits, ids = explained(network, x, targets)
    inpainting = isinstance(masker, str) and masker.startswith("inpaint")
    if inpainting:
        composers = [inpainting_composer(network, image, masker) for image in x]
    else:
        masked = make_baseline(network, x, "blurred", None) if masker == "blur" else _fill(network, x, masker)
        composers = [lambda keep, image=image, fill=fill: np.where(keep, image, fill)
                     for image, fill in zip(x, masked, strict=True)]
    whole_round = batch_size == "auto" and round_size <= 64
    size = round_size if whole_round else batch_size_for(network, x[0], batch_size, round_size)
    attributions = np.zeros((len(x), ids.shape[1], *x.shape[1:]), np.float32)
    settled, base_values = [], []
    for i, compose in enumerate(composers):
        attributions[i], blocks, base = owen_values(network, x.shape[1:], compose, ids[i], max_evals, min_block,
                                                    split_channels, round_size, size, seed, progress)
        settled.append(blocks)
        base_values.append(base)
    full = np.take_along_axis(logits, ids, axis=1)
    maps = attributions.sum(axis=-1)
    return MethodOutput(maps, logits, ids, attributions=attributions, extras={
        "base_values": np.array(base_values), "partition_values": settled, "max_evals": max_evals,
        "round_size": round_size, "additivity_gap": maps.sum(axis=(2, 3)) - (full - np.array(base_values))})
