"""EfficientNet-Lite as a Keras 3 functional model, with the same ImageNet weights as the torch build.

Layer names follow the torch module names ('stem', 'blocks.3.depthwise', 'blocks.3', 'head', 'classifier'),
so one layer name means the same tensor in both frameworks. Keras' 'same' padding is TensorFlow's, as
the weights were trained with.
"""

from __future__ import annotations

import keras
import numpy as np

from .efficientnet_lite_spec import BN_EPS, HEAD, STEM, BlockSpec, block_specs


def build(size: str = "lite0", num_classes: int = 1000) -> keras.Model:
    """The architecture with freshly initialised weights; like the torch build it takes any input size."""
    inputs = keras.Input((None, None, 3), name="input")
    x = _conv_bn(inputs, "stem", STEM, 3, 2)
    specs = block_specs(size)
    for index, spec in enumerate(specs):
        x = _block(x, f"blocks.{index}", spec)
    x = _conv_bn(x, "head", HEAD, 1)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, name="classifier")(x)
    return keras.Model(inputs, outputs, name=f"efficientnet_{size}")


def _conv_bn(x: keras.KerasTensor, name: str, filters: int, kernel: int, stride: int = 1, depthwise: bool = False,
             act: bool = True) -> keras.KerasTensor:
    if depthwise:
        conv = keras.layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{name}.0")
    else:
        conv = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}.0")
    x = conv(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPS, name=f"{name}.1")(x)
    return keras.layers.ReLU(max_value=6.0, name=name)(x) if act else keras.layers.Identity(name=name)(x)


def _block(x: keras.KerasTensor, name: str, spec: BlockSpec) -> keras.KerasTensor:
    out = x
    if spec.expand != 1:
        out = _conv_bn(out, f"{name}.expand", spec.cin * spec.expand, 1)
    out = _conv_bn(out, f"{name}.depthwise", 0, spec.kernel, spec.stride, depthwise=True)
    out = _conv_bn(out, f"{name}.project", spec.cout, 1, act=False)
    if spec.residual:
        return keras.layers.Add(name=name)([out, x])
    return keras.layers.Identity(name=name)(out)


def load_weights(model: keras.Model, state: dict[str, np.ndarray]) -> None:
    """Copy a renamed torch state dict (see efficientnet_lite_spec.rename_checkpoint) into the model."""
    for layer in model.layers:
        prefix = layer.name
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            layer.set_weights([state[f"{prefix}.weight"].transpose(2, 3, 0, 1)])
        elif isinstance(layer, keras.layers.Conv2D):
            layer.set_weights([state[f"{prefix}.weight"].transpose(2, 3, 1, 0)])
        elif isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([state[f"{prefix}.{key}"] for key in ("weight", "bias", "running_mean", "running_var")])
        elif isinstance(layer, keras.layers.Dense):
            layer.set_weights([state[f"{prefix}.weight"].T, state[f"{prefix}.bias"]])
