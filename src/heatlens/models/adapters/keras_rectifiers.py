"""Guided backprop and deconvnet ReLUs for Keras on any backend, while a graph is traced.

ReLU layers and every layer whose `activation` is relu / relu6 (Conv2D(activation="relu"), Activation)
get a rectifier with the same forward value and a different backward rule (Springenberg et al. 2015;
Zeiler & Fergus 2014):
    guided:  dL/dx = max(dL/dy, 0) * [0 < x < upper]
    deconv:  dL/dx = max(dL/dy, 0)
The rectifier itself (a `Rectify`: the backend's custom-gradient function) comes from the backend adapter.
The replacements are instance attributes that are removed again on exit, whatever happens. A final
softmax is replaced the same way by the identity, so the logits before it are explained (the Keras
Grad-CAM tutorial sets the last activation to None for this; heatlens leaves the model as it is).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import keras

from ...errors import ModelError

Rectify = Callable[[Any, float | None, str], Any]  # (x, upper, rule) -> max(x, 0), clipped, with the rule's gradient


@contextlib.contextmanager
def rectifiers(model: keras.Model, rule: str, layers: Iterable[tuple[str, keras.Layer]],
               rectify: Rectify) -> Iterator[None]:
    """Within the block, every ReLU of `layers` rectifies by `rule` through `rectify`; 'normal' changes nothing."""
    if rule == "normal":
        yield
        return
    patched: list[Callable[[], None]] = []
    try:
        for name, layer in layers:
            replacement = _replacement(name, layer, rule, rectify)
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


def _replacement(name: str, layer: keras.Layer, rule: str, rectify: Rectify) -> tuple[str, Any] | None:
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


def final_softmax(model: keras.Model) -> tuple[keras.Layer, str, object] | None:
    """(layer, attribute, replacement) that turns a final softmax into the identity, or None when the
    model's output is not a softmax: a Dense or Activation with activation='softmax', or a Softmax layer,
    also at the end of a nested model."""
    layer = _output_layer(model)
    while isinstance(layer, keras.Model):
        layer = _output_layer(layer)
    if layer is None:
        return None
    if isinstance(layer, keras.layers.Softmax):
        return layer, "call", lambda inputs, *_, **__: inputs
    if getattr(layer, "activation", None) is keras.activations.softmax:
        return layer, "activation", keras.activations.linear
    return None


def _output_layer(model: keras.Model) -> keras.Layer | None:
    """The layer that computes the model's (single) output."""
    outputs = getattr(model, "outputs", None)
    if isinstance(outputs, list) and len(outputs) == 1 and hasattr(outputs[0], "_keras_history"):
        return outputs[0]._keras_history.operation
    if isinstance(model, keras.Sequential) and model.layers:  # its last layer is its output by construction
        return model.layers[-1]
    return None  # a subclassed model: which layer makes its output is its own code's business


@contextlib.contextmanager
def logits_out(replacement: tuple[keras.Layer, str, object] | None) -> Iterator[None]:
    """Within the block the model's final softmax is the identity (the model is restored on exit)."""
    if replacement is None:
        yield
        return
    restore = swap_attribute(*replacement)
    try:
        yield
    finally:
        restore()
