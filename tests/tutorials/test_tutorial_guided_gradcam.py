"""Guided Grad-CAM the well-known Keras way (VGG16): guided backprop through a tf.custom_gradient ReLU
swapped into every ReLU layer, times the Grad-CAM heatmap of the Grad-CAM tutorial resized to the input
with cv2.resize, next to heatlens' guided_gradcam.

The recipe circulating with the tutorial backpropagates the sum of block5_conv3's output; guided
Grad-CAM as Selvaraju et al. define it (and heatlens computes it) backpropagates the class score, the
same class as the Grad-CAM factor, so the oracle below does that (one line differs: the target of
tape.gradient). Offline substitutions: VGG16(weights=None) with a fixed seed at 64x64, the cat photo.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")
cv2 = pytest.importorskip("cv2")

from test_tutorial_gradcam import get_img_array, make_gradcam_heatmap
from tutorial_helpers import normalised, seeded

import heatlens

SIZE = 64
SEED = 21
LAYER = "block5_conv3"


@tf.custom_gradient
def guidedRelu(x):  # noqa: N802 (the recipe's name)
    def grad(dy):
        return tf.cast(dy > 0, "float32") * tf.cast(x > 0, "float32") * dy

    return tf.nn.relu(x), grad


def build() -> keras.Model:
    return seeded(lambda: keras.applications.VGG16(weights=None, input_shape=(SIZE, SIZE, 3)), SEED)


@pytest.fixture(scope="module")
def recipe(photo_path: Path) -> dict:
    """The recipe's guided backprop, Grad-CAM and their product for the predicted class."""
    preprocess_input = keras.applications.vgg16.preprocess_input
    img_array = preprocess_input(get_img_array(photo_path, size=(SIZE, SIZE)))
    model = build()
    model.layers[-1].activation = None
    preds = model.predict(img_array, verbose=0)
    top = int(np.argmax(preds[0]))
    heatmap = make_gradcam_heatmap(img_array, model, LAYER)
    cam = cv2.resize(heatmap, (SIZE, SIZE))

    gb_model = keras.models.Model(model.inputs, model.outputs)
    layer_dict = [layer for layer in gb_model.layers[1:] if hasattr(layer, "activation")]
    for layer in layer_dict:
        if layer.activation == keras.activations.relu:
            layer.activation = guidedRelu
    with tf.GradientTape() as tape:
        inputs = tf.cast(img_array, tf.float32)
        tape.watch(inputs)
        outputs = gb_model(inputs)[:, top]
    grads = tape.gradient(outputs, inputs)[0].numpy()
    return {"preds": preds, "top": top, "guided": grads, "guided_gradcam": grads * cam[..., np.newaxis],
            "photo": np.asarray(keras.utils.load_img(photo_path, target_size=(SIZE, SIZE)))}


@pytest.fixture(scope="module")
def network() -> heatlens.models.Network:
    return heatlens.wrap(build(), preprocess=keras.applications.vgg16.preprocess_input)


def test_guided_backprop_equals_the_recipe(recipe: dict, network: heatlens.models.Network) -> None:
    result = heatlens.explain(network, recipe["photo"], method="guided_backprop")
    assert int(result.targets.ids[0, 0]) == recipe["top"]
    np.testing.assert_allclose(normalised(result.attributions[0, 0]), normalised(recipe["guided"]), atol=1e-5)


def test_guided_gradcam_equals_the_recipe(recipe: dict, network: heatlens.models.Network) -> None:
    """The product up to Grad-CAM's normalisation (heatlens keeps raw maps, the recipe divides by the max)."""
    result = heatlens.explain(network, recipe["photo"], method="guided_gradcam", layer=LAYER)
    assert int(result.targets.ids[0, 0]) == recipe["top"]
    np.testing.assert_allclose(result.logits, recipe["preds"], rtol=1e-4, atol=1e-5 * np.abs(recipe["preds"]).max())
    expected = normalised(recipe["guided_gradcam"])
    np.testing.assert_allclose(normalised(result.attributions[0, 0]), expected, atol=1e-5)
    np.testing.assert_allclose(normalised(result.maps[0, 0]), np.abs(expected).max(axis=-1), atol=1e-5)
