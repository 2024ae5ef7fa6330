"""The Keras adapter on JAX: Grad-CAM against jax.grad through the tutorial's split, targets ranked inside the
compiled step, the eager fallback, layers called twice, cuts, randomisation, and bad input as one-line errors with
the model left as it came."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from conftest import jax_or_skip

jax_or_skip()
import jax
import keras
from keras_models import small_cnn

import heatlens
from heatlens import LayerError, ModelError
from heatlens.models.adapters.keras_common import walk


def reference_gradcam(model: keras.Model, layer: str, x: np.ndarray, class_id: int) -> np.ndarray:
    """The Keras tutorial's way with JAX's own gradient: a sub-model to the layer's output, one from it to the
    scores, and jax.grad of the class score w.r.t. that output."""
    head = keras.Model(model.inputs, model.get_layer(layer).output)
    rest = keras.Model(model.get_layer(layer).output, model.output)
    act = head(x)
    grads = np.asarray(jax.grad(lambda a: rest(a)[:, class_id].sum())(act))
    return np.maximum(np.einsum("nc,nhwc->nhw", grads.mean(axis=(1, 2)), np.asarray(act)), 0)


class Branchy(keras.Model):
    """Python control flow on a tensor's value: fine eagerly, impossible under jax.jit. `extra` runs only for
    inputs whose maximum is not positive (the zeros that list the layers, not real inputs)."""

    def __init__(self) -> None:
        super().__init__(name="branchy")
        self.conv = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")
        self.extra = keras.layers.Conv2D(4, 1, name="extra")
        self.gap = keras.layers.GlobalAveragePooling2D(name="gap")
        self.fc = keras.layers.Dense(3, name="fc")

    def call(self, x):
        a = self.conv(x)
        a = a * 2.0 if float(keras.ops.max(x)) > 0 else self.extra(a)
        return self.fc(self.gap(a))


def state(model: keras.Model) -> tuple:
    """What must be as it came: no instance attribute left on any layer, the weights' values."""
    patched = tuple((name, vars(layer).get("call"), vars(layer).get("activation")) for name, layer in walk(model))
    return patched, tuple(float(np.asarray(w, np.float64).sum()) for w in model.get_weights())


@pytest.fixture
def x16(rng):
    return rng.standard_normal((2, 16, 16, 3)).astype(np.float32)


def test_wrap_picks_the_jax_adapter_and_gradcam_equals_jax_grad_through_the_split(x16):
    keras.utils.set_random_seed(1)
    model = small_cnn("formula")
    net = heatlens.wrap(model, preprocess=None)
    assert type(net).__name__ == "KerasJaxNetwork"
    result = heatlens.explain(net, x16, layer="conv2", target=[1, 3], upsample=False)
    for k, class_id in enumerate((1, 3)):
        np.testing.assert_allclose(result.maps[:, k], reference_gradcam(model, "conv2", x16, class_id),
                                   rtol=1e-5, atol=1e-6)


def test_top_k_targets_are_ranked_inside_the_step(x16):
    net = heatlens.wrap(small_cnn(), preprocess=None)
    ranked = heatlens.explain(net, x16, layer="conv2", target="top2", upsample=False)
    ids = np.argsort(-net.predict(x16), axis=1)[:, :2]
    given = heatlens.explain(net, x16, layer="conv2", target=ids, upsample=False)
    np.testing.assert_array_equal(ranked.targets.ids, ids)
    np.testing.assert_allclose(ranked.maps, given.maps, rtol=1e-6)


def test_models_that_cannot_be_compiled_run_eagerly(x16, caplog):
    keras.utils.set_random_seed(8)
    model = Branchy()
    model(x16)
    with caplog.at_level(logging.WARNING):
        result = heatlens.explain(heatlens.wrap(model, preprocess=None), x16, layer="conv", target=2, upsample=False)
    act = model.conv(x16)
    grads = np.asarray(jax.grad(lambda a: model.fc(model.gap(a * 2.0))[:, 2].sum())(act))
    expected = np.maximum(np.einsum("nc,nhwc->nhw", grads.mean(axis=(1, 2)), np.asarray(act)), 0)
    np.testing.assert_allclose(result.maps[:, 0], expected, rtol=1e-5, atol=1e-6)
    assert "cannot be traced by jax.jit" in caplog.text


def test_a_listed_layer_the_pass_does_not_reach_is_refused(x16):
    model = Branchy()
    model(x16)
    net = heatlens.wrap(model, preprocess=None)
    assert "extra" in [info.name for info in net.layers((16, 16, 3))]
    with pytest.raises(LayerError, match=r"^layer 'extra' was not run by the model's forward pass$"):
        heatlens.explain(net, x16 + 5, layer="extra")
    assert state(model)[0] == state(Branchy())[0]


def test_a_layer_called_twice_reports_its_calls_and_uses_the_last(x16):
    inputs = keras.Input((16, 16, 3))
    shared = keras.layers.Conv2D(3, 3, padding="same", name="shared")
    h = keras.layers.GlobalAveragePooling2D(name="gap")(shared(shared(inputs)))
    model = keras.Model(inputs, keras.layers.Dense(2, name="fc")(h))
    net = heatlens.wrap(model, preprocess=None)
    assert net.layer("shared", (16, 16, 3)).calls == 2
    trace = net.trace(x16, capture=["shared"])
    np.testing.assert_allclose(trace.activations["shared"], np.asarray(shared(shared(x16))), rtol=1e-5, atol=1e-6)


def test_a_cut_reproduces_the_forward_through_its_own_compiled_rest(x16):
    net = heatlens.wrap(small_cnn(), preprocess=None)
    act = net.trace(x16, capture=["conv2"]).activations["conv2"]
    np.testing.assert_allclose(net.split("conv2").tail(act, x16), net.predict(x16), rtol=1e-5, atol=1e-6)
    assert net._rests["conv2"] is not None


def test_randomised_redraws_a_clone_and_leaves_the_model(x16):
    model = small_cnn()
    net = heatlens.wrap(model, preprocess=None)
    kept = state(model)
    assert net.parameter_layers() == ["conv1", "conv2", "fc"]
    changed = net.randomised(["fc"], seed=3)
    assert type(changed).__name__ == "KerasJaxNetwork"
    assert not np.allclose(changed.predict(x16), net.predict(x16))
    assert state(model) == kept


def test_the_tensorflow_adapter_refuses_a_jax_process_in_one_line():
    from heatlens.models.adapters.keras import KerasNetwork

    with pytest.raises(ModelError, match=r"^KerasNetwork is for Keras on tensorflow; this process runs Keras on "
                                         r"'jax': wrap the model with heatlens.wrap, which picks the adapter$"):
        KerasNetwork(small_cnn())


def test_scores_that_do_not_depend_on_the_layer_are_refused(x16):
    inputs = keras.Input((16, 16, 3))
    species = keras.layers.Dense(4, name="species")(keras.layers.GlobalAveragePooling2D(name="gap1")(
        keras.layers.Conv2D(4, 3, name="conv1")(inputs)))
    pose = keras.layers.Dense(3, name="pose")(keras.layers.GlobalAveragePooling2D(name="gap2")(
        keras.layers.Conv2D(4, 3, name="side")(inputs)))
    net = heatlens.wrap(keras.Model(inputs, [species, pose]), preprocess=None)
    with pytest.raises(LayerError, match=r"^the scores of .* do not depend on 'conv1': build them from"):
        heatlens.explain(net, x16, layer="conv1", target=0, score_fn=lambda out: out[1])


def test_bad_input_is_a_one_line_error_and_leaves_the_model_as_it_came(x16):
    model = small_cnn()
    net = heatlens.wrap(model, preprocess=None)
    kept = state(model)

    def fails(out):
        raise RuntimeError("no such head\nsecond line")

    with pytest.raises(ModelError, match=r"failed on the model's output: RuntimeError: no such head$"):
        heatlens.explain(net, x16, method="guided_backprop", score_fn=fails)
    assert state(model) == kept
    with pytest.raises(ModelError, match=r"must return a jax\.Array of shape \(N,\) or \(N, K\)"):
        heatlens.explain(net, x16, layer="conv2", score_fn=lambda out: np.zeros((2, 2)))
    assert state(model) == kept
    with pytest.raises(LayerError, match=r"^unknown layer 'conv3' in small\..*'conv1'"):
        heatlens.explain(net, x16, layer="conv3")
    heatlens.explain(net, x16, method="deconvnet")
    assert state(model) == kept
