"""The CAM family: a map from a layer's activations A (N, h, w, C) weighted per channel.

Most variants differ only in how they weight channels; each is a few lines over `trace`.
"""

from __future__ import annotations

import numpy as np

from ..errors import MethodError
from ..models.base import Network
from .registry import MethodOutput, TargetFn, register


def _weighted_sum(weights: np.ndarray, activations: np.ndarray) -> np.ndarray:
    """sum_c weights[n, k, c] * A[n, :, :, c] -> (N, K, h, w)."""
    return np.einsum("nkc,nhwc->nkhw", weights, activations, optimize=True).astype(np.float32)


@register("gradcam", "Grad-CAM: ReLU of activations weighted by spatially averaged gradients",
          "Selvaraju et al. 2017, Grad-CAM: Visual Explanations from Deep Networks via Gradient-based "
          "Localization", needs_gradients=True, uses_layer=True)
def gradcam(network: Network, x: np.ndarray, targets: TargetFn, layer: str | None = None) -> MethodOutput:
    """L^c = ReLU(sum_k a_k^c A^k), a_k^c = 1/Z sum_ij dy^c / dA^k_ij."""
    layer = network.spatial_layer(layer, x.shape[1:])
    trace = network.trace(x, targets, capture=[layer], wrt=[layer])
    weights = trace.gradients[layer].mean(axis=(2, 3))
    maps = np.maximum(_weighted_sum(weights, trace.activations[layer]), 0)
    return MethodOutput(maps, trace.logits, trace.targets, layer)


@register("cam", "CAM: activations weighted by the final linear layer's class weights (GAP + linear models)",
          "Zhou et al. 2016, Learning Deep Features for Discriminative Localization",
          needs_gradients=True, uses_layer=True)
def cam(network: Network, x: np.ndarray, targets: TargetFn, layer: str | None = None) -> MethodOutput:
    """M_c(x, y) = sum_k w_k^c f_k(x, y), signed, as in the paper.

    The class weights w^c are read through the gradients: after global average pooling and a linear
    layer, dy^c / df_k(x, y) = w_k^c / (h w) at every position. Anything else after the layer makes
    the gradient vary over space, and CAM refuses rather than silently computing Grad-CAM.
    """
    layer = network.spatial_layer(layer, x.shape[1:])
    trace = network.trace(x, targets, capture=[layer], wrt=[layer])
    grads = trace.gradients[layer]
    mean = grads.mean(axis=(2, 3), keepdims=True)
    scale = float(np.abs(grads).max())
    if scale > 0 and not np.allclose(grads, mean, rtol=0, atol=1e-4 * scale):
        raise MethodError(
            f"CAM needs a model that ends in global average pooling + one linear layer after '{layer}'; "
            "this one does not: use method='gradcam'"
        )
    h, w = grads.shape[2:4]
    return MethodOutput(_weighted_sum(mean[:, :, 0, 0] * (h * w), trace.activations[layer]), trace.logits,
                        trace.targets, layer)
