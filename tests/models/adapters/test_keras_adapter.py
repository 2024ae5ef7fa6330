"""The Keras adapter: Grad-CAM against an independent GradientTape computation, model left untouched."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from keras_models import small_cnn

import heatlens
from heatlens import LayerError, ModelError, TargetError

APPLICATIONS = {
    "Xception": "block14_sepconv2_act",
    "ResNet50": "conv5_block3_out",
    "VGG16": "block5_conv3",
    "InceptionV3": "mixed10",
    "MobileNetV2": "out_relu",
    "EfficientNetB0": "top_activation",
    "ConvNeXtTiny": "convnext_tiny_stage_3_block_2_identity",
}


def reference_gradcam(model, layer_name: str, x: np.ndarray, class_id: int) -> np.ndarray:
    """The Keras tutorial's way: a sub-model to (layer output, predictions) and a GradientTape."""
    grad_model = keras.Model(model.inputs, [model.get_layer(layer_name).output, model.output])
    with tf.GradientTape() as tape:
        activation, predictions = grad_model(tf.constant(x), training=False)
        score = predictions[:, class_id]
    grads = tape.gradient(score, activation).numpy()
    return np.maximum(np.einsum("nc,nhwc->nhw", grads.mean(axis=(1, 2)), activation.numpy()), 0)


class Subclassed(keras.Model):
    """conv -> global average pool -> dense, as a subclassed model."""

    def __init__(self):
        super().__init__()
        self.conv = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")
        self.gap = keras.layers.GlobalAveragePooling2D(name="gap")
        self.fc = keras.layers.Dense(3, name="fc")

    def call(self, x):
        return self.fc(self.gap(self.conv(x)))


@pytest.fixture
def rng16(rng):
    return rng.standard_normal((2, 16, 16, 3)).astype(np.float32)


@pytest.mark.parametrize("name", sorted(APPLICATIONS))
def test_applications_default_layer_and_gradcam_equal_the_tape_formula(name, rng):
    keras.utils.set_random_seed(0)
    net = heatlens.load_model(f"keras:{name}", weights="random")
    size = net.preprocess.crop
    assert net.default_layer() == APPLICATIONS[name]
    x = rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32)
    result = heatlens.explain(heatlens.wrap(net.model, preprocess=None), x, target=7, upsample=False)
    expected = reference_gradcam(net.model, APPLICATIONS[name], x, 7)
    assert result.layer == APPLICATIONS[name]
    peak = max(float(expected.max()), 1e-12)
    np.testing.assert_allclose(result.maps[:, 0] / peak, expected / peak, rtol=1e-5, atol=1e-5)


def test_gradcam_formula_on_a_small_model_with_several_targets(rng16):
    keras.utils.set_random_seed(1)
    model = small_cnn()
    result = heatlens.explain(heatlens.wrap(model, preprocess=None), rng16, target=[1, 3], upsample=False)
    assert result.layer == "act2"
    for k, cls in enumerate([1, 3]):
        np.testing.assert_allclose(result.maps[:, k], reference_gradcam(model, "act2", rng16, cls), rtol=1e-5,
                                   atol=1e-6)


def test_top_k_targets_are_resolved_inside_the_graph(rng16):
    keras.utils.set_random_seed(2)
    model = small_cnn()
    result = heatlens.explain(heatlens.wrap(model, preprocess=None), rng16, target="top2", upsample=False)
    expected = np.argsort(-model.predict(rng16, verbose=0), axis=1)[:, :2]
    np.testing.assert_array_equal(result.targets.ids, expected)
    with pytest.raises(TargetError, match="top9"):
        heatlens.explain(heatlens.wrap(model, preprocess=None), rng16, target="top9")


def test_nested_backbone_layer(rng16):
    keras.utils.set_random_seed(3)
    backbone = small_cnn("backbone")
    features = keras.Model(backbone.inputs, backbone.get_layer("act2").output, name="features")
    inputs = keras.Input((16, 16, 3))
    outputs = keras.layers.Dense(5, name="head")(keras.layers.GlobalAveragePooling2D(name="pool")(features(inputs)))
    outer = keras.Model(inputs, outputs)
    net = heatlens.wrap(outer, preprocess=None)
    assert "features.conv2" in [info.name for info in net.layers()]
    assert net.default_layer() == "features.act2" or net.default_layer() == "features"
    result = heatlens.explain(net, rng16, target=2, layer="features.conv2", upsample=False)
    inner = keras.Model(features.inputs, [features.get_layer("conv2").output, features.output])
    with tf.GradientTape() as tape:
        conv2, feat = inner(tf.constant(rng16))
        score = outer.get_layer("head")(outer.get_layer("pool")(feat))[:, 2]
    grads = tape.gradient(score, conv2).numpy()
    expected = np.maximum(np.einsum("nc,nhwc->nhw", grads.mean(axis=(1, 2)), conv2.numpy()), 0)
    np.testing.assert_allclose(result.maps[:, 0], expected, rtol=1e-5, atol=1e-6)


def test_layer_called_twice_reports_calls_and_uses_the_last_call(rng16):
    keras.utils.set_random_seed(4)
    shared = keras.layers.Conv2D(3, 3, padding="same", name="shared")
    inputs = keras.Input((16, 16, 3))
    twice = shared(shared(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, name="fc")(keras.layers.GlobalAveragePooling2D()(twice)))
    net = heatlens.wrap(model, preprocess=None)
    assert net.layer("shared").calls == 2
    result = heatlens.explain(net, rng16, target=1, layer="shared", upsample=False)
    x = tf.constant(rng16)
    with tf.GradientTape() as tape:
        second = shared(shared(x))
        tape.watch(second)
        score = model.get_layer("fc")(tf.reduce_mean(second, axis=(1, 2)))[:, 1]
    grads = tape.gradient(score, second).numpy()
    expected = np.maximum(np.einsum("nc,nhwc->nhw", grads.mean(axis=(1, 2)), second.numpy()), 0)
    np.testing.assert_allclose(result.maps[:, 0], expected, rtol=1e-5, atol=1e-6)


def _untouched(model) -> bool:
    return all("call" not in layer.__dict__ for layer in model._flatten_layers(include_self=True))


def test_model_is_left_exactly_as_it_came(rng16):
    model = small_cnn()
    weights = [w.copy() for w in model.get_weights()]
    x = rng16.copy()
    net = heatlens.wrap(model, preprocess=None)
    heatlens.explain(net, rng16, target="top2")
    net.split("conv2").tail(net.trace(rng16, capture=["conv2"]).activations["conv2"], rng16)
    assert _untouched(model)
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights(), strict=True))
    assert not model.compiled
    np.testing.assert_array_equal(x, rng16)


def test_wrappers_are_removed_when_the_forward_fails(rng16):
    class Exploding(keras.layers.Layer):
        def call(self, x):
            if x.shape[0] == 2:
                raise ValueError("boom")
            return x

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(2, 3, name="conv")(inputs)
    x = Exploding(name="explode")(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    with pytest.raises(ModelError, match="boom"):
        heatlens.explain(heatlens.wrap(model, preprocess=None), rng16, layer="conv")
    assert _untouched(model)


def test_split_reproduces_the_forward(rng16):
    model = small_cnn()
    net = heatlens.wrap(model, preprocess=None)
    parts = net.split("conv2")
    act = net.trace(rng16, capture=["conv2"]).activations["conv2"]
    np.testing.assert_allclose(parts.tail(act, rng16), net.predict(rng16), atol=1e-5)
    bias_only = np.tile(model.get_layer("fc").bias.numpy(), (2, 1))
    np.testing.assert_allclose(parts.tail(np.zeros_like(act), rng16), bias_only, atol=1e-6)


def test_layer_errors(rng16):
    net = heatlens.wrap(small_cnn(), preprocess=None)
    with pytest.raises(LayerError, match=r"unknown layer 'conv3'.*'conv1'"):
        heatlens.explain(net, rng16, layer="conv3")
    with pytest.raises(LayerError, match="not a spatial"):
        heatlens.explain(net, rng16, layer="fc")


def test_an_unsupported_backend_gets_a_one_line_message_naming_the_supported_ones():
    code = (
        "import keras, heatlens, numpy as np\n"
        "i = keras.Input((8, 8, 3)); x = keras.layers.Conv2D(2, 3)(i)\n"
        "m = keras.Model(i, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))\n"
        "try:\n"
        "    heatlens.explain(m, np.zeros((1, 8, 8, 3), np.float32))\n"
        "except heatlens.ModelError as e:\n"
        "    print(e)\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.stdout.strip().startswith("heatlens explains Keras models on the tensorflow or jax backend; this "
                                         "process runs Keras on 'torch'"), out.stderr[-2000:]
    assert out.stdout.count("\n") == 1


def test_sequential_and_subclassed_models(rng16):
    keras.utils.set_random_seed(6)
    sequential = keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv"),
        keras.layers.GlobalAveragePooling2D(name="gap"),
        keras.layers.Dense(3, name="fc"),
    ])

    sequential(rng16)
    subclassed = Subclassed()
    subclassed(rng16)
    subclassed.set_weights(sequential.get_weights())
    seq = heatlens.explain(heatlens.wrap(sequential, preprocess=None), rng16, target=1, upsample=False)
    sub = heatlens.explain(heatlens.wrap(subclassed, preprocess=None), rng16, target=1, upsample=False)
    assert seq.layer == sub.layer == "conv"
    np.testing.assert_allclose(sub.maps, seq.maps, rtol=1e-5, atol=1e-6)
    with tf.GradientTape() as tape:
        act = subclassed.conv(tf.constant(rng16))
        score = subclassed.fc(subclassed.gap(act))[:, 1]
    grads = tape.gradient(score, act).numpy()
    expected = np.maximum(np.einsum("nc,nhwc->nhw", grads.mean(axis=(1, 2)), act.numpy()), 0)
    np.testing.assert_allclose(seq.maps[:, 0], expected, rtol=1e-5, atol=1e-6)


def test_models_that_cannot_be_traced_run_eagerly(rng16, caplog):
    class Branchy(Subclassed):
        """Python control flow on a tensor's value: fine eagerly, impossible inside tf.function."""

        def call(self, x):
            a = self.conv(x)
            if float(tf.reduce_max(a)) > 0:
                a = a * 2.0
            return self.fc(self.gap(a))

    keras.utils.set_random_seed(8)
    model = Branchy()
    model(rng16)
    result = heatlens.explain(heatlens.wrap(model, preprocess=None), rng16, layer="conv", target=2, upsample=False)
    with tf.GradientTape() as tape:
        act = model.conv(tf.constant(rng16))
        tape.watch(act)
        score = model.fc(model.gap(act * 2.0))[:, 2]
    grads = tape.gradient(score, act).numpy()
    expected = np.maximum(np.einsum("nc,nhwc->nhw", grads.mean(axis=(1, 2)), act.numpy()), 0)
    np.testing.assert_allclose(result.maps[:, 0], expected, rtol=1e-5, atol=1e-6)
    assert "cannot be traced by tf.function" in caplog.text


def test_several_methods_in_a_row_raise_no_retracing_warning(rng16, caplog):
    net = heatlens.wrap(small_cnn("several"), preprocess=None)
    for method in ("gradcam", "layercam", "gradcam_plusplus", "saliency", "guided_backprop", "deconvnet",
                   "gradient_x_input", "integrated_gradients"):
        heatlens.explain(net, rng16, method=method, target="top2")
    assert len(net._steps) >= 6
    assert "retracing" not in caplog.text


class _DropsRows(keras.Model):
    """Returns one row fewer than it was given."""

    def __init__(self) -> None:
        super().__init__(name="drops_rows")
        self.inner = small_cnn("inner")

    def call(self, x):
        return self.inner(x)[:-1]


class _Asserts(keras.Model):
    def __init__(self) -> None:
        super().__init__(name="asserts")
        self.conv = keras.layers.Conv2D(2, 3, name="conv")

    def call(self, x):
        raise AssertionError("only 99 px\nsecond line")


def test_ids_are_range_checked_before_the_int32_cast(rng16):
    net = heatlens.wrap(small_cnn(), preprocess=None)
    x = rng16[:1]
    with pytest.raises(TargetError, match="class id 4294967297 is out of range"):
        net.trace(x, np.array([[2**32 + 1]]), capture=["conv2"], wrt=["conv2"])
    with pytest.raises(TargetError, match=r"shape \(2, 1\) for 1 images"):
        net.trace(x, np.array([[1], [2]]), capture=["conv2"], wrt=["conv2"])


def test_wrong_row_counts_and_a_models_own_assertions_are_model_errors(rng16):
    x = rng16
    with pytest.raises(ModelError, match=r"returned \d rows of scores for \d inputs; it must return one row per"):
        heatlens.explain(heatlens.wrap(_DropsRows(), preprocess=None), x, method="gradcam", layer="inner.conv2")
    with pytest.raises(ModelError, match=r"only 99 px$"):
        heatlens.explain(heatlens.wrap(_Asserts(), preprocess=None), x, method="occlusion")


def test_ablationcam_fast_tail_leaves_the_layers_graph_nodes(rng16):
    model = small_cnn()

    def nodes():
        return {layer.name: (len(layer._inbound_nodes), len(layer._outbound_nodes)) for layer in model.layers}

    before = nodes()
    net = heatlens.wrap(model, preprocess=None)
    result = heatlens.explain(net, rng16, method="ablationcam", layer="conv2", progress=False)
    assert net._rests["conv2"] is not None and nodes() == before
    full_passes = heatlens.wrap(model, preprocess=None)
    full_passes._rests["conv2"] = None
    reference = heatlens.explain(full_passes, rng16, method="ablationcam", layer="conv2", progress=False)
    np.testing.assert_allclose(result.maps, reference.maps, rtol=1e-5, atol=1e-6)
