"""Custom scores on Keras models: one output of a multi-output model, and sums of classes equal to torch's."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

import heatlens
from heatlens import ModelError


def two_heads(as_dict: bool) -> keras.Model:
    """A shared trunk and two Dense heads, returned as a dict or a list."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", strides=2, activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    species, pose = keras.layers.Dense(4, name="species")(x), keras.layers.Dense(3, name="pose")(x)
    return keras.Model(inputs, {"species": species, "pose": pose} if as_dict else [species, pose])


@pytest.mark.parametrize("as_dict", [True, False])
@pytest.mark.parametrize(("method", "options"), [
    ("gradcam", {"layer": "conv2"}), ("scorecam", {"layer": "conv2"}), ("ablationcam", {"layer": "conv2"}),
    ("saliency", {}), ("occlusion", {"window": 4, "stride": 4}),
])
def test_one_output_of_a_multi_output_model_equals_that_output_alone(rng, as_dict, method, options):
    model = two_heads(as_dict)
    x = rng.standard_normal((2, 16, 16, 3)).astype(np.float32)
    pick = (lambda out: out["pose"]) if as_dict else (lambda out: out[1])
    ours = heatlens.explain(heatlens.wrap(model, preprocess=None), x, method=method, target=1, score_fn=pick,
                            **options)
    alone = keras.Model(model.input, model.get_layer("pose").output)
    reference = heatlens.explain(heatlens.wrap(alone, preprocess=None), x, method=method, target=1, **options)
    np.testing.assert_allclose(ours.maps, reference.maps, rtol=1e-4, atol=1e-6 * np.abs(reference.maps).max())
    np.testing.assert_allclose(ours.logits, reference.logits, rtol=1e-5)


def test_views_compile_their_own_steps_and_leave_the_network_as_it_was(rng):
    net = heatlens.wrap(two_heads(False), preprocess=None, classes=["a", "b", "c", "d"])
    x = rng.standard_normal((1, 16, 16, 3)).astype(np.float32)
    first = heatlens.explain(net, x, layer="conv2", target=0, upsample=False)
    second = heatlens.explain(net, x, layer="conv2", target=0, score_fn=lambda out: out[1], upsample=False)
    again = heatlens.explain(net, x, layer="conv2", target=0, upsample=False)
    assert not np.allclose(first.maps, second.maps)
    np.testing.assert_array_equal(first.maps, again.maps)
    assert net.score_function is None and again.targets.names == [["a"]]


def test_a_sum_of_classes_equals_torch(lite0, cat):
    lite_keras = heatlens.load_model("efficientnet_lite0", framework="keras")
    theirs = heatlens.explain(lite0, cat, upsample=False, score_fn=lambda out: out[:, 281:286].sum(dim=1))
    ours = heatlens.explain(lite_keras, cat, upsample=False,
                            score_fn=lambda out: keras.ops.sum(out[:, 281:286], axis=1))
    assert np.abs(ours.maps - theirs.maps).max() / theirs.maps.max() < 1e-4
    np.testing.assert_allclose(ours.logits, theirs.logits, rtol=1e-4)


def test_score_functions_must_return_tensors(rng):
    net = heatlens.wrap(two_heads(False), preprocess=None)
    x = rng.standard_normal((1, 16, 16, 3)).astype(np.float32)
    with pytest.raises(ModelError, match=r"must return a tensorflow.*Tensor of shape \(N,\) or \(N, K\)"):
        heatlens.explain(net, x, layer="conv2", score_fn=lambda out: np.zeros((1, 2)))
