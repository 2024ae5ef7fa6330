"""Keras layers by position, as the tutorials address them: `model.layers[k].output` is that layer's own
output, and `model.layers[k].input` the output of the layer that feeds it in the model's graph (not always
layers[k - 1] in branching networks). `model.layers` is Keras' top-level list: a functional model's starts
with its InputLayer, a Sequential's does not."""

from __future__ import annotations

import keras

from ...errors import LayerError
from ..base import pick_position


def layer_at(model: keras.Model, index: int, end: str) -> str:
    """The name (as heatlens lists it) of the layer whose output `model.layers[index].<end>` is, `end`
    being 'input' or 'output'; a position that is the model's input or no one layer's output is refused."""
    layers = list(model.layers)
    layer = pick_position(layers, index, model.name)
    where = f"layers[{index}] ('{layer.name}')"
    if isinstance(layer, keras.layers.InputLayer):
        raise LayerError(f"{where} is {model.name}'s InputLayer: it holds the model's input, not a layer's "
                         "output; leave layer= out to explain at the input")
    if end == "output":
        return layer.name
    nodes = _own_nodes(model, layer)
    if not nodes:
        raise LayerError(f"{where} has no recorded input in {model.name} (a subclassed model?); name the layer "
                         "whose output you mean (see `heatlens layers`)")
    if len(nodes) > 1:
        raise LayerError(f"{where} is called {len(nodes)} times in {model.name}, so it has no one input; name "
                         "the layer whose output you mean (see `heatlens layers`)")
    producers = [tensor._keras_history.operation for tensor in nodes[0].input_tensors]
    if len(producers) != 1:
        names = ", ".join(f"'{op.name}'" for op in producers)
        raise LayerError(f"{where} takes {len(producers)} inputs ({names}); name the one you mean")
    producer = producers[0]
    if isinstance(producer, keras.layers.InputLayer):
        raise LayerError(f"the input of {where} is {model.name}'s own input, not a layer's output; leave "
                         "layer= out to explain at the input")
    if not any(producer is other for other in layers):
        raise LayerError(f"the input of {where} comes from '{producer.name}' ({type(producer).__name__}), an "
                         f"operation that is none of {model.name}'s layers; name a layer's output instead")
    return producer.name


def _own_nodes(model: keras.Model, layer: keras.Layer) -> list:
    """The calls of `layer` that belong to `model`'s graph (a layer may also be called in other models)."""
    graph = model if hasattr(model, "_nodes") else getattr(model, "_functional", None)
    keys = getattr(graph, "_nodes", None)
    nodes = list(getattr(layer, "_inbound_nodes", []))
    if keys is None:
        return nodes
    return [node for i, node in enumerate(nodes) if f"{id(layer)}_ib-{i}" in keys]
