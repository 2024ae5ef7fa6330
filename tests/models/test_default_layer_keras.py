"""The automatic CAM layer on every keras.applications family (the smallest member, random weights, a small
input): heatlens.wrap(model) recognises the architecture, Grad-CAM runs on a photo with no layer named, and the
layer it chose is the last spatial one before global pooling. Torch families: test_default_layer_families.py."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import heatlens

SIZE = 96  # small, a multiple of 32 (NASNet); the Inceptions' valid convolutions need 160 for a 3x3 last stage
SIZES = {"InceptionResNetV2": 160, "InceptionV3": 160}
COVERED = {"ConvNeXtTiny", "EfficientNetB0", "InceptionV3", "MobileNetV2", "ResNet50", "VGG16", "Xception"}

# family -> the default layer
FAMILIES = {
    "ConvNeXtTiny": "convnext_tiny_stage_3_block_2_identity",
    "DenseNet121": "relu",
    "EfficientNetB0": "top_activation",
    "EfficientNetV2B0": "top_activation",
    "InceptionResNetV2": "conv_7b_ac",
    "InceptionV3": "mixed10",
    "MobileNet": "conv_pw_13_relu",
    "MobileNetV2": "out_relu",
    "MobileNetV3Small": None,  # auto-named layers: the one that feeds global pooling, read from the graph
    "NASNetMobile": None,
    "ResNet50": "conv5_block3_out",
    "ResNet50V2": "post_relu",
    "VGG16": "block5_conv3",
    "Xception": "block14_sepconv2_act",
}


def feeding_global_pooling(model) -> str:
    """The name of the layer whose output the model's last global pooling reads (Keras' own graph; squeeze-and-
    excitation blocks pool too)."""
    pooling = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)
    pool = [layer for layer in model.layers if isinstance(layer, pooling)][-1]
    return pool.input._keras_history.operation.name


@pytest.mark.parametrize("family", [
    pytest.param(family, marks=[pytest.mark.slow] if family in COVERED else []) for family in sorted(FAMILIES)
])  # the COVERED families' default is also checked, at full size, in adapters/test_keras_adapter.py
def test_gradcam_runs_with_no_layer_named_on_the_expected_layer(family, cat):
    keras.utils.set_random_seed(0)
    size = SIZES.get(family, SIZE)
    model = getattr(keras.applications, family)(weights=None, input_shape=(size, size, 3))
    result = heatlens.explain(heatlens.wrap(model), cat)
    assert result.layer == (FAMILIES[family] or feeding_global_pooling(model))
    maps = result.maps[0, 0]
    assert maps.shape == cat.shape[:2]
    assert np.isfinite(maps).all() and maps.max() > maps.min()
