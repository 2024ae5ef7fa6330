"""A Keras model handed over directly gets what keras:NAME gets: its architecture's own preprocess_input,
input size and class names, and the logits before a final softmax (the Keras tutorials' setup)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from keras_models import small_cnn

import heatlens
from heatlens.preprocess import ResizeCrop


def _warnings_of(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    return result, [str(w.message) for w in caught]


def test_a_keras_applications_model_equals_the_same_model_by_name(cat):
    by_name = heatlens.load_model("keras:ResNet50", weights="random")
    direct = keras.applications.ResNet50(weights=None)  # ends in a softmax, as keras.applications builds it
    direct.set_weights(by_name.model.get_weights())
    ours, said = _warnings_of(lambda: heatlens.explain(direct, cat, target="top3"))
    theirs = heatlens.explain(by_name, cat, target="top3")
    assert ours.targets.ids.tolist() == theirs.targets.ids.tolist()
    assert ours.targets.names == theirs.targets.names and ours.classes[281] == "tabby"
    np.testing.assert_allclose(ours.logits, theirs.logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.maps, theirs.maps, rtol=1e-4, atol=1e-5 * np.abs(theirs.maps).max())
    assert [s for s in said if "recognise" in s] == []
    assert "recognised keras.applications.ResNet50" in ours.notes[0]
    assert direct.layers[-1].activation is keras.activations.softmax  # the model is left as it came


def _softmax_pair():
    """The same small CNN twice: ending in Dense(softmax), and in plain logits."""
    logits = small_cnn("logits")
    inputs = keras.Input((16, 16, 3))
    probs = keras.Model(inputs, keras.layers.Activation("softmax")(logits(inputs)), name="probs")
    return logits, probs


@pytest.mark.parametrize("method", ["gradcam", "saliency"])
def test_a_final_softmax_is_explained_by_its_logits_and_said_once(method, rng):
    logits, probs = _softmax_pair()
    x = rng.random((2, 16, 16, 3), dtype=np.float32)
    layer = {"layer": "logits.conv2"} if method == "gradcam" else {}
    reference = heatlens.explain(heatlens.wrap(logits, preprocess=None), x, method=method, target=1,
                                 **({"layer": "conv2"} if layer else {}))
    _, said = _warnings_of(lambda: heatlens.wrap(probs, preprocess=None))
    again, said_again = _warnings_of(lambda: heatlens.wrap(probs, preprocess=None))
    ours = heatlens.explain(again, x, method=method, target=1, **layer)
    np.testing.assert_allclose(ours.maps, reference.maps, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.logits, reference.logits, rtol=1e-6, atol=1e-6)
    assert any("ends in a softmax" in s and "keep_softmax=True" in s for s in said)
    assert not any("softmax" in s for s in said_again)
    assert any("final softmax are explained" in note for note in ours.notes)


def test_keep_softmax_explains_the_probabilities(rng):
    logits, probs = _softmax_pair()
    inputs = keras.Input((16, 16, 3))
    unseen = keras.Model(inputs, keras.layers.Lambda(keras.ops.softmax)(logits(inputs)))  # a softmax not detected
    x = rng.random((2, 16, 16, 3), dtype=np.float32)
    ours = heatlens.explain(heatlens.wrap(probs, preprocess=None, keep_softmax=True), x, method="saliency", target=1)
    reference = heatlens.explain(heatlens.wrap(unseen, preprocess=None), x, method="saliency", target=1)
    np.testing.assert_allclose(ours.logits.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(ours.maps, reference.maps, rtol=1e-4, atol=1e-7)
    assert ours.notes == []


def test_a_model_it_does_not_recognise_gets_imagenet_preprocessing_and_a_warning(cat):
    network, said = _warnings_of(lambda: heatlens.wrap(small_cnn("mine")))
    assert any("mine is not a keras.applications architecture heatlens recognises" in s
               and "pass preprocess=" in s for s in said)
    expected = ResizeCrop(resize=18, crop=16, mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375))
    np.testing.assert_allclose(network.prepare(cat[None]), expected(cat[None]), rtol=1e-6)
    _, quiet = _warnings_of(lambda: heatlens.wrap(small_cnn("mine"), preprocess="imagenet"))
    assert not any("recognises" in s for s in quiet)


def test_an_application_inside_a_model_lends_its_preprocessing(cat):
    base = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(64, 64, 3))
    model = keras.Sequential([keras.Input((64, 64, 3)), base, keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(3)], name="transfer")
    network = heatlens.wrap(model)
    crop = ResizeCrop(resize=73, crop=64, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))(cat[None])
    expected = keras.applications.mobilenet_v2.preprocess_input(crop)
    np.testing.assert_allclose(network.prepare(cat[None]), expected, rtol=1e-6, atol=1e-6)
    assert network.classes is None and "MobileNetV2" in network.notes[0]


def test_a_photo_already_at_the_input_size_is_taken_as_it_is(cat):
    network = heatlens.wrap(keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(64, 64, 3)))
    sized = cat[:64, 100:164]
    expected = keras.applications.mobilenet_v2.preprocess_input(sized[None].astype(np.float32))
    np.testing.assert_allclose(network.prepare(sized[None]), expected, rtol=1e-6)
    assert network.input_box(64, 64) == (0.0, 0.0, 64.0, 64.0)


def test_a_softmax_layer_of_a_subclassed_model_is_left_alone(rng):
    """Only a functional or Sequential model says which layer makes its output; a subclassed one is run as is."""

    class Inner(keras.Model):
        def __init__(self):
            super().__init__()
            self.scores = keras.layers.Dense(3)
            self.gate = keras.layers.Dense(3, activation="softmax")  # registered last, not the output

        def call(self, x):
            flat = keras.ops.reshape(x, (keras.ops.shape(x)[0], -1))
            return self.scores(flat) * keras.ops.sum(self.gate(flat), axis=1, keepdims=True)

    model = Inner()
    x = rng.random((2, 4, 4, 3), dtype=np.float32)
    expected = np.asarray(model(x))
    network, said = _warnings_of(lambda: heatlens.wrap(model, preprocess=None))
    np.testing.assert_allclose(network.predict(x), expected, rtol=1e-6)
    assert not any("softmax" in s for s in said) and network.notes == []
