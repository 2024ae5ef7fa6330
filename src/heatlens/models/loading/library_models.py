"""The models people bring, by name: 'torchvision:NAME', 'timm:NAME', 'hf:FOLDER' and .onnx files, each as a Network
with its library's own preprocessing and classes (preprocess= and classes= override them)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from ...classes import class_names, imagenet_classes
from ...errors import ModelError
from ...preprocess import ResizeCrop
from ..base import Network
from .loaded import Loaded
from .photo_pipeline import PhotoPipeline

PREFIXES = {"torchvision:": "torchvision", "timm:": "timm", "hf:": "transformers"}
ONNX_SUFFIX = ".onnx"
IMAGENET_CROP = 0.875


def names_library_model(name: str) -> bool:
    """True for the names this module loads: a library prefix, or an .onnx file."""
    return name.startswith(tuple(PREFIXES)) or Path(name).suffix == ONNX_SUFFIX


def load_library_model(name: str, device: str, weights: str | None, trust: bool | str,
                       options: dict[str, Any]) -> Network:
    """The Network `name` names, loaded from local files only; options go on to wrap (torch) or to the
    black-box network (ONNX)."""
    if trust:
        raise ModelError(f"trust= is for .pt2 and TorchScript files; '{name}' loads without running code from a "
                         "file, so drop it")
    if Path(name).suffix == ONNX_SUFFIX and not name.startswith(tuple(PREFIXES)):
        if weights is not None:
            raise ModelError(f"weights= is for keras:, torchvision:, timm: and factory models; '{name}' holds "
                             "its own weights, so drop it")
        return _onnx_network(name, device, options)
    prefix = next(p for p in PREFIXES if name.startswith(p))
    spec = name.removeprefix(prefix)
    loaded = _loaded(prefix, spec, weights, options)
    return _torch_network(name, loaded, device, options)


def _loaded(prefix: str, spec: str, weights: str | None, options: dict[str, Any]) -> Loaded:
    """The library's model and what comes with it; the library imported only now (a clear error without it)."""
    try:
        if prefix == "torchvision:":
            from .torchvision_models import load_torchvision

            return load_torchvision(spec, weights)
        if prefix == "timm:":
            from .timm_models import load_timm

            return load_timm(spec, weights)
        from .hf_models import load_hf
    except ImportError as exc:
        raise ModelError(f"{prefix}NAME models need {PREFIXES[prefix]} ({exc.name or exc} is missing): "
                         f"pip install {PREFIXES[prefix]}") from None
    if weights is not None:
        raise ModelError(f"weights= does not apply to hf:{spec}: a Hugging Face folder holds its own weights, "
                         "so drop it")
    return load_hf(spec, own_preprocessing=options.get("preprocess", "auto") == "auto")


def _torch_network(name: str, loaded: Loaded, device: str, options: dict[str, Any]) -> Network:
    from .. import _preprocess, wrap
    from .torch_files import place

    spec = options.pop("preprocess", "auto")
    own = loaded.preprocess if loaded.preprocess is not None else "auto"  # 'auto': wrap's 'imagenet'
    preprocess = own if spec == "auto" else _preprocess(spec)
    options.setdefault("classes", loaded.classes)
    network = wrap(place(loaded.model, device), preprocess=preprocess, name=options.pop("name", name), **options)
    return noted(network, loaded.notes)


def noted(network: Network, notes: list[str]) -> Network:
    """The network with the loader's notes before its own, so every explanation of it says them."""
    network.add_notes(notes)
    return network


def _onnx_network(name: str, device: str, options: dict[str, Any]) -> Network:
    from .. import _preprocess
    from ..adapters.blackbox import BlackBoxNetwork
    from .onnx_models import load_onnx

    model = load_onnx(name, device, options.pop("layout", None))
    spec = options.pop("preprocess", "auto")
    preprocess: Any
    if spec == "auto":
        preprocess = _onnx_preprocessing(model.size, model.dtype == np.uint8)
    else:
        side = model.size[0] if model.size and model.size[0] == model.size[1] else None
        preprocess = _preprocess(spec, side)
    classes = class_names(options.pop("classes", None))
    if classes is None and model.classes == 1000:
        classes = list(imagenet_classes())
    batch_size = model.batch or options.pop("batch_size", 32)  # a graph with a fixed batch takes only that
    label = options.pop("name", name)
    options.pop("batch_size", None)
    if options:
        raise ModelError(f"{', '.join(sorted(options))}= does not apply to the ONNX model '{name}' (it takes "
                         "preprocess=, classes=, name=, batch_size= and layout=), so drop it")
    return BlackBoxNetwork(model, preprocess=preprocess, classes=classes, name=label, batch_size=batch_size,
                           layout=model.layout)


def _onnx_preprocessing(size: tuple[int, int] | None, pixels: bool) -> ResizeCrop | PhotoPipeline:
    """'imagenet' at the graph's input size (224 where the graph leaves it open); a graph taking uint8 gets
    the resized pixels as they are, without the mean and std."""
    from .. import PRESETS

    preset = PRESETS["imagenet"]
    if pixels:
        preset = dataclasses.replace(preset, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    height, width = size or (preset.crop, preset.crop)
    if height == width:
        return dataclasses.replace(preset, resize=round(height / IMAGENET_CROP), crop=height)
    return PhotoPipeline(resize=round(min(height, width) / IMAGENET_CROP), crop_size=(height, width),
                         interpolation="bicubic", mean=preset.mean, std=preset.std, scale=1.0,
                         source=f"'imagenet' at the graph's input size {height}x{width}")
