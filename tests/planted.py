"""A planted-signal task for the metrics: a predict function whose score depends only on one known square, and
Explanations with maps chosen by the test (the true square, its inverse, random noise)."""

from __future__ import annotations

import numpy as np

import heatlens
from heatlens.explanation import Explanation
from heatlens.targets import resolve

SIZE = 32
SQUARE = (8, 8, 20, 20)  # top, left, bottom, right on the SIZE x SIZE input


def square_mask(size: int = SIZE, square: tuple[int, int, int, int] = SQUARE) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    top, left, bottom, right = square
    mask[top:bottom, left:right] = True
    return mask


def planted_network(calls: list[int] | None = None) -> heatlens.models.Network:
    """Two classes on model-ready (N, 32, 32, 3) floats: class 0's logit is 8 x (the square's mean brightness)
    - 4, class 1's its negative; `calls` collects the batch size of every call the function gets."""
    mask = square_mask()

    def predict(x: np.ndarray) -> np.ndarray:
        if calls is not None:
            calls.append(len(x))
        brightness = x[:, mask].mean(axis=(1, 2))
        logit = 8.0 * brightness - 4.0
        return np.stack([logit, -logit], axis=1)

    return heatlens.wrap(predict, preprocess=None, name="planted")


def planted_images(n: int = 3, seed: int = 0) -> np.ndarray:
    """Images (n, 32, 32, 3) in [0, 1]: noise everywhere, a bright square where the model looks."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.0, 0.4, (n, SIZE, SIZE, 3)).astype(np.float32)
    images[:, square_mask()] = rng.uniform(0.8, 1.0, (n, int(square_mask().sum()), 3)).astype(np.float32)
    return images


def explanation_of(network: heatlens.models.Network, images: np.ndarray, maps: np.ndarray,
                   ids: list[int] | None = None) -> Explanation:
    """An Explanation of `images` whose maps (N, 1, h, w) are the test's own, for the classes `ids` (default 0)."""
    logits = network.predict(images)
    targets = resolve([[i] for i in (ids or [0] * len(images))], logits, None)
    return Explanation(maps=np.asarray(maps, np.float32), targets=targets, method="occlusion", model=network.name,
                       logits=logits, _inputs=images)


def true_maps(n: int) -> np.ndarray:
    """The square's own indicator, (n, 1, 32, 32), plus a tiny ramp that breaks ties in a fixed order."""
    ramp = np.linspace(0, 1e-3, SIZE * SIZE).reshape(SIZE, SIZE)
    return np.broadcast_to(square_mask() + ramp, (n, 1, SIZE, SIZE)).astype(np.float32)
