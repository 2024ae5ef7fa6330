"""The randomisation primitive of the sanity checks: `parameter_layers()` and `randomised(layers, seed)` give a new
Network over a copy with those layers re-initialised; the user's model, its modes, hooks and the global random
state stay exactly as they were."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import heatlens
from heatlens.errors import LayerError, MethodError

torch = pytest.importorskip("torch")
from toy_models import TinyCNN, count_hooks


def snapshot(module: torch.nn.Module) -> dict:
    return {"state": {k: v.clone() for k, v in module.state_dict().items()},
            "grad": {k: p.requires_grad for k, p in module.named_parameters()},
            "training": {k: m.training for k, m in module.named_modules()}, "hooks": count_hooks(module)}


def same(module: torch.nn.Module, before: dict) -> bool:
    now = snapshot(module)
    return (now["state"].keys() == before["state"].keys()
            and all(torch.equal(now["state"][k], before["state"][k]) for k in now["state"])
            and now["grad"] == before["grad"] and now["training"] == before["training"]
            and now["hooks"] == before["hooks"])


@pytest.fixture
def tiny() -> tuple[torch.nn.Module, heatlens.models.Network]:
    torch.manual_seed(0)
    model = TinyCNN()
    return model, heatlens.wrap(model, preprocess=None, input_size=(16, 16))


def test_torch_parameter_layers_are_in_execution_order(tiny):
    _, network = tiny
    assert network.parameter_layers() == ["features.0", "features.2", "fc"]


def test_torch_randomised_resets_a_copy_as_quantus_does(tiny):
    model, network = tiny
    model.train()
    model.features[0].weight.requires_grad_(False)
    before = snapshot(model)
    rng_state = torch.get_rng_state()
    result = network.randomised(["fc", "features.2"], seed=7)
    assert same(model, before)
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert result is not network and result.module is not model
    expected = copy.deepcopy(model)
    for name in ("fc", "features.2"):  # Quantus' get_random_layer_generator: manual_seed(seed + 1) per layer
        torch.manual_seed(8)
        dict(expected.named_modules())[name].reset_parameters()
    for (name, ours), theirs in zip(result.module.state_dict().items(), expected.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs), name
    assert torch.equal(result.module.features[0].weight, model.features[0].weight)
    assert not torch.equal(result.module.fc.weight, model.fc.weight)
    assert not result.module.features[0].weight.requires_grad and result.module.training


def test_torch_randomised_network_predicts_differently_and_keeps_the_original(tiny):
    _, network = tiny
    x = np.random.default_rng(0).uniform(0, 1, (2, 16, 16, 3)).astype(np.float32)
    original = network.predict(x)
    result = network.randomised(["fc"], seed=0)
    assert not np.allclose(result.predict(x), original)
    np.testing.assert_array_equal(network.predict(x), original)
    np.testing.assert_array_equal(result.predict(x), network.randomised(["fc"], seed=0).predict(x))
    assert not np.allclose(network.randomised(["fc"], seed=1).predict(x), result.predict(x))
    assert heatlens.explain(result, x, "gradcam").maps.shape == (2, 1, 16, 16)


def test_a_layer_is_randomised_the_same_whatever_else_is(tiny):
    _, network = tiny
    alone = network.randomised(["fc"], seed=3).module.fc.weight
    together = network.randomised(["features.0", "fc"], seed=3).module.fc.weight
    assert torch.equal(alone, together)


def test_unknown_or_parameterless_layers_are_refused(tiny):
    _, network = tiny
    with pytest.raises(LayerError, match="Did you mean: 'fc'"):
        network.randomised(["fcc"])
    with pytest.raises(LayerError, match="no layer with parameters"):
        network.randomised(["features.1"])  # a ReLU
    with pytest.raises(LayerError, match="a list of layer names"):
        network.randomised("fc")


def test_predict_functions_have_no_weights_to_randomise():
    network = heatlens.wrap(lambda x: np.zeros((len(x), 2)), preprocess=None)
    with pytest.raises(MethodError, match="black-box predict function: sanity checks"):
        network.parameter_layers()
    with pytest.raises(MethodError, match="black-box predict function: sanity checks"):
        network.randomised(["fc"])


def test_keras_randomised_redraws_a_clone_from_the_layers_initializers():
    keras = pytest.importorskip("keras")
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3, name="conv", bias_initializer="ones")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="fc")(x))
    rng = np.random.default_rng(0)
    model.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in model.get_weights()])
    before = [w.copy() for w in model.get_weights()]
    network = heatlens.wrap(model, preprocess=None)
    assert network.parameter_layers() == ["conv", "bn", "fc"]
    batch = rng.uniform(0, 1, (2, 12, 12, 3)).astype(np.float32)
    original = network.predict(batch)

    result = network.randomised(["fc", "bn"], seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before, strict=True))
    np.testing.assert_array_equal(network.predict(batch), original)
    assert result.model is not model
    clone = {layer.name: layer.get_weights() for layer in result.model.layers}
    np.testing.assert_array_equal(clone["conv"][0], before[0])
    np.testing.assert_array_equal(clone["conv"][1], before[1])
    gamma, beta, mean, variance = clone["bn"]  # BatchNormalization's initializers: ones, zeros, zeros, ones
    assert (gamma == 1).all() and (beta == 0).all() and (mean == 0).all() and (variance == 1).all()
    kernel, bias = clone["fc"]
    limit = np.sqrt(6 / (4 + 3))  # Dense: glorot_uniform kernel, zeros bias
    assert not np.array_equal(kernel, before[-2]) and np.abs(kernel).max() <= limit and (bias == 0).all()
    assert not np.allclose(result.predict(batch), original)
    again = network.randomised(["fc"], seed=5).model.get_layer("fc").get_weights()[0]
    np.testing.assert_array_equal(again, kernel)
    other = network.randomised(["fc"], seed=6).model.get_layer("fc").get_weights()[0]
    assert not np.array_equal(other, kernel)


def test_a_keras_model_that_cannot_be_cloned_is_refused_untouched():
    keras = pytest.importorskip("keras")
    from heatlens.errors import ModelError

    class Subclassed(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.conv = keras.layers.Conv2D(4, 3, name="conv")
            self.pool = keras.layers.GlobalAveragePooling2D()
            self.fc = keras.layers.Dense(3, name="fc")

        def call(self, x):
            return self.fc(self.pool(self.conv(x)))

    model = Subclassed()
    model(np.zeros((1, 12, 12, 3), np.float32))
    before = [w.copy() for w in model.get_weights()]
    network = heatlens.wrap(model, preprocess=None, input_size=(12, 12))
    assert network.parameter_layers() == ["conv", "fc"]
    with pytest.raises(ModelError, match="cannot be cloned to randomise its weights"):
        network.randomised(["fc"])
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before, strict=True))
