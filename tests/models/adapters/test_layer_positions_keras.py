"""Keras layers by position: `layers[k].input` is what Keras' own `model.layers[k].input` is (the output
of the layer feeding it, not always layers[k - 1]), `layers[k].output` that layer's output."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("tensorflow")

from keras_models import small_cnn

import heatlens
from heatlens import LayerError
from heatlens.models.adapters import keras_positions


def _keras_answer(model: keras.Model, index: int) -> str | None:
    """The layer whose output the tutorial's `model.layers[index].input` is, by Keras' own public API."""
    try:
        given = model.layers[index].input
    except (AttributeError, ValueError):
        return None
    return None if isinstance(given, list | tuple | dict) else given._keras_history.operation.name


def test_every_position_of_a_branching_net_is_keras_own_answer():
    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(32, 32, 3))
    skips = 0
    for index, layer in enumerate(model.layers[1:], start=1):
        assert keras_positions.layer_at(model, index, "output") == layer.name
        expected = _keras_answer(model, index)
        if expected is None or expected.startswith("input_layer"):
            with pytest.raises(LayerError):
                keras_positions.layer_at(model, index, "input")
            continue
        assert keras_positions.layer_at(model, index, "input") == expected
        skips += expected != model.layers[index - 1].name
    assert skips >= 10  # the shortcut branches: inputs that are not the previous layer's output


def test_vgg16_the_input_of_the_7th_layer_is_block2_pool():
    model = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    assert keras_positions.layer_at(model, 7, "input") == "block2_pool"
    assert keras_positions.layer_at(model, -1, "output") == "block5_pool"
    with pytest.raises(LayerError, match=r"layers\[0\] \('input_layer.*'\) is vgg16's InputLayer"):
        keras_positions.layer_at(model, 0, "output")
    with pytest.raises(LayerError, match=r"the input of layers\[1\] \('block1_conv1'\) is vgg16's own input"):
        keras_positions.layer_at(model, 1, "input")
    with pytest.raises(LayerError, match=r"layers\[-30\] is out of range: vgg16 has 19 top-level layers"):
        keras_positions.layer_at(model, -30, "input")


def test_sequential_nested_models_and_operations():
    inner = small_cnn("inner")
    outer = keras.Sequential([keras.Input((16, 16, 3)), inner, keras.layers.Dense(2, name="head")])
    assert [layer.name for layer in outer.layers] == ["inner", "head"]  # Sequential lists no InputLayer
    assert keras_positions.layer_at(outer, 1, "input") == "inner"
    inputs = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(3, 1, name="a")(inputs)
    b = keras.layers.Conv2D(2, 1, name="b")(keras.ops.add(a, 1.0))
    c = keras.layers.Add(name="c")([keras.layers.Conv2D(2, 1, name="d")(a), b])
    model = keras.Model(inputs, c)
    index = {layer.name: k for k, layer in enumerate(model.layers)}
    assert keras_positions.layer_at(model, index["d"], "input") == "a"
    with pytest.raises(LayerError, match=r"the input of layers\[\d\] \('b'\) comes from 'add(_\d+)?' \(Add\), an "
                                         "operation that is none of"):
        keras_positions.layer_at(model, index["b"], "input")
    with pytest.raises(LayerError, match=r"layers\[4\] \('c'\) takes 2 inputs \('d', 'b'\)"):
        keras_positions.layer_at(model, index["c"], "input")


def test_positions_in_explain_equal_the_names():
    keras.utils.set_random_seed(0)
    network = heatlens.wrap(small_cnn(), preprocess=None)
    x = np.random.default_rng(0).random((1, 16, 16, 3), np.float32)
    assert [layer.name for layer in network.model.layers][1:4] == ["conv1", "conv2", "act2"]
    named = heatlens.explain(network, x, method="gradcam", layer="conv2", target=1)
    placed = heatlens.explain(network, x, method="gradcam", layer="layers[3].input", target=1)
    assert placed.layer == "conv2"
    np.testing.assert_array_equal(placed.maps, named.maps)
    eg = heatlens.explain(network, x, method="expected_gradients", layer="layers[-3].output", background=x * 0,
                          n_samples=4, target=1)
    assert eg.layer == "act2"
