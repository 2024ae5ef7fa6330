"""The looks inside the network for a model and a photo: activation grids, filters and deconvnet projections
as Pictures, which sit beside Explanation and write the same kind of manifest."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .errors import MethodError
from .explanation import MANIFEST_SCHEMA, _jsonable, write_manifest
from .images import ImageLike, output_folder
from .inputs import model_inputs
from .methods import inside
from .methods.options import check_option_types
from .models import Network, to_network


@dataclass
class Pictures:
    """Named uint8 pictures plus the numbers behind them; `save(dir)` writes one PNG each and a manifest."""

    kind: str
    model: str
    pictures: dict[str, np.ndarray]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, kind: str, network: Network, output: inside.InsideOutput) -> Pictures:
        """The pictures a look inside `network` made, named by its kind."""
        return cls(kind, network.name, output.pictures, output.arrays, output.details)

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
        """One PNG per picture (`<kind>_<name>.png`) and manifest.json (kind, model, details, the files) in
        `directory`; returns the manifest's path."""
        out = output_folder(directory)
        entries = []
        for name, picture in self.pictures.items():
            file = f"{self.kind}_{''.join(c if c.isalnum() or c in '-_' else '_' for c in name)}.png"
            Image.fromarray(picture).save(out / file)
            entries.append({"name": name, "file": file})
        header = {"schema_version": MANIFEST_SCHEMA, "kind": self.kind, "model": self.model,
                  "details": {k: _jsonable(v) for k, v in self.details.items()}}
        return write_manifest(out, header, entries)


def activations(model: Any, image: ImageLike, layers: list[str] | None = None, strongest_first: bool = False,
                max_channels: int = 64) -> Pictures:
    """Each layer's channels for one image, tiled in a grid, each channel scaled to [0, 1] on its own.

    layers: names (default: every spatial layer); strongest_first: order channels by mean activation.
    Feature extractors (no class output) work as classifiers do."""
    check_option_types("activations", activations, {"strongest_first": strongest_first, "max_channels": max_channels})
    network = to_network(model)
    _, x = model_inputs(network, image)
    return Pictures.of("activations", network, inside.layer_activations(network, x, layers, strongest_first,
                                                                        max_channels))


def filters(model: Any, layer: str, channels: list[int] | range = range(16), steps: int = 24, lr: float = 0.05,
            jitter: int = 8, blur_every: int = 4, blur_sigma: float = 0.5, size: int | None = None, seed: int = 0,
            progress: bool = True) -> Pictures:
    """What each channel responds to: inputs grown from seeded noise by gradient ascent on the channel's mean
    activation, with jitter and a periodic blur as regularisers (see heatlens.methods.inside.channel_filters).
    size: the input side in pixels (default: the model's). Feature extractors (no class output) work too."""
    check_option_types("filters", filters, {"channels": channels, "steps": steps, "lr": lr, "jitter": jitter,
                                            "blur_every": blur_every, "blur_sigma": blur_sigma, "size": size,
                                            "seed": seed})
    network = to_network(model)
    channels = list(channels)
    start = inside.noise_inputs(network, _input_shape(network, size), len(channels), seed)
    grown = inside.channel_filters(network, start, layer, channels, steps, lr, jitter, blur_every, blur_sigma, seed,
                                   progress)
    return Pictures.of("filters", network, grown)


def deconv(model: Any, image: ImageLike, layer: str, channels: list[int] | None = None, top_k: int = 9) -> Pictures:
    """Deconvnet projections (Zeiler & Fergus 2014): for each chosen channel (given, or the `top_k` with the
    largest single activation), the strongest unit of the layer projected back to the input through ReLUs
    that rectify the backward signal, shown as changes of RGB pixels. Feature extractors work."""
    check_option_types("deconv", deconv, {"channels": channels, "top_k": top_k})
    network = to_network(model)
    _, x = model_inputs(network, image)
    return Pictures.of("deconv", network, inside.deconv_projections(network, x, layer, channels, top_k))


def _input_shape(network: Network, size: int | None) -> tuple[int, ...]:
    crop = size or getattr(network.preprocess, "crop", None) or getattr(network, "input_size", None)
    if crop is None:
        raise MethodError("filters needs an input size: pass size=... (the model's input side in pixels)")
    side = crop if isinstance(crop, int) else crop[0]
    return (side, side, 3)


def _png(picture: np.ndarray, longest: int) -> bytes:
    """A uint8 picture as PNG bytes, shrunk so its long side is at most `longest` pixels."""
    image = Image.fromarray(picture)
    image.thumbnail((longest, longest))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
