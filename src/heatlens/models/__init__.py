"""Model adapters. Only this package knows which framework runs a model; frameworks load lazily."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..classes import imagenet_classes
from ..errors import ModelError
from ..preprocess import ResizeCrop
from .base import LayerInfo, Network, Split, Trace
from .zoo import DEFAULT_MODEL, ZOO, load_zoo_model

PRESETS = {
    "imagenet": ResizeCrop(resize=256, crop=224, mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375)),
    "efficientnet_lite": ResizeCrop(resize=256, crop=224),
}

__all__ = ["DEFAULT_MODEL", "ZOO", "LayerInfo", "Network", "Split", "Trace", "load_model", "to_network", "wrap"]


def wrap(
    model: Any,
    preprocess: str | Callable[[np.ndarray], np.ndarray] | None = "imagenet",
    classes: str | Sequence[str] | None = None,
    name: str | None = None,
    **options: Any,
) -> Network:
    """Wrap a framework model as a Network.

    preprocess: a preset ('imagenet': resize 256, crop 224, torchvision mean/std; 'efficientnet_lite'),
    a callable from (N, H, W, 3) uint8 photos to (N, h, w, C) float inputs, or None to pass model-ready
    float arrays through unchanged. classes: 'imagenet' or a list of names.
    """
    if isinstance(model, Network):
        return model
    prep = _preprocess(preprocess)
    names = imagenet_classes() if classes == "imagenet" else classes
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        from .torch import TorchNetwork

        return TorchNetwork(model, preprocess=prep, classes=names, name=name, **options)
    raise ModelError(
        f"cannot wrap a {type(model).__module__}.{type(model).__name__}: expected a torch.nn.Module, "
        "a heatlens Network or a model name (see `heatlens models`)"
    )


def load_model(name: str = DEFAULT_MODEL, device: str = "cpu", **options: Any) -> Network:
    """A zoo model by name, or a user model: 'package.module:factory', a torch.export .pt2 file or a
    TorchScript file; placed on `device` ('cpu', 'cuda', 'cuda:1', ...), where its work then runs."""
    if name in ZOO:
        return load_zoo_model(name, device)
    if ":" in name or Path(name).suffix or Path(name).exists():
        try:
            from .torch import load_torch
        except ImportError:
            raise ModelError("loading torch models needs torch: pip install 'heatlens[torch]'") from None
        return wrap(load_torch(name, device), name=options.pop("name", name), **options)
    return load_zoo_model(name, device)


def to_network(model: Any) -> Network:
    """Whatever explain() was given (Network, framework model or name) as a Network."""
    if isinstance(model, str):
        return load_model(model)
    return wrap(model)


def _preprocess(spec: str | Callable[[np.ndarray], np.ndarray] | None) -> Callable[[np.ndarray], np.ndarray] | None:
    if spec is None or callable(spec):
        return spec
    if spec in PRESETS:
        return PRESETS[spec]
    raise ModelError(f"unknown preprocess preset '{spec}': use one of {sorted(PRESETS)}, a callable or None")
