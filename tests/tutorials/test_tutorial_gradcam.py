"""Keras' "Grad-CAM class activation visualization" tutorial, run as written (Xception, the last
separable conv's activation, the softmax removed), next to the heatlens call that replaces it.

Offline substitutions: weights=None with a fixed seed, the photo from scikit-image, and a 128x128 input
(Xception takes any size from 71 up when it is not loading ImageNet weights) to keep the test fast.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from tutorial_helpers import seeded

import heatlens

SIZE = 128
SEED = 13
last_conv_layer_name = "block14_sepconv2_act"


# --- the tutorial's code -------------------------------------------------------------------------
def get_img_array(img_path, size):
    img = keras.utils.load_img(img_path, target_size=size)
    array = keras.utils.img_to_array(img)
    array = np.expand_dims(array, axis=0)
    return array


def make_gradcam_heatmap(img_array, model, last_conv_layer_name, pred_index=None):
    grad_model = keras.models.Model(model.inputs, [model.get_layer(last_conv_layer_name).output, model.output])
    with tf.GradientTape() as tape:
        last_conv_layer_output, preds = grad_model(img_array)
        if pred_index is None:
            pred_index = tf.argmax(preds[0])
        class_channel = preds[:, pred_index]
    grads = tape.gradient(class_channel, last_conv_layer_output)
    pooled_grads = tf.reduce_mean(grads, axis=(0, 1, 2))
    last_conv_layer_output = last_conv_layer_output[0]
    heatmap = last_conv_layer_output @ pooled_grads[..., tf.newaxis]
    heatmap = tf.squeeze(heatmap)
    heatmap = tf.maximum(heatmap, 0) / tf.math.reduce_max(heatmap)
    return heatmap.numpy()


def tutorial(img_path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """The tutorial's steps: (heatmap, logits, predicted class)."""
    model_builder = keras.applications.xception.Xception
    img_size = (SIZE, SIZE)
    preprocess_input = keras.applications.xception.preprocess_input
    img_array = preprocess_input(get_img_array(img_path, size=img_size))
    model = seeded(lambda: model_builder(weights=None, input_shape=(SIZE, SIZE, 3)), SEED)
    model.layers[-1].activation = None
    preds = model.predict(img_array, verbose=0)
    heatmap = make_gradcam_heatmap(img_array, model, last_conv_layer_name)
    return heatmap, preds, int(np.argmax(preds[0]))


# --------------------------------------------------------------------------------------------------
def build() -> keras.Model:
    """The tutorial's Xception as keras.applications builds it, softmax included (the tutorial's seed)."""
    return seeded(lambda: keras.applications.Xception(weights=None, input_shape=(SIZE, SIZE, 3)), SEED)


@pytest.fixture(scope="module")
def photos(photo_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a SIZE / 0.875 square photo, its centre SIZE x SIZE) as files. heatlens crops the centre of a
    photo (short side to SIZE / 0.875, as keras.applications' own evaluation), where the tutorial squashes
    the whole photo to SIZE x SIZE; given these, both see the same pixels (load_img resizes neither)."""
    side = round(SIZE / 0.875)
    folder = tmp_path_factory.mktemp("gradcam")
    keras.utils.load_img(photo_path, target_size=(side, side)).save(folder / "photo.png")
    photo = np.asarray(keras.utils.load_img(folder / "photo.png"))
    start = (side - SIZE) // 2
    Image.fromarray(photo[start : start + SIZE, start : start + SIZE]).save(folder / "centre.png")
    return folder / "photo.png", folder / "centre.png"


@pytest.fixture(scope="module")
def expected(photos: tuple[Path, Path]) -> tuple[np.ndarray, np.ndarray, int]:
    return tutorial(photos[1])


def test_gradcam_equals_the_tutorial_with_its_preprocessing(photos: tuple[Path, Path], expected: tuple) -> None:
    """heatlens handed Xception's preprocess_input explicitly: the same input, so the same map."""
    heatmap, preds, top = expected
    photo = np.asarray(keras.utils.load_img(photos[1]))
    network = heatlens.wrap(build(), preprocess=keras.applications.xception.preprocess_input)
    result = heatlens.explain(network, photo, method="gradcam", layer=last_conv_layer_name, upsample=False)
    assert int(result.targets.ids[0, 0]) == top
    np.testing.assert_allclose(result.logits, preds, rtol=1e-4, atol=1e-5 * np.abs(preds).max())
    ours = result.maps[0, 0] / result.maps[0, 0].max()
    assert ours.shape == heatmap.shape == (4, 4)
    np.testing.assert_allclose(ours, heatmap, atol=1e-5)


def test_gradcam_of_the_raw_model_equals_the_tutorial(photos: tuple[Path, Path], expected: tuple) -> None:
    """explain(model, photo) with the bare keras.applications model: Xception's own preprocess_input and
    input size, the logits (the softmax detected, said once), ImageNet class names."""
    heatmap, preds, top = expected
    photo = np.asarray(keras.utils.load_img(photos[0]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = heatlens.explain(build(), photo, method="gradcam", layer=last_conv_layer_name, upsample=False)
    softmax_warnings = [w for w in caught if "softmax" in str(w.message).lower()]
    assert len(softmax_warnings) == 1, [str(w.message) for w in caught]
    assert any("logits" in note for note in result.notes), result.notes
    start = (photo.shape[0] - SIZE) // 2
    assert result.input_box == pytest.approx((start, start, start + SIZE, start + SIZE))
    assert result.classes is not None and len(result.classes) == 1000
    assert int(result.targets.ids[0, 0]) == top
    np.testing.assert_allclose(result.logits, preds, rtol=1e-4, atol=1e-5 * np.abs(preds).max())
    np.testing.assert_allclose(result.maps[0, 0] / result.maps[0, 0].max(), heatmap, atol=1e-5)
