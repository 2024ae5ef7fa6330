"""LIME (Ribeiro et al. 2016) for images: a weighted linear surrogate over superpixels switched on and off,
fitted per target; it needs predictions only, so it runs on every Network, black-box ones included."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import MethodError
from ..models.base import Network
from .batching import batch_size_for
from .colours import photo_pixels
from .masking import composite, fill_values, target_scores
from .registry import MethodOutput, TargetFn, register
from .shared import at_least, blur, explained, positive

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
    positive("num_samples", num_samples)
    if num_samples < 2:
        raise MethodError(f"num_samples must be at least 2. Received: {num_samples}")
    at_least("kernel_width", kernel_width, strict=True)
    logits, ids = explained(network, x, targets)
    size = batch_size_for(network, x[0], batch_size, num_samples)
    pictures = photo_pixels(network, x)
    labels = _segments(pictures, segmentation, segments, seed)
    maps = np.zeros((len(x), ids.shape[1], *x.shape[1:3]), np.float32)
    fits = []
    for i in range(len(x)):
        seg = labels[i]
        z = _sample_matrix(samples, num_samples, int(seg.max()) + 1, seed)
        hidden = _hidden(network, x[i], seg, hide)
        kept = z.astype(bool)

        def perturbed(index: np.ndarray, seg: np.ndarray = seg, kept: np.ndarray = kept, hidden: np.ndarray = hidden,
                      i: int = i) -> np.ndarray:
            return composite(kept[index][:, seg], x[i], hidden)

        scores = target_scores(network, perturbed, num_samples, ids[i], size, "LIME", progress)
        fits.append(_surrogate(z, scores, kernel_width))
        maps[i] = fits[-1].weights[:, seg]
    return MethodOutput(maps, logits, ids, extras={
        "segments": labels, "weights": [fit.weights for fit in fits],
        "intercept": np.array([fit.intercepts for fit in fits]), "score": np.array([fit.r2 for fit in fits]),
        "num_samples": num_samples, "segmented_images": pictures})


class Surrogate(NamedTuple):
    """One image's linear surrogates, one per target: coefficients (K, F), intercepts and weighted R^2 (K,)."""

    weights: np.ndarray
    intercepts: list[float]
    r2: list[float]


def _surrogate(z: np.ndarray, scores: np.ndarray, kernel_width: float) -> Surrogate:
    """Weighted ridge regressions (alpha 1) of each target's scores (S, K) on the samples z (S, F), each sample
    weighted by sqrt(exp(-d^2 / width^2)), d the cosine distance of z to all ones (the first sample)."""
    from sklearn.linear_model import Ridge  # imported here: it is most of `import heatlens`'s cost otherwise
    from sklearn.metrics import pairwise_distances

    distances = pairwise_distances(z, z[:1], metric="cosine").ravel()
    kernel = np.sqrt(np.exp(-np.square(distances / kernel_width)))  # a tiny width underflows to 0, not NaN
    columns = list(scores.T)
    models = [Ridge(alpha=1.0, fit_intercept=True).fit(z, y, sample_weight=kernel) for y in columns]
    return Surrogate(np.array([model.coef_ for model in models], np.float32), [m.intercept_ for m in models],
                     [m.score(z, y, sample_weight=kernel) for m, y in zip(models, columns, strict=True)])


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
    return fill_values(network, image[None], hide)[0]
