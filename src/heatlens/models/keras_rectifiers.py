"""Guided backprop and deconvnet ReLUs for Keras (TensorFlow backend), while a graph is traced.

ReLU layers and every layer whose `activation` is relu / relu6 (Conv2D(activation="relu"), Activation)
get a rectifier with the same forward value and a different backward rule (Springenberg et al. 2015;
Zeiler & Fergus 2014):
    guided:  dL/dx = max(dL/dy, 0) * [0 < x < upper]
    deconv:  dL/dx = max(dL/dy, 0)
The replacements are instance attributes that are removed again on exit, whatever happens.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import keras
import tensorflow as tf

from ..errors import ModelError


def rectify(x: tf.Tensor, upper: float | None, rule: str) -> tf.Tensor:
    """max(x, 0) (clipped at `upper`) whose gradient follows `rule` ('guided' or 'deconv')."""

    @tf.custom_gradient
    def rectifier(t: tf.Tensor) -> tuple[tf.Tensor, Callable[[tf.Tensor], tf.Tensor]]:
        y = tf.nn.relu(t) if upper is None else tf.clip_by_value(t, 0.0, upper)

        def grad(dy: tf.Tensor) -> tf.Tensor:
            positive = tf.nn.relu(dy)
            if rule == "deconv":
                return positive
            inside = t > 0 if upper is None else tf.logical_and(t > 0, t < upper)
            return positive * tf.cast(inside, dy.dtype)

        return y, grad

    return rectifier(x)


@contextlib.contextmanager
def rectifiers(model: keras.Model, rule: str, layers: Iterable[tuple[str, keras.Layer]]) -> Iterator[None]:
    """Within the block, every ReLU of `layers` rectifies by `rule`; 'normal' changes nothing."""
    if rule == "normal":
        yield
        return
    patched: list[Callable[[], None]] = []
    try:
        for name, layer in layers:
            replacement = _replacement(name, layer, rule)
            if replacement is not None:
                patched.append(swap_attribute(layer, *replacement))
        if not patched:
            raise ModelError(f"{model.name} has no ReLU or ReLU6 activation; the '{rule}' rule has nothing to change")
        yield
    finally:
        for restore in reversed(patched):
            restore()


def swap_attribute(layer: keras.Layer, attribute: str, value: Any) -> Callable[[], None]:
    """Set an instance attribute past Keras' tracking; returns the function that restores what was there."""
    before = layer.__dict__.get(attribute, _MISSING)
    object.__setattr__(layer, attribute, value)

    def restore() -> None:
        if before is _MISSING:
            object.__delattr__(layer, attribute)
        else:
            object.__setattr__(layer, attribute, before)

    return restore


_MISSING = object()


def _replacement(name: str, layer: keras.Layer, rule: str) -> tuple[str, Any] | None:
    if isinstance(layer, keras.layers.ReLU):
        if float(layer.negative_slope) != 0 or float(layer.threshold) != 0:
            raise ModelError(f"layer '{name}' is a leaky or thresholded ReLU; '{rule}' backprop needs plain ReLUs")
        upper = None if layer.max_value is None else float(layer.max_value)
        return "call", lambda inputs, *_, **__: rectify(inputs, upper, rule)
    activation = getattr(layer, "activation", None)
    if activation is keras.activations.relu:
        return "activation", lambda x: rectify(x, None, rule)
    if activation is keras.activations.relu6:
        return "activation", lambda x: rectify(x, 6.0, rule)
    return None
