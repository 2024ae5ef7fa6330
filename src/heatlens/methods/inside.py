"""Looking inside the network: activation grids, filter visualization (activation maximization) and
deconvnet projections of strong activations back to pixels, for any Network with layers."""

from __future__ import annotations

import base64
import html
import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import HeatlensError, LayerError, MethodError, ModelError
from ..images import ImageLike, as_batch, as_float_batch, output_folder
from ..models import to_network
from ..models.base import Network
from ..overlay import attribution_rgb, grid
from ..progress import progress_bar
from .colours import photo_pixels, pixel_changes
from .options import check_option_types
from .shared import blur, positive


@dataclass
class Pictures:
    """Named uint8 pictures plus the numbers behind them; `save(dir)` writes one PNG each and a manifest."""

    kind: str
    model: str
    pictures: dict[str, np.ndarray]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        names = list(self.pictures)[:4]
        return f"Pictures(kind={self.kind!r}, model={self.model!r}, {len(self.pictures)} pictures: {names})"

    def _repr_png_(self) -> bytes:
        """In a notebook: the summary picture (or the first), its long side at most 512 pixels."""
        return _png(self.pictures.get("summary", next(iter(self.pictures.values()))), 512)

    def _repr_html_(self) -> str:
        """In a notebook: what these pictures are, and up to 12 of them as titled thumbnails."""
        tiles = "".join(
            f'<figure style="display:inline-block;margin:4px"><img src="data:image/png;base64,'
            f'{base64.b64encode(_png(picture, 192)).decode()}"><figcaption>{html.escape(name)}</figcaption></figure>'
            for name, picture in list(self.pictures.items())[:12])
        layer = self.details.get("layer", self.details.get("layers", ""))
        title = f"<b>{html.escape(self.kind)}</b> of {html.escape(self.model)} {html.escape(str(layer))}"
        return f"<div>{title}<br>{tiles}</div>"

    def save(self, directory: str | Path) -> Path:
        out = output_folder(directory)
        files = {}
        for name, picture in self.pictures.items():
            stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
            Image.fromarray(picture).save(out / f"{self.kind}_{stem}.png")
            files[name] = f"{self.kind}_{stem}.png"
        manifest = {"schema_version": 1, "kind": self.kind, "model": self.model, "files": files,
                    "details": {k: _plain(v) for k, v in self.details.items()}}
        path = out / "manifest.json"
        path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        return path


def activations(model: Any, image: ImageLike, layers: list[str] | None = None, strongest_first: bool = False,
                max_channels: int = 64) -> Pictures:
    """Each layer's channels for one image, tiled in a grid, each channel scaled to [0, 1] on its own.

    layers: names (default: every spatial layer); strongest_first: order channels by mean activation.
    Feature extractors (no class output) work as classifiers do."""
    check_option_types("activations", activations, {"strongest_first": strongest_first, "max_channels": max_channels})
    positive("max_channels", max_channels)
    network = to_network(model)
    x = _inputs(network, image)[:1]
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
    return Pictures("activations", network.name, pictures, arrays, {"layers": names, "order":
                                                                     "strongest first" if strongest_first else
                                                                     "channel index"})


def filters(model: Any, layer: str, channels: list[int] | range = range(16), steps: int = 24, lr: float = 0.05,
            jitter: int = 8, blur_every: int = 4, blur_sigma: float = 0.5, size: int | None = None, seed: int = 0,
            progress: bool = True) -> Pictures:
    """What each channel responds to: inputs grown by gradient ascent on the channel's mean activation
    (normalised steps), starting from mid grey with uniform noise over 1/8 of the value range (the Keras
    tutorial's start), with random jitter and a periodic blur as regularisers; all channels of one call
    are optimised together in one batch. Where the layer ends in a ReLU the ascent runs on the layer
    before it, so channels the ReLU closes at the start still grow; one that never activates is named in
    a warning and in details['dead_channels']. The channel is the objective, so feature extractors (no
    class output) work too; the pictures are the grown inputs in the photo's RGB pixels."""
    check_option_types("filters", filters, {"channels": channels, "steps": steps, "lr": lr, "jitter": jitter,
                                            "blur_every": blur_every, "blur_sigma": blur_sigma, "size": size,
                                            "seed": seed})
    network = to_network(model)
    channels = list(channels)
    if steps < 1 or not channels or jitter < 0 or blur_every < 0 or blur_sigma < 0:
        raise MethodError("filters needs steps >= 1, at least one channel, and jitter, blur_every and blur_sigma >= 0")
    shape = _input_shape(network, size)
    layer = network.resolve_layer(layer, shape)
    info = network.layer(layer, shape)
    if info.output_shape is None or max(channels) >= info.output_shape[-1] or min(channels) < 0:
        raise LayerError(f"layer '{layer}' has channels 0..{(info.output_shape or (0,))[-1] - 1}; asked {channels}")
    low, high = _value_range(network, shape)
    rng = np.random.default_rng(seed)
    x = ((low + high) / 2 + (rng.random((len(channels), *shape)) - 0.5) * 0.125 * (high - low)).astype(np.float32)
    network = _for_channels(network, x)
    ids = np.array(channels)[:, None]
    objective = _pre_activation(network, layer, shape) or layer
    score = f"layer_mean:{objective}"
    start = _channel_means(network, x, layer, channels)
    with progress_bar(steps, f"Filters of {layer}", progress) as advance:
        for step in range(steps):
            dy, dx = rng.integers(-jitter, jitter + 1, 2) if jitter else (0, 0)
            shifted = np.roll(x, (dy, dx), axis=(1, 2))
            grads = network.trace(shifted, ids, wrt=["input"], score=score).gradients["input"][:, 0]
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
                      stacklevel=2)
    shown = photo_pixels(network, x)
    pictures = {f"{layer}_channel_{c}": img for c, img in zip(channels, shown, strict=True)}
    pictures["summary"] = grid(shown, columns=int(np.ceil(np.sqrt(len(shown)))))
    return Pictures("filters", network.name, pictures, {"inputs": x},
                    {"layer": layer, "objective": objective, "channels": channels, "start_activation": start,
                     "end_activation": end, "dead_channels": dead, "steps": steps, "seed": seed})


def deconv(model: Any, image: ImageLike, layer: str, channels: list[int] | None = None, top_k: int = 9) -> Pictures:
    """Deconvnet projections (Zeiler & Fergus 2014): for each chosen channel, the strongest unit of the
    layer projected back to the input through ReLUs that rectify the backward signal. Channels: given, or
    the `top_k` with the largest single activation (channels that are zero everywhere have no strongest
    unit and are skipped). Pictures show the projections as changes of RGB pixels (the preprocessing's
    colour map undone); arrays['projections'] keeps them in model-input space. Feature extractors work."""
    check_option_types("deconv", deconv, {"channels": channels, "top_k": top_k})
    positive("top_k", top_k)
    network = to_network(model)
    x = _inputs(network, image)[:1]
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
    trace = network.trace(x, np.array([chosen]), wrt=["input"], relu="deconv", score=f"layer_max:{layer}")
    projections = trace.gradients["input"][0]
    shown = attribution_rgb(pixel_changes(network, projections), "seed")
    pictures = {f"{layer}_channel_{c}": img for c, img in zip(chosen, shown, strict=True)}
    pictures["summary"] = grid(shown, columns=int(np.ceil(np.sqrt(len(shown)))))
    return Pictures("deconv", network.name, pictures, {"projections": projections},
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


def _inputs(network: Network, image: ImageLike) -> np.ndarray:
    if network.preprocess is None:
        return network.prepare(as_float_batch(image))
    return network.prepare(as_batch(image))


def _input_shape(network: Network, size: int | None) -> tuple[int, ...]:
    crop = size or getattr(network.preprocess, "crop", None) or getattr(network, "input_size", None)
    if crop is None:
        raise MethodError("filters needs an input size: pass size=... (the model's input side in pixels)")
    side = crop if isinstance(crop, int) else crop[0]
    return (side, side, 3)


def _value_range(network: Network, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel input values of a black and a white photo (or 0..1 for model-ready inputs)."""
    if network.preprocess is None:
        return np.float32(0), np.float32(1)
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


def _png(picture: np.ndarray, longest: int) -> bytes:
    """A uint8 picture as PNG bytes, shrunk so its long side is at most `longest` pixels."""
    image = Image.fromarray(picture)
    image.thumbnail((longest, longest))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _pad(tiles: np.ndarray) -> np.ndarray:
    """A one-pixel white border around each tile, so channels stay apart in the grid."""
    return np.pad(tiles, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=255)


def _summary(pictures: list[np.ndarray], side: int = 256) -> np.ndarray:
    """All layers' grids scaled to one size, side by side in rows of four."""
    tiles = np.stack([np.asarray(Image.fromarray(p).resize((side, side), Image.Resampling.NEAREST))
                      for p in pictures])
    return grid(tiles, columns=min(4, len(tiles)))


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
