"""Keras models from files and names: keras.applications classes with local weights (never downloaded),
whole models saved as .keras (safe mode) or .h5, and the preprocessing each application expects."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from ...errors import ModelError, close_matches
from ...preprocess import Box, ResizeCrop, whole_image
from ..adapters.keras_common import error_line


def declared_size(model: keras.Model) -> int | None:
    """The square input size a model declares (e.g. 299 for Xception), or None when it takes any size."""
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, tuple) and len(shape) == 4 and shape[1] is not None and shape[1] == shape[2]:
        return int(shape[1])
    return None


class AppPreprocess:
    """keras.applications preprocessing: short side to size / 0.875, centre crop, then the app's own
    `preprocess_input` on 0..255 floats. A photo already at the input size is taken as it is (a tutorial
    that loads it with `target_size=` has sized it on purpose)."""

    def __init__(self, size: int, fn: Callable[[np.ndarray], np.ndarray], fit: str = "crop") -> None:
        self.crop = size
        self.fit = fit
        self._geometry = ResizeCrop(resize=round(size / 0.875), crop=size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                                    fit=fit)
        self._fn = fn

    def with_fit(self, fit: str) -> AppPreprocess:
        """The same preprocessing with another way of fitting the photo (see ResizeCrop)."""
        return AppPreprocess(self.crop, self._fn, fit)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        sized = images.astype(np.float32) if self._fits(*images.shape[1:3]) else self._geometry(images)
        return np.asarray(self._fn(sized), np.float32)

    def input_box(self, height: int, width: int) -> Box:
        return whole_image(height, width) if self._fits(height, width) else self._geometry.input_box(height, width)

    def _fits(self, height: int, width: int) -> bool:
        return height == width == self.crop


def load_application(name: str, weights: str | os.PathLike | None) -> tuple[keras.Model, AppPreprocess]:
    """A keras.applications model by class name with weights from a file, the Keras cache, or 'random'.

    Never downloads: without a weights file heatlens says where to put one."""
    constructor = getattr(keras.applications, name, None)
    if constructor is None or not callable(constructor):
        known = [n for n in dir(keras.applications) if n[:1].isupper()]
        raise ModelError(f"unknown Keras application '{name}'.{close_matches(name, known)}")
    path = _application_weights(name, weights)
    try:
        model = constructor(weights=None if path is None else str(path), classifier_activation=None)
    except (ValueError, OSError) as exc:
        raise ModelError(f"could not load weights '{path}' into keras:{name}: {error_line(exc)}") from None
    module = __import__(constructor.__module__, fromlist=["preprocess_input"])
    return model, AppPreprocess(int(model.input_shape[1]), module.preprocess_input)


def _application_weights(name: str, weights: str | os.PathLike | None) -> Path | None:
    if weights == "random":
        return None
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ModelError(f"no weights file at '{path}' for keras:{name}")
        return path
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
    wanted = name.lower().replace("_", "")
    found = sorted(
        p for p in cache.glob("*.h5") if p.name.replace("_", "").lower().startswith(wanted) and "notop" not in p.name
    ) if cache.is_dir() else []
    if found:
        return found[0]
    raise ModelError(
        f"no weights for keras:{name}; heatlens never downloads. Pass weights=PATH (CLI: --weights PATH) with the "
        f"keras.applications .h5 file, put that file into {cache}, or use weights='random' for an untrained network"
    )


def load_keras_file(path: Path) -> keras.Model:
    """A whole model saved as .keras (loaded with safe_mode=True) or legacy .h5."""
    try:
        return keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:
        raise ModelError(f"'{path}' is not a loadable Keras model: {error_line(exc)}") from None
