"""Looking inside the network: activation grids, filter visualization (activation maximization) and
deconvnet projections of strong activations back to pixels, each a function of a Network with layers and
model inputs, as the explanation methods are (heatlens.pictures wraps them for models and photos)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from ..errors import HeatlensError, LayerError, MethodError, ModelError
from ..models.base import Network
from ..models.objectives import ChannelMax, ChannelMean
from ..overlay import attribution_rgb, grid
from ..progress import progress_bar
from .colours import photo_pixels, pixel_changes
from .shared import blur, positive


@dataclass
class InsideOutput:
    """What a look inside returns: named uint8 pictures (one 'summary' of them all), the arrays behind them,
    and what was done (layers, channels, activations)."""

    pictures: dict[str, np.ndarray]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


def layer_activations(network: Network, x: np.ndarray, layers: list[str] | None = None, strongest_first: bool = False,
                      max_channels: int = 64) -> InsideOutput:
    """Each layer's channels for the first input of x, tiled in a grid, each channel scaled to [0, 1] on its own.

    layers: names (default: every spatial layer); strongest_first: order channels by mean activation."""
    positive("max_channels", max_channels)
    x = x[:1]
    network = _for_channels(network, x)
    layers = network.resolve_layer([layers] if isinstance(layers, str) else layers, x.shape[1:])
    names = layers or [info.name for info in network.layers(x.shape[1:]) if info.spatial]
    for name in names:
        if not network.spatial_layer(name, x.shape[1:]):
            raise LayerError(f"layer '{name}' has no spatial output")
    acts = network.trace(x, capture=names).activations
    pictures, arrays = {}, {}
    for name in names:
        a = acts[name][0]
        order = np.argsort(-a.mean(axis=(0, 1)), kind="stable") if strongest_first else np.arange(a.shape[-1])
        chosen = np.moveaxis(a[..., order[:max_channels]], -1, 0)
        low = chosen.min(axis=(1, 2), keepdims=True)
        span = chosen.max(axis=(1, 2), keepdims=True) - low
        scaled = np.where(span > 0, (chosen - low) / np.where(span > 0, span, 1), 0)
        tiles = np.repeat((scaled * 255).round().astype(np.uint8)[..., None], 3, axis=-1)
        pictures[name] = grid(_pad(tiles), columns=int(np.ceil(np.sqrt(len(tiles)))))
        arrays[name] = a
    pictures["summary"] = _summary([pictures[n] for n in names])
    order_name = "strongest first" if strongest_first else "channel index"
    return InsideOutput(pictures, arrays, {"layers": names, "order": order_name})


def noise_inputs(network: Network, shape: tuple[int, ...], count: int, seed: int) -> np.ndarray:
    """`count` starting inputs of `shape` for filters: mid grey with uniform noise over 1/8 of the value range
    (the Keras tutorial's start), seeded."""
    low, high = _value_range(network, shape)
    noise = np.random.default_rng(seed).random((count, *shape)) - 0.5
    return ((low + high) / 2 + noise * 0.125 * (high - low)).astype(np.float32)


def channel_filters(network: Network, x: np.ndarray, layer: str, channels: list[int], steps: int = 24,
                    lr: float = 0.05, jitter: int = 8, blur_every: int = 4, blur_sigma: float = 0.5, seed: int = 0,
                    progress: bool = True) -> InsideOutput:
    """What each channel responds to: the inputs x (one per channel, e.g. noise_inputs) grown by gradient
    ascent on the channel's mean activation (normalised steps), with random jitter (seeded) and a periodic
    blur as regularisers, all channels in one batch. Where the layer ends in a ReLU the ascent runs on the
    layer before it, so channels the ReLU closes at the start still grow; one that never activates is named
    in a warning and in details['dead_channels']. The pictures are the grown inputs in the photo's RGB."""
    if steps < 1 or not channels or jitter < 0 or blur_every < 0 or blur_sigma < 0:
        raise MethodError("filters needs steps >= 1, at least one channel, and jitter, blur_every and blur_sigma >= 0")
    shape = x.shape[1:]
    layer = network.resolve_layer(layer, shape)
    info = network.layer(layer, shape)
    if info.output_shape is None or max(channels) >= info.output_shape[-1] or min(channels) < 0:
        raise LayerError(f"layer '{layer}' has channels 0..{(info.output_shape or (0,))[-1] - 1}; asked {channels}")
    low, high = _value_range(network, shape)
    rng = np.random.default_rng([seed, 1])
    network = _for_channels(network, x)
    ids = np.array(channels)[:, None]
    ascended = _pre_activation(network, layer, shape) or layer
    objective = ChannelMean(ascended)
    start = _channel_means(network, x, layer, channels)
    with progress_bar(steps, f"Filters of {layer}", progress) as advance:
        for step in range(steps):
            dy, dx = rng.integers(-jitter, jitter + 1, 2) if jitter else (0, 0)
            shifted = np.roll(x, (dy, dx), axis=(1, 2))
            grads = network.trace(shifted, ids, wrt=["input"], objective=objective).gradients["input"][:, 0]
            grads = np.roll(grads, (-dy, -dx), axis=(1, 2))
            x = x + lr * (high - low) * grads / (grads.std(axis=(1, 2, 3), keepdims=True) + 1e-8)
            if blur_every and (step + 1) % blur_every == 0:
                x = blur(x, (0, blur_sigma, blur_sigma, 0))
            x = np.clip(x, low, high).astype(np.float32)
            advance(1)
    end = _channel_means(network, x, layer, channels)
    dead = [c for c, value in zip(channels, end, strict=True) if value <= 0]
    if dead:
        warnings.warn(f"channels {dead} of layer '{layer}' never activated (their mean stayed <= 0 at every step), "
                      "so their pictures show no pattern; pick the layer before its activation, or other channels",
                      stacklevel=3)
    shown = photo_pixels(network, x)
    pictures = {f"{layer}_channel_{c}": img for c, img in zip(channels, shown, strict=True)}
    pictures["summary"] = grid(shown, columns=int(np.ceil(np.sqrt(len(shown)))))
    return InsideOutput(pictures, {"inputs": x},
                        {"layer": layer, "objective": ascended, "channels": channels, "start_activation": start,
                         "end_activation": end, "dead_channels": dead, "steps": steps, "seed": seed})


def deconv_projections(network: Network, x: np.ndarray, layer: str, channels: list[int] | None = None,
                       top_k: int = 9) -> InsideOutput:
    """Deconvnet projections (Zeiler & Fergus 2014) for the first input of x: for each chosen channel, the
    strongest unit of the layer projected back to the input through ReLUs that rectify the backward signal.
    Channels: given, or the `top_k` with the largest single activation (channels that are zero everywhere
    have no strongest unit and are skipped). Pictures show the projections as changes of RGB pixels (the
    preprocessing's colour map undone); arrays['projections'] keeps them in model-input space."""
    positive("top_k", top_k)
    x = x[:1]
    network = _for_channels(network, x)
    layer = network.spatial_layer(layer, x.shape[1:])
    acts = network.trace(x, capture=[layer]).activations[layer][0]
    strongest = acts.reshape(-1, acts.shape[-1]).max(axis=0)
    alive = [c for c in np.argsort(-strongest, kind="stable") if strongest[c] > 0]
    if channels is None and not alive:
        raise LayerError(f"no channel of layer '{layer}' is active on this image (all activations <= 0); "
                         "pick another layer or image, or name channels=")
    chosen = list(channels) if channels is not None else alive[:top_k]
    if not chosen or min(chosen) < 0 or max(chosen) >= acts.shape[-1]:
        raise LayerError(f"layer '{layer}' has channels 0..{acts.shape[-1] - 1}; asked {chosen}")
    trace = network.trace(x, np.array([chosen]), wrt=["input"], relu="deconv",
                          objective=ChannelMax(layer))
    projections = trace.gradients["input"][0]
    shown = attribution_rgb(pixel_changes(network, projections), "seed")
    pictures = {f"{layer}_channel_{c}": img for c, img in zip(chosen, shown, strict=True)}
    pictures["summary"] = grid(shown, columns=int(np.ceil(np.sqrt(len(shown)))))
    return InsideOutput(pictures, {"projections": projections},
                        {"layer": layer, "channels": [int(c) for c in chosen],
                         "activation": [float(strongest[c]) for c in chosen]})


def _for_channels(network: Network, x: np.ndarray) -> Network:
    """The network as the views of a layer's channels need it: as it is when its output is class scores;
    a feature extractor (e.g. VGG16 without its top: a (N, h, w, C) output) scored by a slice of its
    output, which these views never use (their objective is the layer's channel)."""
    try:
        network.predict(x[:1])
    except ModelError as exc:
        features = network.rescored(_output_slice)
        try:
            features.predict(x[:1])
        except HeatlensError:
            raise exc from None
        return features
    return network


def _output_slice(out: Any) -> Any:
    """Scores (N, K) cut from any model output with plain indexing (framework-neutral): the first tensor
    of a dict or sequence, then position 0 along every axis after the second."""
    if isinstance(out, dict):
        out = next(iter(out.values()))
    if isinstance(out, list | tuple):
        out = out[0]
    rank = len(out.shape)
    return out[(slice(None), slice(None), *([0] * (rank - 2)))] if rank > 2 else out


def _value_range(network: Network, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel input values of a black and a white photo (or 0..1 for model-ready inputs)."""
    if network.preprocess is None:
        return np.zeros((), np.float32), np.ones((), np.float32)
    black = network.prepare(np.zeros((1, *shape[:2], 3), np.uint8))[0].mean(axis=(0, 1))
    white = network.prepare(np.full((1, *shape[:2], 3), 255, np.uint8))[0].mean(axis=(0, 1))
    return np.minimum(black, white).astype(np.float32), np.maximum(black, white).astype(np.float32)


def _pre_activation(network: Network, layer: str, shape: tuple[int, ...]) -> str | None:
    """The layer feeding the ReLU that ends `layer` (the ReLU itself, or a block whose last sub-layer is one),
    where a channel is alive however negative it is: ascent on it moves a closed ReLU's channel too. None
    when no single-call ReLU of the same shape ends the layer."""
    infos = network.layers(shape)
    names = [info.name for info in infos]
    index = names.index(layer)
    wanted = infos[index].output_shape
    for j in range(index, 0, -1):
        inside = infos[j].name == layer or infos[j].name.startswith(f"{layer}.")
        if not inside or infos[j].output_shape != wanted:
            return None
        if "relu" in infos[j].kind.lower():
            before = infos[j - 1]
            ok = infos[j].calls == 1 and before.output_shape == wanted and before.name != layer
            return before.name if ok else None
    return None


def _channel_means(network: Network, x: np.ndarray, layer: str, channels: list[int]) -> list[float]:
    acts = network.trace(x, capture=[layer]).activations[layer]
    axes = tuple(range(1, acts.ndim - 1))
    return [float(acts[i].mean(axis=tuple(a - 1 for a in axes))[c]) for i, c in enumerate(channels)]


def _pad(tiles: np.ndarray) -> np.ndarray:
    """A one-pixel white border around each tile, so channels stay apart in the grid."""
    return np.pad(tiles, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=255)


def _summary(pictures: list[np.ndarray], side: int = 256) -> np.ndarray:
    """All layers' grids scaled to one size, side by side in rows of four."""
    tiles = np.stack([np.asarray(Image.fromarray(p).resize((side, side), Image.Resampling.NEAREST))
                      for p in pictures])
    return grid(tiles, columns=min(4, len(tiles)))
