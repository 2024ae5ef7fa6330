"""Model-parameter randomisation for Keras models, on a clone: the sanity checks' primitive.

Each weight of a chosen layer is re-drawn from the layer's own initializer for it (kernel_initializer,
bias_initializer, BatchNormalization's gamma/beta/moving_* initializers, ...), seeded per layer and weight, on a
clone of the model (keras.models.clone_model with the original weights); the user's model is never written to.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from ...errors import MethodError, ModelError, first_line
from ..base import check_parameter_layers
from .keras_rectifiers import final_softmax

if TYPE_CHECKING:
    from .keras_common import KerasBase

ALIASES = {"kernel": ("kernel", "depthwise"), "depthwise_kernel": ("depthwise",), "pointwise_kernel": ("pointwise",),
           "recurrent_kernel": ("recurrent",)}


def parameter_layers(network: KerasBase, input_shape: tuple[int, ...] | None = None) -> list[str]:
    """The layers (not nested models) that hold weights and that the forward pass runs, in execution order."""
    holders = set(_holders(network.model))
    return [info.name for info in network.layers(input_shape) if info.name in holders]


def randomised(network: KerasBase, layers: Sequence[str], seed: int = 0) -> KerasBase:
    """A network of the same adapter over a clone of the model where every weight of `layers` is re-drawn from its
    initializer."""
    from .keras_common import walk

    layers = check_parameter_layers(network.name, layers, _holders(network.model))
    model = _clone(network)
    found = dict(walk(model))
    for name in layers:
        for j, (variable, initializer) in enumerate(_initialized(found[name], name)):
            draw = _seeded(initializer, _seed(seed, name, j))
            variable.assign(draw(shape=tuple(variable.shape), dtype=variable.dtype))
    view = copy.copy(network)
    view.model = model
    view._softmax = None if network._softmax is None else final_softmax(model)
    view._layers = dict(network._layers)
    view._forget_compiled()
    return view


def _holders(model: keras.Model) -> list[str]:
    from .keras_common import walk

    return [name for name, layer in walk(model) if not isinstance(layer, keras.Model) and layer.weights]


def _clone(network: KerasBase) -> keras.Model:
    """A copy of the model with its own variables holding the same values."""
    model = network.model
    try:
        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
    except Exception as exc:
        reason = first_line(exc).split(". ")[0]
        raise ModelError(f"{network.name} cannot be cloned to randomise its weights (keras.models.clone_model: "
                         f"{reason}); a subclassed model needs get_config() and from_config() that rebuild it, and "
                         "@keras.saving.register_keras_serializable()") from exc
    return clone


def _initialized(layer: keras.Layer, name: str) -> Iterator[tuple[Any, Any]]:
    """(variable, its layer's initializer) for each weight of `layer`, its sublayers' included."""
    for owner in layer._flatten_layers(include_self=True, recursive=True):
        for variable in [*owner._trainable_variables, *owner._non_trainable_variables]:
            yield variable, _initializer(owner, variable, name)


def _initializer(owner: keras.Layer, variable: Any, name: str) -> Any:
    weight = variable.name
    for stem in ALIASES.get(weight, (weight,)):
        initializer = getattr(owner, f"{stem}_initializer", None)
        if initializer is not None:
            return keras.initializers.get(initializer)
    raise MethodError(f"cannot re-draw weight '{weight}' of layer '{name}': the layer has no {weight}_initializer; "
                      f"leave it out: layers=[...] without '{name}'")


def _seeded(initializer: Any, seed: int) -> Any:
    """The initializer with its own seed (those without randomness, e.g. Zeros, as they are)."""
    config = initializer.get_config()
    if "seed" not in config:
        return initializer
    return type(initializer).from_config({**config, "seed": seed})


def _seed(seed: int, layer: str, weight: int) -> int:
    """A seed per (seed, layer, weight): a layer's random weights do not depend on which others are randomised."""
    return int(np.random.SeedSequence([seed, zlib.crc32(layer.encode()), weight]).generate_state(1)[0] % 2**31)
