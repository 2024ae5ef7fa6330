"""What a Keras model handed over directly needs: which keras.applications architecture it is (or holds),
hence its own preprocess_input, input size and class names."""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import keras

from ...classes import imagenet_classes
from .keras_files import AppPreprocess, declared_size

DEFAULT_SIZE = 224
LARGER_DEFAULTS = {"Xception": 299, "InceptionV3": 299, "InceptionResNetV2": 299, "NASNetLarge": 331}
NAMED_BY_SIZE = {"MobileNet": r"mobilenet_[\d.]+_\d+", "MobileNetV2": r"mobilenetv2_[\d.]+_\d+"}


@dataclass(frozen=True)
class Application:
    """A recognised keras.applications architecture: its class name, the (sub-)model that is it, and its
    own preprocessing function (0..255 RGB floats -> model input)."""

    name: str
    model: keras.Model
    preprocess_input: Callable

    @property
    def size(self) -> int:
        """The square input size the architecture declares, or its usual one where it takes any size."""
        shape = getattr(self.model, "input_shape", None)
        if isinstance(shape, tuple) and len(shape) == 4 and shape[1] is not None and shape[1] == shape[2]:
            return int(shape[1])
        return LARGER_DEFAULTS.get(self.name, DEFAULT_SIZE)


def keras_preprocessing(model: keras.Model, spec: Any, classes: list[str] | None,
                        preset: Callable[[Any, int | None], Any]) -> tuple[Any, list[str] | None, list[str]]:
    """(preprocessing, class names, notes) for a Keras model handed over directly: with spec 'auto' a
    recognised architecture's own, else ImageNet's with a warning saying so; any other spec through
    `preset` (a preset name, a callable or None) at the model's declared input size."""
    if spec != "auto":
        return preset(spec, declared_size(model)), classes, []
    app = find_application(model)
    if app is None:
        size = declared_size(model)
        warnings.warn(
            f"{model.name} is not a keras.applications architecture heatlens recognises: assuming ImageNet "
            f"preprocessing (short side to {round((size or 224) / 0.875)}, centre crop {size or 224}, torchvision "
            "mean/std); pass preprocess= to heatlens.wrap() to say what the model expects", stacklevel=3)
        return preset("imagenet", size), classes, [f"{model.name}: ImageNet preprocessing assumed"]
    outputs = getattr(model, "output_shape", None)
    imagenet = classes is None and app.model is model and isinstance(outputs, tuple) and outputs[-1] == 1000
    note = (f"recognised keras.applications.{app.name}: its own preprocess_input at {app.size}x{app.size}"
            + (", ImageNet class names" if imagenet else ""))
    return AppPreprocess(app.size, app.preprocess_input), list(imagenet_classes()) if imagenet else classes, [note]


def find_application(model: keras.Model) -> Application | None:
    """The keras.applications architecture `model` is, or holds as a sub-model (transfer learning), known
    by the name Keras gives it; None when there is none."""
    for candidate in _models_within(model):
        name = _application_named(candidate.name)
        if name is not None:
            constructor = getattr(keras.applications, name)
            module = __import__(constructor.__module__, fromlist=["preprocess_input"])
            return Application(name, candidate, module.preprocess_input)
    return None


def _models_within(model: keras.Model) -> Iterator[keras.Model]:
    """The model, then every model nested in it, outermost first."""
    yield model
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.Model):
            yield from _models_within(layer)


def _application_named(model_name: str) -> str | None:
    for app, pattern in _default_names().items():
        if re.fullmatch(pattern, model_name):
            return app
    return None


@cache
def _default_names() -> dict[str, str]:
    """keras.applications class name -> a pattern of the model name its constructor gives by default."""
    names = {}
    for app in dir(keras.applications):
        constructor = getattr(keras.applications, app)
        if not (app[:1].isupper() and callable(constructor)):
            continue
        default = inspect.signature(constructor).parameters.get("name")
        if app in NAMED_BY_SIZE:
            names[app] = NAMED_BY_SIZE[app]
        elif default is not None and isinstance(default.default, str):
            names[app] = re.escape(default.default)
    return names
