"""Deletion and insertion curves (Petsiuk et al. 2018): the target's score as the pixels (or superpixels) a map
ranks highest are removed from the image, or inserted into a baseline, step by step; scored by the area under the
curve. One forward pass per step, all batched."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import MethodError
from ..methods.colours import photo_pixels
from ..methods.shared import positive
from ..targets import TargetSpec
from .core import MetricResult, Passes, Subject, baseline_inputs, check_score, subject
from .registry import register

UNITS = ("pixel", "superpixel")
PETSIUK = "Petsiuk et al. 2018, RISE: Randomized Input Sampling for Explanation of Black-box Models"


@register("deletion", "faithfulness", False, "the target's score as the most relevant pixels are removed (AUC)",
          PETSIUK)
def deletion(model: Any, images: Any, explanation: Any = "gradcam", target: TargetSpec = "top1", steps: int = 100,
             baseline: str | float | np.ndarray = "black", unit: str = "pixel", n_segments: int = 50,
             score: str = "probability", options: dict[str, Any] | None = None, batch_size: int | str = "auto",
             progress: bool = True) -> MetricResult:
    """AUC of s(x_t), t = 0..steps: x_t is x with the t/steps most relevant pixels (or superpixels) set to the
    baseline; s is the target's probability (or logit); area by the trapezoid rule over t/steps in [0, 1]. Lower is
    better: a faithful map loses the score fast."""
    return _curve("deletion", subject(model, images, explanation, target, options), steps, baseline, unit,
                  n_segments, score, batch_size, progress, insert=False)


@register("insertion", "faithfulness", True, "the target's score as the most relevant pixels are put back (AUC)",
          PETSIUK)
def insertion(model: Any, images: Any, explanation: Any = "gradcam", target: TargetSpec = "top1", steps: int = 100,
              baseline: str | float | np.ndarray = "blur", unit: str = "pixel", n_segments: int = 50,
              score: str = "probability", options: dict[str, Any] | None = None, batch_size: int | str = "auto",
              progress: bool = True) -> MetricResult:
    """AUC of s(x_t), t = 0..steps: x_t is the baseline (a blurred copy by default) with the t/steps most relevant
    pixels (or superpixels) of x put back. Higher is better: a faithful map recovers the score fast."""
    return _curve("insertion", subject(model, images, explanation, target, options), steps, baseline, unit,
                  n_segments, score, batch_size, progress, insert=True)


def _curve(name: str, sub: Subject, steps: int, baseline: Any, unit: str, n_segments: int, score: str,
           batch_size: int | str, progress: bool, insert: bool) -> MetricResult:
    positive("steps", steps)
    check_score(score)
    ranks, units = unit_ranks(sub, unit, n_segments)
    base = baseline_inputs(sub, baseline)
    n, k = sub.ids.shape
    counts = np.rint(units[:, None] * np.arange(steps + 1)[None] / steps).astype(np.int64)
    passes = Passes(sub, n * k * (steps + 1), name.capitalize(), score, batch_size, progress)

    def make(jobs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        i, rest = np.divmod(jobs, k * (steps + 1))
        j, t = np.divmod(rest, steps + 1)
        hit = (ranks[i, j] < counts[i, t][:, None, None])[..., None]
        inputs = np.where(hit, sub.x[i], base[i]) if insert else np.where(hit, base[i], sub.x[i])
        return inputs.astype(np.float32, copy=False), sub.ids[i, j]

    curves = passes.run(make).reshape(n, k, steps + 1)
    fraction = np.arange(steps + 1) / steps
    return MetricResult(name, sub.method, area(curves, fraction), name == "insertion", passes.done, sub.ids,
                        curves={"fraction": fraction, "scores": curves},
                        params={"steps": steps, "baseline": _label(baseline), "unit": unit, "score": score,
                                **({"n_segments": n_segments} if unit == "superpixel" else {})})


def area(curves: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """The area under curves (..., T) over `fraction` (T,), by the trapezoid rule."""
    return np.trapezoid(curves, fraction, axis=-1)


def unit_ranks(sub: Subject, unit: str, n_segments: int) -> tuple[np.ndarray, np.ndarray]:
    """Per image and target, each pixel's rank (N, K, h, w) in the order the map removes them, most relevant first
    (ties in reading order), and each image's number of units (N,): pixels, or SLIC superpixels ranked by their
    mean value."""
    if unit not in UNITS:
        raise MethodError(f"unit must be one of {', '.join(UNITS)}. Received: {unit!r}")
    n, k, h, w = sub.maps.shape
    if unit == "pixel":
        order = np.argsort(-sub.maps.reshape(n, k, h * w), axis=-1, kind="stable")
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(h * w), axis=-1)
        return ranks.reshape(n, k, h, w), np.full(n, h * w)
    positive("n_segments", n_segments)
    segments = superpixels(sub, n_segments)
    ranks = np.empty((n, k, h, w), np.int64)
    counts = segments.reshape(n, -1).max(axis=1) + 1
    for i in range(n):
        labels, units = segments[i].ravel(), int(counts[i])
        sizes = np.maximum(np.bincount(labels, minlength=units), 1)
        for j in range(k):
            means = np.bincount(labels, sub.maps[i, j].ravel(), minlength=units) / sizes
            order = np.argsort(-means, kind="stable")
            position = np.empty(units, np.int64)
            position[order] = np.arange(units)
            ranks[i, j] = position[segments[i]]
    return ranks, counts


def superpixels(sub: Subject, n_segments: int) -> np.ndarray:
    """SLIC superpixels (N, h, w) of the inputs as the photo's pixels, labelled 0..n-1 with no gaps."""
    from skimage.segmentation import slic

    pictures = photo_pixels(sub.network, sub.x)
    out = np.empty(pictures.shape[:3], np.int64)
    for i, picture in enumerate(pictures):
        labels = slic(picture, n_segments=n_segments, compactness=10, start_label=0)
        out[i] = np.unique(labels, return_inverse=True)[1].reshape(labels.shape)
    return out


def _label(baseline: Any) -> Any:
    return f"array{tuple(baseline.shape)}" if isinstance(baseline, np.ndarray) else baseline
