"""The CAM family: maps from a layer's activations A (N, h, w, C), weighted per channel or per pixel.

Each method is a contributions function (N, K, h, w, C) over a shared template: the map is the ReLU of
their channel sum (or, with eigen_smooth, of their first principal component). The gradient-weighted ones and
Eigen-CAM are written over the pass's ArrayOps, so on a GPU their reductions stay on the device; Score-CAM and
Ablation-CAM run many forward passes from the activations and take them as numpy. Every method takes one
layer or several (fused), `aug_smooth` (test-time augmentation), and for vision transformers a token
layer laid out on its grid (`grid`, `prefix_tokens`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import MethodError
from ..models.base import Network
from ..models.objectives import LOGITS, Objective, Softmax
from ..overlay import upsample
from ..progress import progress_bar
from .cam_template import AUGMENTATIONS, Contributions, LayerPass, augmented, fuse, layer_maps
from .registry import LayerSpec, MethodOutput, TargetFn, register
from .shared import positive

EPS = 1e-7


def _cam(network: Network, x: np.ndarray, targets: TargetFn, layer: LayerSpec, contributions: Contributions,
         gradients: bool = True, eigen_smooth: bool = False, aug_smooth: bool = False,
         grid: tuple[int, int] | None = None, prefix_tokens: int | None = None,
         objective: Objective = LOGITS, device_ops: bool = True) -> MethodOutput:
    """The template: one layer -> maps on its grid; several layers or aug_smooth -> maps on the input grid.
    `device_ops`: `contributions` is written over the pass's ops (the arrays may stay on the device)."""
    names = [layer] if layer is None or isinstance(layer, str) else list(layer)
    if not names:
        raise MethodError("layer=[] names no layer; give a layer name, a list of names, or None")
    names = [network.spatial_layer(name, x.shape[1:], tokens=True) for name in names]
    maps, logits, ids = layer_maps(network, x, targets, names, contributions, gradients, eigen_smooth, grid,
                                   prefix_tokens, objective, device_ops)
    if len(names) == 1 and not aug_smooth:
        return MethodOutput(maps[0], logits, ids, names[0])
    size = x.shape[1:3]
    fused = [fuse(maps, size)]
    for flip, scale in AUGMENTATIONS[1:] if aug_smooth else []:
        more, _, _ = layer_maps(network, augmented(x, flip, scale), ids, names, contributions, gradients,
                                eigen_smooth, grid, prefix_tokens, objective, device_ops)
        fused.append(fuse(more, size)[..., ::-1] if flip else fuse(more, size))
    return MethodOutput(np.mean(fused, axis=0), logits, ids, ", ".join(names),
                        extras={"layers": names, "aug_smooth": aug_smooth})


def _channel_weighted(weights: Any, acts: Any) -> Any:
    """w (N, K, C) times A (N, h, w, C) -> (N, K, h, w, C), of either array kind."""
    return weights[:, :, None, None, :] * acts[:, None]


def _register_cam(name: str, summary: str, paper: str, gradients: bool = True):
    return register(name, summary, paper, needs_gradients=gradients, uses_layer=True)


def _gradient_cam(name: str, summary: str, paper: str, contributions: Contributions) -> Callable[..., MethodOutput]:
    """Register a gradient-weighted CAM whose contributions function carries the formula (its docstring)."""

    @_register_cam(name, summary, paper)
    def method(network: Network, x: np.ndarray, targets: TargetFn, layer: LayerSpec = None, eigen_smooth: bool = False,
               aug_smooth: bool = False, grid: tuple[int, int] | None = None, prefix_tokens: int | None = None,
               softmax: bool = False) -> MethodOutput:
        return _cam(network, x, targets, layer, contributions, eigen_smooth=eigen_smooth, aug_smooth=aug_smooth,
                    grid=grid, prefix_tokens=prefix_tokens, objective=Softmax() if softmax else LOGITS)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = contributions.__doc__
    return method


def _gradcam(p: LayerPass) -> Any:
    """L^c = ReLU(sum_k a_k^c A^k), a_k^c = 1/Z sum_ij dy^c / dA^k_ij."""
    return _channel_weighted(p.ops.mean(p.traced_gradients, axis=(2, 3)), p.activations)


def _gradcam_plusplus(p: LayerPass) -> Any:
    """w_k = sum_ij a_ij ReLU(g_ij), a_ij = g^2 / (2 g^2 + sum_ab A_ab g^3) (the paper's closed form for an
    exponential score; 0 where the gradient is 0); M = ReLU(sum_k w_k A_k)."""
    ops, a, g = p.ops, p.activations, p.traced_gradients
    g2, g3 = g**2, g**3
    denominator = 2 * g2 + ops.sum(a, axis=(1, 2))[:, None, None, None, :] * g3
    alpha = ops.where(g != 0, g2 / ops.where(denominator != 0, denominator, EPS), 0)
    return _channel_weighted(ops.sum(alpha * ops.maximum(g, 0), axis=(2, 3)), a)


def _xgradcam(p: LayerPass) -> Any:
    """w_k = sum_ij (A_ij / sum_ab A_ab) g_ij; M = ReLU(sum_k w_k A_k)."""
    ops, a, g = p.ops, p.activations, p.traced_gradients
    share = a / (ops.sum(a, axis=(1, 2), keepdims=True) + EPS)
    return _channel_weighted(ops.sum(g * share[:, None], axis=(2, 3)), a)


def _layercam(p: LayerPass) -> Any:
    """M = ReLU(sum_k ReLU(g_k) * A_k), per pixel."""
    return p.ops.maximum(p.traced_gradients, 0) * p.activations[:, None]


def _hirescam(p: LayerPass) -> Any:
    """M = ReLU(sum_k g_k * A_k), per pixel (the ReLU as in the other CAMs)."""
    return p.traced_gradients * p.activations[:, None]


gradcam = _gradient_cam(
    "gradcam", "Grad-CAM: ReLU of activations weighted by spatially averaged gradients",
    "Selvaraju et al. 2017, Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization",
    _gradcam)
gradcam_plusplus = _gradient_cam(
    "gradcam_plusplus", "Grad-CAM++: positive gradients weighted by second-order coefficients",
    "Chattopadhay et al. 2018, Grad-CAM++: Generalized Gradient-Based Visual Explanations", _gradcam_plusplus)
xgradcam = _gradient_cam(
    "xgradcam", "XGrad-CAM: gradients weighted by the normalised activations",
    "Fu et al. 2020, Axiom-based Grad-CAM: Towards Accurate Visualization and Explanation of CNNs", _xgradcam)
layercam = _gradient_cam(
    "layercam", "LayerCAM: activations weighted per pixel by their positive gradients",
    "Jiang et al. 2021, LayerCAM: Exploring Hierarchical Class Activation Maps for Localization", _layercam)
hirescam = _gradient_cam(
    "hirescam", "HiResCAM: gradient times activation per pixel, summed over channels",
    "Draelos & Carin 2020, Use HiResCAM instead of Grad-CAM for faithful explanations", _hirescam)


@_register_cam("eigencam", "Eigen-CAM: first principal component of the activations (class-agnostic)",
               "Muhammad & Yeasin 2020, Eigen-CAM: Class Activation Map using Principal Components",
               gradients=False)
def eigencam(network: Network, x: np.ndarray, targets: TargetFn, layer: LayerSpec = None, aug_smooth: bool = False,
             grid: tuple[int, int] | None = None, prefix_tokens: int | None = None) -> MethodOutput:
    """M = ReLU(projection of A on its first principal component over positions), signed to agree with
    the activations' channel sum; the same map for every target."""

    def contributions(p: LayerPass) -> Any:
        a = p.activations
        return p.ops.broadcast_to(a[:, None], (len(a), p.ids.shape[1], *a.shape[1:]))

    return _cam(network, x, targets, layer, contributions, gradients=False, eigen_smooth=True, aug_smooth=aug_smooth,
                grid=grid, prefix_tokens=prefix_tokens)


@_register_cam("scorecam", "Score-CAM: channels weighted by the target's score on inputs masked by them",
               "Wang et al. 2020, Score-CAM: Score-Weighted Visual Explanations for CNNs", gradients=False)
def scorecam(network: Network, x: np.ndarray, targets: TargetFn, layer: LayerSpec = None, batch_size: int = 32,
             eigen_smooth: bool = False, aug_smooth: bool = False, grid: tuple[int, int] | None = None,
             prefix_tokens: int | None = None, progress: bool = True) -> MethodOutput:
    """H_k = normalise(upsample(A_k)); s_k = y^c(x * H_k); w = softmax_k(s) (the paper's Algorithm 1 on
    the target's score, as pytorch-grad-cam does; softmax probabilities would saturate on confident
    models and flatten the weights); M = ReLU(sum_k w_k A_k)."""

    def contributions(p: LayerPass) -> np.ndarray:
        net, inputs, ids, a = p.network, p.x, p.ids, p.activations
        n, c = len(a), a.shape[-1]
        whole_input = (0.0, 0.0, float(inputs.shape[1]), float(inputs.shape[2]))
        scores = np.zeros((n, ids.shape[1], c), np.float32)
        with progress_bar(n * c, "Score-CAM", progress and n * c > batch_size) as advance:
            for i in range(n):
                for start in range(0, c, batch_size):
                    chunk = slice(start, min(start + batch_size, c))
                    masks = upsample(np.moveaxis(a[i, :, :, chunk], -1, 0), inputs.shape[1:3], whole_input)
                    low = masks.min(axis=(1, 2), keepdims=True)
                    span = masks.max(axis=(1, 2), keepdims=True) - low
                    masks = np.where(span > 0, (masks - low) / np.where(span > 0, span, 1), 0)
                    scores[i, :, chunk] = net.predict(inputs[i][None] * masks[..., None])[:, ids[i]].T
                    advance(chunk.stop - chunk.start)
        weights = np.exp(scores - scores.max(axis=2, keepdims=True))
        return _channel_weighted(weights / weights.sum(axis=2, keepdims=True), a)

    positive("batch_size", batch_size)
    return _cam(network, x, targets, layer, contributions, gradients=False, eigen_smooth=eigen_smooth,
                aug_smooth=aug_smooth, grid=grid, prefix_tokens=prefix_tokens, device_ops=False)


@_register_cam("ablationcam", "Ablation-CAM: channels weighted by the score drop when each is zeroed",
               "Desai & Ramaswamy 2020, Ablation-CAM: Visual Explanation for Deep Convolutional Network "
               "via Gradient-free Localization", gradients=False)
def ablationcam(network: Network, x: np.ndarray, targets: TargetFn, layer: LayerSpec = None, batch_size: int = 32,
                eigen_smooth: bool = False, aug_smooth: bool = False, progress: bool = True) -> MethodOutput:
    """w_k = (y^c - y^c_k) / y^c, y^c_k the score with channel k of the layer zeroed (only the rest of the
    network runs, via `split`); M = ReLU(sum_k w_k A_k). Where y^c is 0 the drop is used unscaled."""

    def contributions(p: LayerPass) -> np.ndarray:
        net, inputs, ids, name, a = p.network, p.x, p.ids, p.layer, p.activations
        if not net.layer(name, inputs.shape[1:]).spatial:
            raise MethodError(f"ablationcam works on spatial (h, w, C) layers, not token sequences like '{name}' "
                              "(a vision transformer's default); use gradcam or scorecam there")
        tail = net.split(name).tail
        n, c = len(a), a.shape[-1]
        base = np.take_along_axis(tail(a, inputs), ids, axis=1)
        drops = np.zeros((n, ids.shape[1], c), np.float32)
        with progress_bar(n * c, "Ablation-CAM", progress and n * c > batch_size) as advance:
            for i in range(n):
                for start in range(0, c, batch_size):
                    channels = np.arange(start, min(start + batch_size, c))
                    ablated = np.repeat(a[i][None], len(channels), axis=0)
                    ablated[np.arange(len(channels)), :, :, channels] = 0
                    scores = tail(ablated, inputs[i][None])[:, ids[i]]
                    drops[i, :, channels] = base[i] - scores
                    advance(len(channels))
        scale = np.where(np.abs(base) > EPS, base, 1.0)[:, :, None]
        return _channel_weighted(drops / scale, a)

    positive("batch_size", batch_size)
    return _cam(network, x, targets, layer, contributions, gradients=False, eigen_smooth=eigen_smooth,
                aug_smooth=aug_smooth, device_ops=False)


@_register_cam("cam", "CAM: activations weighted by the final linear layer's class weights (GAP + linear models)",
               "Zhou et al. 2016, Learning Deep Features for Discriminative Localization")
def cam(network: Network, x: np.ndarray, targets: TargetFn, layer: str | None = None) -> MethodOutput:
    """M_c(x, y) = sum_k w_k^c f_k(x, y), signed, as in the paper.

    The class weights w^c are read through the gradients: after global average pooling and a linear
    layer, dy^c / df_k(x, y) = w_k^c / (h w) at every position. Anything else after the layer makes
    the gradient vary over space, and CAM refuses rather than silently computing Grad-CAM.
    """
    layer = network.spatial_layer(layer, x.shape[1:])
    trace = network.trace(x, targets, capture=[layer], wrt=[layer], keep_on_device=True)
    ops, grads = trace.ops, trace.gradients[layer]
    mean = ops.mean(grads, axis=(2, 3), keepdims=True)
    scale = float(ops.amax(ops.abs(grads)))
    if scale > 0 and not float(ops.amax(ops.abs(grads - mean))) <= 1e-4 * scale:
        raise MethodError(
            f"CAM needs a model that ends in global average pooling + one linear layer after '{layer}'; "
            "this one does not: use method='gradcam'"
        )
    h, w = grads.shape[2:4]
    weighted = ops.sum(_channel_weighted(mean[:, :, 0, 0] * (h * w), trace.activations[layer]), axis=-1)
    return MethodOutput(ops.to_numpy(ops.astype(weighted, np.float32)), trace.logits, trace.ids, layer)
