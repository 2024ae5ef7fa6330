"""Model adapters. Only this package knows which framework runs a model; frameworks load lazily."""

from __future__ import annotations

import copy
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..classes import class_names, imagenet_classes
from ..errors import ModelError
from ..preprocess import FITS, AsGiven, ResizeCrop
from .base import LayerInfo, Network, Split, Trace
from .zoo import DEFAULT_MODEL, ZOO, load_zoo_model

PRESETS = {
    "imagenet": ResizeCrop(resize=256, crop=224, mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375)),
    "efficientnet_lite": ResizeCrop(resize=256, crop=224),
}

__all__ = ["DEFAULT_MODEL", "ZOO", "LayerInfo", "Network", "Split", "Trace", "load_model", "to_network", "wrap"]


def wrap(
    model: Any,
    preprocess: str | Callable[[np.ndarray], np.ndarray] | None = "auto",
    classes: str | os.PathLike | Sequence[str] | None = None,
    name: str | None = None,
    fit: str | None = None,
    **options: Any,
) -> Network:
    """Wrap a framework model, or a plain predict(images) -> scores function, as a Network.

    preprocess: 'auto' (a Keras model: its keras.applications architecture's own preprocess_input, input
    size and classes where it is one, else 'imagenet' with a warning; a torch module: 'imagenet'; a predict
    function: nothing, it receives the images as given), a preset ('imagenet': resize 256, crop 224,
    torchvision mean/std; 'efficientnet_lite'), a callable from (N, H, W, 3) uint8 photos to (N, h, w, C)
    float inputs, or None to pass model-ready float arrays through unchanged. classes: 'imagenet', a text
    file with one name per line, or a list. Keras models ending in a softmax are explained by their logits
    unless keep_softmax=True. fit: how a photo becomes the model's square input with heatlens' resize
    presets: 'crop' (centre crop, as ImageNet training), 'resize' (the whole photo squeezed, as the Keras
    tutorials) or 'pad' (the whole photo, bordered); None leaves it as it is ('crop' for a new network).
    """
    if isinstance(model, Network):
        return fitted(model, fit)
    return fitted(_wrapped(model, preprocess, classes, name, options), fit)


def _wrapped(model: Any, preprocess: Any, classes: Any, name: str | None, options: dict[str, Any]) -> Network:
    names = class_names(classes)
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(model, keras.Model):
        from .adapters.keras_common import keras_adapter
        from .loading.keras_apps import keras_preprocessing

        adapter = keras_adapter()
        prep, names, notes = keras_preprocessing(model, preprocess, names, _preprocess)
        network = adapter(model, preprocess=prep, classes=names, name=name, **options)
        network.add_notes(notes)
        return network
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        from .adapters.torch import TorchNetwork
        from .tasks import task_of, task_preprocessing

        task = task_of(model)
        if task is not None:  # torchvision detection / segmentation: explained through heatlens.scores
            from .adapters.torch_tasks import TorchTaskNetwork

            prep = task_preprocessing(task) if preprocess == "auto" else _preprocess(preprocess)
            return TorchTaskNetwork(model, task, preprocess=prep, classes=names, name=name, **options)
        return TorchNetwork(model, preprocess=_preprocess(preprocess), classes=names, name=name, **options)
    if callable(model) and not isinstance(model, type):
        from .adapters.blackbox import BlackBoxNetwork

        prep = AsGiven() if preprocess == "auto" else _preprocess(preprocess)
        return BlackBoxNetwork(model, preprocess=prep, classes=names, name=name, **options)
    raise ModelError(
        f"cannot wrap a {type(model).__module__}.{type(model).__name__}: expected a torch.nn.Module, "
        "a Keras 3 model, a predict(images) -> scores function, a heatlens Network or a model name"
    )


def load_model(
    name: str = DEFAULT_MODEL,
    device: str = "cpu",
    framework: str | None = None,
    weights: str | None = None,
    trust: bool | str = False,
    fit: str | None = None,
    **options: Any,
) -> Network:
    """A model by name: a zoo model (framework 'torch' or 'keras'), 'keras:Xception' (any
    keras.applications class; weights from `weights=PATH`, the local Keras cache, or 'random'),
    'torchvision:resnet50' or 'timm:convnext_tiny' (weights from `weights=PATH`, a .safetensors or .pth state
    dict, or 'random'; the library's own preprocessing and classes), 'hf:FOLDER' (a Hugging Face
    image-classification folder), an .onnx file (black-box, through onnxruntime), a Keras file (.keras, .h5),
    'package.module:factory' (optionally with `weights=PATH`), a torch.export .pt2 file or a TorchScript file.
    Nothing downloads.
    Torch models are placed on `device` ('cpu', 'cuda', 'cuda:1', ...), where their work then runs.
    .pt2 and TorchScript files are programs: they load only with trust=True, and a .pt2 holding code
    beside its graph (pickles, compiled libraries, eval'd expressions) only with trust='pickle'.
    Options that do not apply to the model (weights= or preprocess= for a zoo model, trust= for anything
    but those files) are refused. fit: 'crop', 'resize' or 'pad' (see wrap)."""
    return fitted(_loaded(name, device, framework, weights, trust, options), fit)


def fitted(network: Network, fit: str | None) -> Network:
    """The network with its photo-fitting changed to `fit` (None leaves it as it is)."""
    if fit is None:
        return network
    if fit not in FITS:
        raise ModelError(f"fit must be one of {', '.join(FITS)}. Received: {fit!r}")
    if getattr(network.preprocess, "fit", "crop") == fit:
        return network
    refit = getattr(network.preprocess, "with_fit", None)
    if refit is None:
        raise ModelError(f"fit='{fit}' applies to heatlens' own resizing; {network.name} prepares its inputs with "
                         f"{network.preprocess!r}: resize inside that preprocessing instead")
    network = copy.copy(network)  # the caller's Network keeps its own fitting
    network.preprocess = refit(fit)
    return network


def _loaded(name: str, device: str, framework: str | None, weights: str | None, trust: bool | str,
            options: dict[str, Any]) -> Network:
    if not (isinstance(trust, bool) or trust == "pickle"):
        raise ModelError(f"trust must be False, True or 'pickle'. Received: {trust!r}")
    if name in ZOO:
        if weights is not None or trust or options:
            given = "weights" if weights is not None else "trust" if trust else next(iter(options))
            raise ModelError(f"{name} is a zoo model with its own weights, preprocessing and classes, so {given}= "
                             "does not apply; drop it, or wrap your own model with heatlens.wrap")
        return load_zoo_model(name, device, framework)
    keras_model = names_keras_model(name)
    if framework not in (None, "keras" if keras_model else "torch"):
        raise ModelError(f"framework={framework!r} picks the build of a zoo model; '{name}' decides its own framework")
    if keras_model:
        if trust:
            raise ModelError(f"trust= is for .pt2 and TorchScript files; '{name}' loads through Keras "
                             "(files in its safe mode), so drop it")
        return _load_keras(name, weights, options)
    from .loading.library_models import load_library_model, names_library_model

    if names_library_model(name):
        return load_library_model(name, device, weights, trust, options)
    if ":" in name or Path(name).suffix or Path(name).exists():
        try:
            from .loading.torch_files import load_torch
        except ImportError:
            raise ModelError("loading torch models needs torch: pip install 'heatlens[torch]'") from None
        return wrap(load_torch(name, device, trust, weights), name=options.pop("name", name), **options)
    if weights is not None:
        raise ModelError(f"weights= is for keras:, torchvision:, timm: and factory models; '{name}' loads its own "
                         "weights")
    return load_zoo_model(name, device)


def names_keras_model(name: str) -> bool:
    """True for model names that load through Keras: 'keras:NAME' and .keras / .h5 files."""
    return name.startswith("keras:") or Path(name).suffix in {".keras", ".h5"}


def _load_keras(name: str, weights: str | None, options: dict[str, Any]) -> Network:
    try:
        from .adapters.keras_common import keras_adapter
        from .loading.keras_files import load_application, load_keras_file
    except ImportError:
        raise ModelError("Keras models need keras and tensorflow: pip install 'heatlens[keras]'") from None
    adapter = keras_adapter()
    if name.startswith("keras:"):
        model, own = load_application(name.removeprefix("keras:"), weights)
        spec = options.pop("preprocess", "auto")
        options.setdefault("classes", imagenet_classes())
        return adapter(model, preprocess=own if spec == "auto" else _preprocess(spec), name=name, **options)
    path = Path(name)
    if not path.is_file():
        raise ModelError(f"no model file at '{name}'")
    return wrap(load_keras_file(path), name=path.name, **options)


def to_network(model: Any) -> Network:
    """Whatever explain() was given (Network, framework model or name) as a Network."""
    if isinstance(model, str):
        return load_model(model)
    return wrap(model)


def _preprocess(
    spec: str | Callable[[np.ndarray], np.ndarray] | None, size: int | None = None
) -> Callable[[np.ndarray], np.ndarray] | None:
    """None, a callable, or a preset name ('auto' = the model's own where it has one, else 'imagenet');
    presets crop to `size` (a model's declared input size) when given, keeping the 0.875 crop ratio."""
    if spec is None or callable(spec):
        return spec
    spec = "imagenet" if spec == "auto" else spec
    if spec in PRESETS:
        preset = PRESETS[spec]
        return preset if size is None else dataclasses.replace(preset, resize=round(size / 0.875), crop=size)
    raise ModelError(f"unknown preprocess preset '{spec}': use one of {sorted(PRESETS)}, a callable or None")
