"""Gradient methods: saliency, gradient x input, SmoothGrad, guided backprop, deconvnet, guided Grad-CAM,
integrated gradients and expected gradients (also at an intermediate layer), each over `Network.trace`.

Attributions are signed, raw and in the input space the model sees, (N, K, H, W, C); the maps reduce
them over channels: max |a| for the gradient-magnitude methods, the signed sum for path methods.
Many-sample methods run their samples through the model in chunks of `batch_size`. The gradients are reduced
and accumulated with the trace's ArrayOps, so on a GPU they stay on the device until the maps and attributions
are done (one copy each to the host, whatever the number of samples).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import MethodError
from ..inputs import each_prepared
from ..models.arrays import ArrayOps
from ..models.base import Network
from ..overlay import upsample
from ..progress import progress_bar
from .baselines import make_baseline
from .cam import gradcam
from .registry import MethodOutput, TargetFn, register
from .shared import at_least, explained, positive

QUADRATURES = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")


def _magnitude(attributions: Any, ops: ArrayOps) -> Any:
    """max |a| over the colour channels: (N, K, H, W, C) -> (N, K, H, W)."""
    return ops.amax(ops.abs(attributions), axis=-1)


def _pixel_output(ops: ArrayOps, maps: Any, attributions: Any, logits: np.ndarray, ids: np.ndarray,
                  layer: str | None = None, extras: dict | None = None) -> MethodOutput:
    """The result, maps and attributions brought to numpy: the only host copies of a gradient method."""
    return MethodOutput(ops.to_numpy(maps), logits, ids, layer, extras or {}, attributions=ops.to_numpy(attributions))


def _input_gradients(network: Network, x: np.ndarray, targets: TargetFn, relu: str = "normal",
                     times_input: bool = False) -> MethodOutput:
    """Input gradients (times the input with `times_input`, then summed over channels; else max |g|)."""
    trace = network.trace(x, targets, wrt=["input"], relu=relu, keep_on_device=True)
    ops, grads = trace.ops, trace.gradients["input"]
    if times_input:
        grads = grads * ops.asarray(x)[:, None]
        return _pixel_output(ops, ops.sum(grads, axis=-1), grads, trace.logits, trace.ids)
    return _pixel_output(ops, _magnitude(grads, ops), grads, trace.logits, trace.ids)


@register("saliency", "Saliency: |d score / d input|, max over colour channels",
          "Simonyan et al. 2014, Deep Inside Convolutional Networks", needs_gradients=True, uses_layer=False)
def saliency(network: Network, x: np.ndarray, targets: TargetFn) -> MethodOutput:
    """M = max_c |dy^c / dx|."""
    return _input_gradients(network, x, targets)


@register("gradient_x_input", "Gradient x input, summed over channels (signed)",
          "Shrikumar et al. 2016, Not Just a Black Box", needs_gradients=True, uses_layer=False)
def gradient_x_input(network: Network, x: np.ndarray, targets: TargetFn) -> MethodOutput:
    """A = x * dy^c / dx; M = sum_c A."""
    return _input_gradients(network, x, targets, times_input=True)


@register("guided_backprop", "Guided backprop: input gradients through ReLUs that pass only positive signal",
          "Springenberg et al. 2015, Striving for Simplicity", needs_gradients=True, uses_layer=False)
def guided_backprop(network: Network, x: np.ndarray, targets: TargetFn) -> MethodOutput:
    """dL/dx through every ReLU with the rule max(dL/dy, 0) * [x > 0]."""
    return _input_gradients(network, x, targets, relu="guided")


@register("deconvnet", "Deconvnet: input gradients through ReLUs that rectify the backward signal",
          "Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks",
          needs_gradients=True, uses_layer=False)
def deconvnet(network: Network, x: np.ndarray, targets: TargetFn) -> MethodOutput:
    """dL/dx through every ReLU with the rule max(dL/dy, 0)."""
    return _input_gradients(network, x, targets, relu="deconv")


@register("guided_gradcam", "Guided Grad-CAM: guided backprop times the upsampled Grad-CAM map",
          "Selvaraju et al. 2017, Grad-CAM", needs_gradients=True, uses_layer=True)
def guided_gradcam(network: Network, x: np.ndarray, targets: TargetFn, layer: str | None = None) -> MethodOutput:
    """A = guided_backprop * upsample(Grad-CAM), per colour channel."""
    cam = gradcam(network, x, targets, layer=layer)
    trace = network.trace(x, cam.ids, wrt=["input"], relu="guided", keep_on_device=True)
    ops, guided = trace.ops, trace.gradients["input"]
    whole = (0.0, 0.0, float(x.shape[1]), float(x.shape[2]))
    attributions = guided * ops.asarray(upsample(cam.maps, x.shape[1:3], whole)[..., None])
    return _pixel_output(ops, _magnitude(attributions, ops), attributions, cam.logits, cam.ids, cam.layer)


# a chunk's gradients (N_chunk, K, ...) and the ops of their kind -> what is accumulated
Transform = Callable[[Any, ArrayOps], Any]
Sampler = Callable[[np.ndarray], tuple[np.ndarray, dict, Transform | None]]


def _accumulate(network: Network, ids: np.ndarray, per_image: int, make: Sampler, wrt: str, batch_size: int,
                label: str, progress: bool) -> tuple[Any, ArrayOps]:
    """Sum, per image, the gradients of `per_image` samples each, in float64 where the traces keep them (with
    their ops). `make(sample_ids)` returns the chunk's inputs, activations to inject, and an optional transform
    of the chunk's gradients; sample s belongs to image s // per_image."""
    positive("batch_size", batch_size)
    n_samples = len(ids) * per_image
    total: Any = None
    with progress_bar(n_samples, label, progress and n_samples > batch_size) as advance:
        for start in range(0, n_samples, batch_size):
            index = np.arange(start, min(start + batch_size, n_samples))
            image = index // per_image
            inputs, inject, transform = make(index)
            trace = network.trace(inputs, ids[image], wrt=[wrt], inject=inject, keep_on_device=True)
            ops, grads = trace.ops, trace.gradients[wrt]
            grads = transform(grads, ops) if transform is not None else grads
            if total is None:
                total = ops.zeros((len(ids), *grads.shape[1:]), np.float64)
            ops.add_at(total, image, grads)
            advance(len(index))
    assert total is not None, "every caller asks for at least one sample"
    return ops.astype(total, np.float32), ops


@register("smoothgrad", "SmoothGrad: input gradients averaged over noisy copies (also SmoothGrad-squared)",
          "Smilkov et al. 2017, SmoothGrad: removing noise by adding noise", needs_gradients=True, uses_layer=False)
def smoothgrad(network: Network, x: np.ndarray, targets: TargetFn, n_samples: int = 25, noise: float = 0.15,
               squared: bool = False, batch_size: int = 32, seed: int = 0, progress: bool = True) -> MethodOutput:
    """A = 1/n sum_i g(x + e_i) (or g^2 for SmoothGrad-squared), e_i ~ N(0, (noise * (max x - min x))^2)."""
    positive("n_samples", n_samples)
    at_least("noise", noise)
    logits, ids = explained(network, x, targets)
    rng = np.random.default_rng(seed)
    sigma = (noise * (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3)))).astype(np.float32)

    def make(index: np.ndarray) -> tuple:
        image = index // n_samples
        draws = rng.standard_normal((len(index), *x.shape[1:]), dtype=np.float32)
        return x[image] + draws * sigma[image, None, None, None], {}, (_squared if squared else None)

    total, ops = _accumulate(network, ids, n_samples, make, "input", batch_size, "SmoothGrad", progress)
    attributions = total / n_samples
    maps = ops.amax(attributions, axis=-1) if squared else _magnitude(attributions, ops)
    return _pixel_output(ops, maps, attributions, logits, ids,
                         extras={"n_samples": n_samples, "noise": noise, "squared": squared})


def _squared(grads: Any, ops: ArrayOps) -> Any:
    """SmoothGrad-squared's transform of each sample's gradients."""
    return ops.square(grads)


@register("integrated_gradients", "Integrated gradients along the straight path from a baseline (signed)",
          "Sundararajan et al. 2017, Axiomatic Attribution for Deep Networks", needs_gradients=True,
          uses_layer=False)
def integrated_gradients(network: Network, x: np.ndarray, targets: TargetFn, steps: int = 50,
                         baseline: str | np.ndarray = "black", integration: str = "gausslegendre", batch_size: int = 32,
                         seed: int = 0, progress: bool = True) -> MethodOutput:
    """A = (x - x') * integral_0^1 dy/dx(x' + a (x - x')) da, by quadrature over `steps` points.

    Completeness: sum A = y(x) - y(x'); what the quadrature leaves is in extras['completeness_gap']."""
    positive("steps", steps)
    logits, ids = explained(network, x, targets)
    base = make_baseline(network, x, baseline, np.random.default_rng(seed))
    alphas, weights = quadrature(integration, steps)

    def make(index: np.ndarray) -> tuple:
        image, step = index // steps, index % steps
        a = alphas[step, None, None, None]
        scale = weights[step, None, None, None, None]
        return base[image] + a * (x[image] - base[image]), {}, lambda g, ops: g * ops.asarray(scale)

    path, ops = _accumulate(network, ids, steps, make, "input", batch_size, "Integrated gradients", progress)
    attributions = ops.asarray(x - base)[:, None] * path
    base_scores = np.take_along_axis(network.predict(base), ids, axis=1)
    gap = ops.to_numpy(ops.sum(attributions, axis=(2, 3, 4))) - (np.take_along_axis(logits, ids, axis=1)
                                                                  - base_scores)
    return _pixel_output(ops, ops.sum(attributions, axis=-1), attributions, logits, ids,
                         extras={"steps": steps, "integration": integration, "baseline_scores": base_scores,
                                 "completeness_gap": gap})


@register("expected_gradients", "Expected gradients over a background set, at the input or at a layer (signed)",
          "Erion et al. 2021, Improving performance of deep learning models with axiomatic attribution priors "
          "and expected gradients", needs_gradients=True, uses_layer=True)
def expected_gradients(network: Network, x: np.ndarray, targets: TargetFn, background: object = None,
                       n_samples: int = 200, noise: float = 0.0, local_smoothing: float = 0.0,
                       layer: str | None = None, batch_size: int = 32, seed: int = 0,
                       progress: bool = True) -> MethodOutput:
    """A = E_{x' ~ background, a ~ U(0, 1)} [(x - x') * dy/dx(x' + a (x - x') + e)], e ~ N(0, noise * range).

    local_smoothing=s is shap's GradientExplainer option: the explained point itself is drawn as x + e,
    e ~ N(0, s^2) in the units of the inputs (or of the layer's activations), absolute, not relative to
    their range, and both the path and the difference use it: A = E[(x + e - x') * dy/dx(x' + a (x + e - x'))].
    It differs from noise= (scaled by the range, added to the path point only), so they are not one option.
    With `layer`, x and x' are that layer's activations and the attribution is per position of the layer
    (as SHAP's GradientExplainer does for a model cut at a layer); the maps sum it over channels."""
    positive("n_samples", n_samples)
    at_least("noise", noise)
    at_least("local_smoothing", local_smoothing)
    if noise and local_smoothing:
        raise MethodError("give noise= or local_smoothing=, not both: local_smoothing is shap's absolute noise "
                          "on the explained point, noise= a fraction of the input range added along the path")
    if background is None:
        raise MethodError("expected_gradients needs background=images (photos, or model-ready arrays)")
    if isinstance(background, list | tuple) and not background:
        raise MethodError("background=[] holds no images; give at least one")
    logits, ids = explained(network, x, targets)
    reference = each_prepared(network, background)
    if reference.shape[1:] != x.shape[1:]:
        raise MethodError(f"background inputs have shape {reference.shape[1:]}, the explained ones {x.shape[1:]}")
    if layer is not None:
        layer = network.spatial_layer(layer, x.shape[1:])
        points = network.trace(x, capture=[layer]).activations[layer]
        reference = network.trace(reference, capture=[layer]).activations[layer]
    else:
        points = x
    rng = np.random.default_rng(seed)
    spread = noise * (points.max() - points.min())

    def make(index: np.ndarray) -> tuple:
        image = index // n_samples
        chosen = reference[rng.integers(0, len(reference), len(index))]
        alpha = rng.uniform(0, 1, len(index)).astype(np.float32).reshape(-1, *([1] * (points.ndim - 1)))
        point = points[image]
        if local_smoothing:
            point = point + rng.normal(0, local_smoothing, point.shape).astype(np.float32)
        path = chosen + alpha * (point - chosen)
        if spread:
            path = path + rng.normal(0, spread, path.shape).astype(np.float32)
        delta = (point - chosen)[:, None]
        if layer is None:
            return path, {}, lambda g, ops: g * ops.asarray(delta)
        return x[image], {layer: path}, lambda g, ops: g * ops.asarray(delta)

    total, ops = _accumulate(network, ids, n_samples, make, layer or "input", batch_size, "Expected gradients",
                             progress)
    attributions = total / n_samples
    return _pixel_output(ops, ops.sum(attributions, axis=-1), attributions, logits, ids, layer,
                         extras={"n_samples": n_samples, "background_size": len(reference),
                                 "local_smoothing": local_smoothing})


def quadrature(method: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Points a in [0, 1] and weights for integral_0^1 f(a) da (the names captum uses)."""
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return ((nodes + 1) / 2).astype(np.float32), (weights / 2).astype(np.float32)
    if method == "riemann_trapezoid":
        if steps < 2:
            raise MethodError("riemann_trapezoid needs steps >= 2")
        weights = np.full(steps, 1 / (steps - 1))
        weights[[0, -1]] /= 2
        return np.linspace(0, 1, steps, dtype=np.float32), weights.astype(np.float32)
    offsets = {"riemann_left": 0.0, "riemann_middle": 0.5, "riemann_right": 1.0}
    if method not in offsets:
        raise MethodError(f"unknown integration method '{method}': use one of {', '.join(QUADRATURES)}")
    alphas = (np.arange(steps) + offsets[method]) / steps
    return alphas.astype(np.float32), np.full(steps, 1 / steps, np.float32)
