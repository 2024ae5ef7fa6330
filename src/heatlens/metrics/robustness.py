"""Robustness and complexity metrics: how much a map moves under small input changes, and how concentrated it is.

Max- and average-sensitivity explain noisy copies of the inputs again (in batches, through the method itself), so
they need a method heatlens can rerun; sparseness and complexity look at the maps alone (no forward passes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import MethodError
from ..methods.batching import batch_size_for
from ..methods.shared import at_least, positive
from ..preprocess import whole_image
from ..progress import progress_bar
from ..targets import TargetSpec
from .core import MetricResult, Subject, chunks, subject
from .registry import register

log = logging.getLogger(__name__)
YEH = "Yeh et al. 2019, On the (In)fidelity and Sensitivity of Explanations"
CHALASANI = "Chalasani et al. 2020, Concise Explanations of Neural Networks using Adversarial Training"
BHATT = "Bhatt et al. 2020, Evaluating and Aggregating Feature-based Model Explanations"
Perturb = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@register("max_sensitivity", "robustness", False, "the largest relative change of the map under small input noise",
          YEH, reruns=True)
def max_sensitivity(model: Any, images: Any, explanation: Any = "gradcam", target: TargetSpec = "top1",
                    radius: float = 0.02, n_samples: int = 10, perturb: Perturb | None = None,
                    options: dict[str, Any] | None = None, batch_size: int | str = "auto", progress: bool = True,
                    seed: int = 0) -> MetricResult:
    """max_s ||Phi(x) - Phi(x + delta_s)||_F / ||Phi(x)||_F over n_samples draws delta_s uniform in the L-inf ball
    of `radius` in model-input space (captum's sensitivity_max; Quantus' MaxSensitivity with normalise=False).
    `perturb(x, rng)`, if given, makes the noisy inputs instead (see avg_sensitivity). Lower is better."""
    return _sensitivity("max_sensitivity", subject(model, images, explanation, target, options), radius, n_samples,
                        perturb, batch_size, progress, seed)


@register("avg_sensitivity", "robustness", False, "the mean relative change of the map under small input noise",
          YEH, reruns=True)
def avg_sensitivity(model: Any, images: Any, explanation: Any = "gradcam", target: TargetSpec = "top1",
                    radius: float = 0.02, n_samples: int = 10, perturb: Perturb | None = None,
                    options: dict[str, Any] | None = None, batch_size: int | str = "auto", progress: bool = True,
                    seed: int = 0) -> MetricResult:
    """The mean over n_samples of ||Phi(x) - Phi(x + delta_s)||_F / ||Phi(x)||_F, delta_s uniform in the L-inf ball
    of `radius` (Quantus' AvgSensitivity with normalise=False), not clipped (as neither clips). `perturb(x, rng)`
    -> noisy copies of the model inputs x (n, h, w, C), called on consecutive batches in job order (image 0's
    samples in turn, then image 1's), feeds other draws (e.g. an oracle's). Lower is better."""
    return _sensitivity("avg_sensitivity", subject(model, images, explanation, target, options), radius, n_samples,
                        perturb, batch_size, progress, seed)


def _sensitivity(name: str, sub: Subject, radius: float, n_samples: int, perturb: Perturb | None,
                 batch_size: int | str, progress: bool, seed: int) -> MetricResult:
    at_least("radius", radius, strict=True)
    positive("n_samples", n_samples)
    if perturb is not None and not callable(perturb):
        raise MethodError(f"perturb must be a function (x, rng) -> perturbed x. Received: {type(perturb).__name__}")
    n, k = sub.ids.shape
    rng = np.random.default_rng(seed)
    draw = perturb or (lambda x, generator: x + generator.uniform(-radius, radius, x.shape).astype(np.float32))
    total = n * n_samples
    size = batch_size_for(sub.network, sub.x[0], batch_size, total)
    reference, rerun = _reference_maps(sub, size)
    log.info("%s: %d inputs explained again in batches of %d", name, total + rerun, size)
    changes = np.zeros((n, k, n_samples))
    with progress_bar(total, f"{name} ({total} explanations)", progress) as advance:
        for jobs in chunks(total, size):
            i, s = np.divmod(jobs, n_samples)
            noisy = _checked(draw(sub.x[i].copy(), rng), sub.x[i].shape)
            maps = sub.explain(noisy, sub.ids[i])
            changes[i, :, s] = np.linalg.norm((reference[i] - maps).reshape(len(jobs), k, -1), axis=-1)
            advance(len(jobs))
    norms = np.linalg.norm(reference.reshape(n, k, -1).astype(np.float64), axis=-1)
    ratios = changes / np.where(norms == 0, 1.0, norms)[..., None]
    scores = ratios.max(axis=-1) if name == "max_sensitivity" else ratios.mean(axis=-1)
    notes = [f"forward_passes counts the inputs explained: {n_samples} noisy copies of each image"
             + (" and the images themselves" if rerun else "") + "; each explanation makes the method's own passes"]
    if rerun:
        notes.append("the explanation's maps were resampled at the photo's resolution, so the images were explained "
                     "again on the model-input grid for Phi(x)")
    if (norms == 0).any():
        notes.append(f"{int((norms == 0).sum())} map(s) are all zero: their change is not divided by their norm "
                     "(captum's convention)")
    return MetricResult(name, sub.method, scores, False, total + rerun, sub.ids,
                        curves={"sensitivities": ratios, "norms": norms},
                        params={"radius": float(radius), "n_samples": n_samples, "seed": seed,
                                "perturb": "uniform" if perturb is None else getattr(perturb, "__name__", "custom")},
                        notes=notes)


def _checked(noisy: Any, shape: tuple[int, ...]) -> np.ndarray:
    noisy = np.asarray(noisy, np.float32)
    if noisy.shape != shape or not np.isfinite(noisy).all():
        raise MethodError(f"perturb must return finite model inputs of the shape it was given {shape}. Received: "
                          f"shape {noisy.shape}{'' if np.isfinite(noisy).all() else ' with NaN or infinite values'}")
    return noisy


def _reference_maps(sub: Subject, size: int) -> tuple[np.ndarray, int]:
    """Phi(x) on the model-input grid and how many inputs it took to make: the subject's maps, or, where they were
    resampled from the photo's resolution (not what the method gives on the grid), the method run again."""
    explanation = sub.explanation
    photo = explanation.images.shape[1:3]
    whole = whole_image(*photo)
    exact = explanation.maps.shape[-2:] != photo or (
        photo == sub.x.shape[1:3] and (explanation.input_box or whole) == whole)
    if exact:
        return sub.maps, 0
    return np.concatenate([sub.explain(sub.x[jobs], sub.ids[jobs]) for jobs in chunks(len(sub.x), size)]), len(sub.x)


@register("sparseness", "complexity", True, "the Gini index of |map|: how few pixels hold the relevance", CHALASANI)
def sparseness(model: Any, images: Any, explanation: Any = "gradcam", target: TargetSpec = "top1",
               options: dict[str, Any] | None = None, batch_size: int | str = "auto",
               progress: bool = True) -> MetricResult:
    """The Gini index of a = sort(|M|) ascending over the d pixels: sum_i (2i - d - 1) a_i / (d sum_i a_i), in
    [0, 1); an all-zero map scores 0. Higher is better (sparser). batch_size and progress: unused."""
    sub = subject(model, images, explanation, target, options)
    values = np.sort(np.abs(_flat(sub)), axis=-1)
    d = values.shape[-1]
    weights = 2 * np.arange(1, d + 1) - d - 1
    totals = values.sum(axis=-1)
    scores = np.divide((weights * values).sum(axis=-1), d * totals, out=np.zeros_like(totals), where=totals > 0)
    return MetricResult("sparseness", sub.method, scores, True, 0, sub.ids, params={},
                        notes=_zero_notes(totals, "score 0"))


@register("complexity", "complexity", False, "the entropy of |map|'s share per pixel: how spread the relevance is",
          BHATT)
def complexity(model: Any, images: Any, explanation: Any = "gradcam", target: TargetSpec = "top1",
               options: dict[str, Any] | None = None, batch_size: int | str = "auto",
               progress: bool = True) -> MetricResult:
    """The entropy -sum_i P_i ln P_i of P_i = |M_i| / sum_j |M_j| over the pixels, in [0, ln d]; an all-zero map
    scores ln d (no pixel stands out). Lower is better (simpler). batch_size and progress: unused."""
    sub = subject(model, images, explanation, target, options)
    values = np.abs(_flat(sub))
    totals = values.sum(axis=-1, keepdims=True)
    shares = np.divide(values, totals, out=np.zeros_like(values), where=totals > 0)
    logs = np.log(shares, out=np.zeros_like(shares), where=shares > 0)
    scores = np.where(totals[..., 0] > 0, -(shares * logs).sum(axis=-1), np.log(values.shape[-1]))
    return MetricResult("complexity", sub.method, scores, False, 0, sub.ids, params={},
                        notes=_zero_notes(totals[..., 0], "score ln(pixels), the entropy of a uniform map"))


def _flat(sub: Subject) -> np.ndarray:
    n, k = sub.ids.shape
    return sub.maps.reshape(n, k, -1).astype(np.float64)


def _zero_notes(totals: np.ndarray, outcome: str) -> list[str]:
    zero = int((totals == 0).sum())
    return [f"{zero} map(s) are all zero: they {outcome}"] if zero else []
