"""Small Keras models for tests (import only after pytest.importorskip("keras"))."""

from __future__ import annotations

import keras


def small_cnn(name: str = "small") -> keras.Model:
    """conv-relu, conv, ReLU layer, global average pool, dense: four classes on 16x16 inputs."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", strides=2, name="conv2")(x)
    x = keras.layers.ReLU(name="act2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="fc")(x), name=name)
