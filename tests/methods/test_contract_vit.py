"""The method contract (tests/methods/test_contract.py) for the vision-transformer methods, which serve only
models with attention layers: kept on a tiny torch ViT, and every other kind of model refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
from test_contract import SIZE, check_contract

import heatlens
from heatlens.methods import METHODS

ATTENTION_METHODS = ("attention_rollout", "chefer")


@pytest.fixture
def x(rng):
    return rng.uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)


def test_the_attention_methods_are_registered():
    assert set(ATTENTION_METHODS) <= set(METHODS)


@pytest.mark.parametrize("method", ATTENTION_METHODS)
def test_torch_vit(method, x):
    pytest.importorskip("torch")
    from toy_models import count_hooks
    from toy_vit import tiny_vit

    model = tiny_vit(size=SIZE).train()
    net = heatlens.wrap(model, preprocess=None)

    def state():
        weights = tuple(float(p.detach().double().sum()) for p in model.parameters())
        flags = tuple((p.requires_grad, p.grad is None) for p in model.parameters())
        own = tuple(sorted(vars(m).keys() & {"forward"}) for m in model.modules())
        return count_hooks(model), model.training, flags, weights, own, [name for name, _ in model.named_modules()]

    check_contract(net, x, method, state)


@pytest.mark.parametrize("method", ATTENTION_METHODS)
def test_keras_models_are_refused(method, x):
    keras = pytest.importorskip("keras")
    inputs = keras.Input((SIZE, SIZE, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4, name="fc")(keras.layers.GlobalAveragePooling2D()(h)))
    with pytest.raises(heatlens.MethodError, match="has no attention layers heatlens can read") as caught:
        heatlens.explain(heatlens.wrap(model, preprocess=None), x, method=method)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("method", ATTENTION_METHODS)
def test_predict_functions_are_refused(method, x):
    def predict(batch: np.ndarray) -> np.ndarray:
        return batch.reshape(len(batch), -1)[:, :4]

    with pytest.raises(heatlens.MethodError, match="predict has no attention layers heatlens can read") as caught:
        heatlens.explain(heatlens.wrap(predict, preprocess=None), x, method=method)
    assert "\n" not in str(caught.value)
