"""What the CAM family shares: token sequences as grids, first-principal-component maps, several layers
fused, and test-time augmentation. Framework-free, over the arrays of `Network.trace` and their `ArrayOps`:
numpy, or the adapter's device tensors (torch on CUDA), so the reductions run where the model ran and only the
maps come back to the host."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import LayerError, MethodError
from ..models.arrays import NUMPY, ArrayOps
from ..models.base import LayerInfo, Network, Targets
from ..models.objectives import LOGITS, Objective
from ..models.tokens import token_grid
from ..overlay import upsample


@dataclass(frozen=True)
class LayerPass:
    """What a contributions function sees for one layer: the network and its inputs x, the target ids (N, K),
    the layer's name, its activations A (N, h, w, C) and their gradients (N, K, h, w, C), None without them,
    and the `ops` those arrays are reduced with (numpy's, or the device's: see Trace)."""

    network: Network
    x: np.ndarray
    ids: np.ndarray
    layer: str
    activations: Any
    gradients: Any | None
    ops: ArrayOps = NUMPY

    @property
    def traced_gradients(self) -> Any:
        """The gradients, for the contributions of a gradient-weighted CAM (whose pass always traces them)."""
        assert self.gradients is not None, f"the pass over '{self.layer}' traced no gradients"
        return self.gradients


# per-channel contributions (N, K, h, w, C) of one layer, in the pass's array kind; the map is their channel sum
# (or first component)
Contributions = Callable[[LayerPass], Any]


def as_grid(a: Any, grid: tuple[int, int] | None, prefix: int | None) -> Any:
    """Token activations (..., T, C) -> (..., h, w, C) without the prefix tokens."""
    lead, h, w = token_grid(a.shape[-2], grid, prefix)
    return a[..., lead:, :].reshape(*a.shape[:-2], h, w, a.shape[-1])


def token_layout(info: LayerInfo, grid: tuple[int, int] | None,
                 prefix: int | None) -> tuple[tuple[int, int] | None, int | None]:
    """(grid, prefix) for a token layer: as given, or where neither is given the patch embedding's grid the
    probe found (else None, None: a square grid after 0..8 prefix tokens)."""
    if grid is None and prefix is None and info.token_layout is not None:
        lead, h, w = info.token_layout
        return (h, w), lead
    return grid, prefix


def first_component(contributions: Any, ops: ArrayOps = NUMPY) -> Any:
    """Per (n, k): the contributions' projection on their first principal component over positions,
    signed so that it agrees with the channel sum. (N, K, h, w, C) -> (N, K, h, w), in float64 throughout."""
    n, k, h, w, c = contributions.shape
    flat = ops.astype(contributions.reshape(n * k, h * w, c), np.float64)
    centred = flat - ops.mean(flat, axis=1, keepdims=True)
    if not ops.all_finite(centred):
        raise MethodError("eigen_smooth found infinite activations or gradients on this input (the model's values "
                          "overflow); check its input scale, or drop eigen_smooth")
    peak = ops.amax(ops.abs(centred), axis=(1, 2), keepdims=True)
    scaled = centred / ops.where(peak > 0, peak, 1)  # huge activations would overflow inside the SVD
    projection = ops.einsum("bpc,bc->bp", centred, ops.first_right_singular(scaled))
    total = ops.sum(flat, axis=2)
    agreement = ops.sum((projection - ops.mean(projection, 1, keepdims=True))
                        * (total - ops.mean(total, 1, keepdims=True)), 1)
    projection = projection * ops.where(agreement < 0, -1.0, 1.0)[:, None]
    return ops.astype(projection.reshape(n, k, h, w), np.float32)


def layer_maps(network: Network, x: np.ndarray, targets: Targets, layers: Sequence[str], contributions: Contributions,
               gradients: bool, eigen_smooth: bool, grid: tuple[int, int] | None, prefix: int | None,
               objective: Objective = LOGITS,
               device_ops: bool = False) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """One traced pass over all `layers`; per layer the ReLU'd map (N, K, h, w) as numpy; plus logits and ids.

    The activations and gradients stay where the adapter keeps them (`keep_on_device`) through `contributions`
    and the channel reduction when the contributions function is written over the pass's ops (`device_ops`);
    only the maps are copied back."""
    trace = network.trace(x, targets, capture=layers, wrt=layers if gradients else (), objective=objective,
                          keep_on_device=device_ops)
    ops = trace.ops
    ids = trace.targets if trace.targets is not None else np.zeros((len(x), 1), np.int64)
    maps = []
    for layer in layers:
        acts, grads = trace.activations[layer], trace.gradients[layer] if gradients else None
        info = network.layer(layer, x.shape[1:])
        if info.spatial:
            if grid is not None or prefix is not None:
                raise LayerError(f"grid= and prefix_tokens= lay out token layers; '{layer}' is already a spatial "
                                 "(h, w, C) map: drop them")
        else:
            layer_grid, layer_prefix = token_layout(info, grid, prefix)
            acts = as_grid(acts, layer_grid, layer_prefix)
            grads = as_grid(grads, layer_grid, layer_prefix) if grads is not None else None
        contrib = contributions(LayerPass(network, x, ids, layer, acts, grads, ops))
        summed = first_component(contrib, ops) if eigen_smooth else ops.sum(contrib, axis=-1)
        maps.append(ops.to_numpy(ops.astype(ops.maximum(summed, 0), np.float32)))
    return maps, trace.logits, ids


def fuse(maps: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Several layers' maps on one grid: each upsampled to `size`, scaled by its own peak, averaged."""
    whole = (0.0, 0.0, float(size[0]), float(size[1]))
    scaled = []
    for m in maps:
        up = upsample(m, size, whole)
        peak = up.max(axis=(-2, -1), keepdims=True)
        scaled.append(np.where(peak > 0, up / np.where(peak > 0, peak, 1), 0))
    return np.mean(scaled, axis=0).astype(np.float32)


AUGMENTATIONS = [(flip, scale) for flip in (False, True) for scale in (1.0, 1.1, 0.9)]


def augmented(x: np.ndarray, flip: bool, scale: float) -> np.ndarray:
    """Test-time augmentation on model inputs: optional horizontal flip, then a multiplication."""
    return (x[:, :, ::-1] if flip else x) * np.float32(scale)
