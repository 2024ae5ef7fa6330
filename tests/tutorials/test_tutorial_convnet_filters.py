"""Keras' "Visualizing what convnets learn" (gradient ascent on a channel's mean activation, borders
excluded, l2-normalised steps) and the intermediate-activations recipe (a Model whose outputs are the
layers' outputs), on VGG16(include_top=False) handed to heatlens as it is.

heatlens' filters objective is the channel's mean over every position (the tutorial leaves out 2 pixels
at each border) and its steps are normalised by the gradient's standard deviation (the tutorial's by
its l2 norm: the same direction); the step test below therefore uses the tutorial's loss with the one
line that crops the borders dropped, and the border-excluded loss itself is checked to rise. Offline
substitutions: weights=None with a fixed seed, 64x64 inputs, the cat photo.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from tutorial_helpers import normalised, seeded

import heatlens

SIZE = 64
SEED = 29
LAYER = "block3_conv1"
CHANNELS = [0, 1, 2]


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return seeded(lambda: keras.applications.VGG16(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3)),
                  SEED)


def compute_loss(feature_extractor, input_image, filter_index, borders=True):
    activation = feature_extractor(input_image)
    # We avoid border artifacts by only involving non-border pixels in the loss.
    filter_activation = activation[:, 2:-2, 2:-2, filter_index] if borders else activation[..., filter_index]
    return tf.reduce_mean(filter_activation)


def gradient(feature_extractor, img, filter_index, borders=True):
    """The tutorial's gradient_ascent_step up to its update: the l2-normalised gradient of the loss."""
    with tf.GradientTape() as tape:
        tape.watch(img)
        loss = compute_loss(feature_extractor, img, filter_index, borders)
    grads = tape.gradient(loss, img)
    return tf.math.l2_normalize(grads).numpy()


def grown(model: keras.Model, lr: float, steps: int = 1) -> np.ndarray:
    """heatlens' filter inputs after `steps` plain steps (no jitter, no blur) from its seeded start."""
    pictures = heatlens.filters(model, LAYER, channels=CHANNELS, steps=steps, lr=lr, jitter=0, blur_every=0,
                                progress=False)
    return pictures.arrays["inputs"]


def test_one_step_follows_the_tutorials_gradient(model: keras.Model) -> None:
    """Two runs from the same start with steps lr and 2 lr: their difference is one step, their
    extrapolation the start; at the start, the step is the tutorial's normalised gradient (borders kept)."""
    small, large = grown(model, 0.002), grown(model, 0.004)
    step = large - small
    start = small - step
    feature_extractor = keras.Model(inputs=model.inputs, outputs=model.get_layer(name=LAYER).output)
    for i, filter_index in enumerate(CHANNELS):
        img = tf.constant(start[i : i + 1])
        expected = gradient(feature_extractor, img, filter_index, borders=False)[0]
        # the step is a difference of float32 inputs about ten times its size: 8e-6 of rounding here
        np.testing.assert_allclose(normalised(step[i]), normalised(expected), atol=2e-5)


def test_filters_raise_the_tutorials_loss(model: keras.Model) -> None:
    """The tutorial's own objective (borders excluded) rises on heatlens' grown inputs."""
    feature_extractor = keras.Model(inputs=model.inputs, outputs=model.get_layer(name=LAYER).output)
    pictures = heatlens.filters(model, LAYER, channels=CHANNELS, steps=20, progress=False)
    first = grown(model, 0.05, steps=1)
    for i, filter_index in enumerate(CHANNELS):
        before = float(compute_loss(feature_extractor, tf.constant(first[i : i + 1]), filter_index))
        after = float(compute_loss(feature_extractor, tf.constant(pictures.arrays["inputs"][i : i + 1]),
                                   filter_index))
        assert after > before, (filter_index, before, after)
    assert all(e > s for s, e in zip(pictures.details["start_activation"], pictures.details["end_activation"],
                                     strict=True))


def test_activations_equal_the_recipes_model(model: keras.Model, photo_path: Path) -> None:
    """The recipe's multi-output Model on the preprocessed photo gives heatlens' activation arrays."""
    preprocess_input = keras.applications.vgg16.preprocess_input
    img = keras.utils.load_img(photo_path, target_size=(SIZE, SIZE))
    img_tensor = preprocess_input(np.expand_dims(keras.utils.img_to_array(img), axis=0))
    layer_outputs = [layer.output for layer in model.layers[1:8]]
    activation_model = keras.Model(inputs=model.input, outputs=layer_outputs)
    expected = activation_model.predict(img_tensor, verbose=0)
    names = [layer.name for layer in model.layers[1:8]]
    network = heatlens.wrap(model, preprocess=preprocess_input)
    pictures = heatlens.activations(network, np.asarray(img), layers=names)
    for name, wanted in zip(names, expected, strict=True):
        np.testing.assert_allclose(pictures.arrays[name], wanted[0], rtol=1e-5, atol=1e-5 * np.abs(wanted).max())
