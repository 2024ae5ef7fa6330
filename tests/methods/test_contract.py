"""The contract every registered method keeps on every adapter that can serve it: maps (N, K, H, W) that are
finite, the same again with the same seed, the input array untouched, and the model left as it came (no
hooks, mode, gradients or weights changed). A method added to the registry is covered here automatically."""

from __future__ import annotations

import numpy as np
import pytest
from attention_methods import ATTENTION_ONLY

import heatlens
from heatlens.methods import METHODS

# Small settings so every method runs in well under a second on the tiny models.
FAST = {
    "scorecam": {"batch_size": 4},
    "ablationcam": {"batch_size": 4},
    "smoothgrad": {"n_samples": 3, "seed": 0},
    "integrated_gradients": {"steps": 4},
    "expected_gradients": {"n_samples": 3, "seed": 0},
    "occlusion": {"window": 6, "stride": 6, "batch_size": 8},
    "rise": {"n_masks": 12, "cells": 4, "seed": 0, "batch_size": 8},
    "lime": {"num_samples": 24, "segmentation": "slic", "seed": 0, "batch_size": 8},
    "shap_partition": {"max_evals": 40, "batch_size": 8},
}
SIZE = 24


def options(method: str, x: np.ndarray) -> dict:
    extra = dict(FAST.get(method, {}))
    if method == "expected_gradients":
        extra["background"] = x[::-1] * 0.5  # not the images themselves, whose attributions are 0
    return extra


@pytest.fixture
def x(rng):
    return rng.uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)


def check_contract(net, x: np.ndarray, method: str, state) -> None:
    """Run `method` twice on `net` and check the contract; `state()` snapshots what the model must keep."""
    before, kept = x.copy(), state()
    first = heatlens.explain(net, x, method=method, target=[0, 2], **options(method, x))
    second = heatlens.explain(net, x, method=method, target=[0, 2], **options(method, x))
    assert first.maps.shape == (2, 2, SIZE, SIZE)
    assert first.maps.dtype == np.float32 and np.isfinite(first.maps).all()
    assert np.abs(first.maps).max() > 0, f"{method} gave an all-zero map"
    np.testing.assert_array_equal(first.maps, second.maps)
    np.testing.assert_array_equal(first.targets.ids, [[0, 2], [0, 2]])
    np.testing.assert_array_equal(x, before)
    assert state() == kept


ON_CNNS = sorted(set(METHODS) - ATTENTION_ONLY)  # the attention methods: test_contract_vit.py


@pytest.mark.parametrize("method", ON_CNNS)
def test_torch(method, x):
    torch = pytest.importorskip("torch")
    from toy_models import TinyCNN, count_hooks

    torch.manual_seed(0)
    model = TinyCNN(classes=4, width=8).train()
    model.fc.weight.grad = None
    net = heatlens.wrap(model, preprocess=None)

    def state():
        weights = tuple(float(p.detach().double().sum()) for p in model.parameters())
        flags = tuple((p.requires_grad, p.grad is None) for p in model.parameters())
        return count_hooks(model), model.training, flags, weights

    check_contract(net, x, method, state)


@pytest.mark.parametrize("method", ON_CNNS)
def test_keras(method, x):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    h = keras.layers.Conv2D(8, 3, padding="same", strides=2, name="conv2")(h)
    h = keras.layers.ReLU(name="act2")(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    model = keras.Model(inputs, keras.layers.Dense(4, name="fc")(h))
    net = heatlens.wrap(model, preprocess=None)

    def state():
        patched = tuple((vars(layer).get("call"), getattr(layer, "activation", None)) for layer in model.layers)
        return patched, tuple(float(np.asarray(w, np.float64).sum()) for w in model.get_weights())

    check_contract(net, x, method, state)


@pytest.mark.parametrize("method", sorted(name for name, info in METHODS.items()
                                          if not info.needs_gradients and not info.uses_layer
                                          and name not in ATTENTION_ONLY))
def test_predict_function(method, x):
    weights = np.random.default_rng(1).standard_normal((SIZE * SIZE * 3, 4)).astype(np.float32)
    net = heatlens.wrap(lambda batch: np.tanh(batch.reshape(len(batch), -1) @ weights / 10), preprocess=None)
    check_contract(net, x, method, lambda: float(weights.sum()))


@pytest.mark.parametrize("method", sorted(name for name, info in METHODS.items()
                                          if (info.needs_gradients or info.uses_layer)
                                          and name not in ATTENTION_ONLY))
def test_predict_functions_refuse_methods_that_need_a_network(method, x):
    net = heatlens.wrap(lambda batch: batch.reshape(len(batch), -1)[:, :4], preprocess=None)
    with pytest.raises(heatlens.MethodError, match="black-box predict function"):
        heatlens.explain(net, x, method=method, **options(method, x))
