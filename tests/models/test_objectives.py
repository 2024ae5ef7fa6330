"""Trace objectives as types: each one's gradient against torch autograd on the same model, computed here."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from toy_models import TinyCNN

from heatlens import MethodError
from heatlens.models.adapters.torch import TorchNetwork
from heatlens.models.objectives import ChannelMax, ChannelMean, Custom, Softmax


@pytest.fixture
def setup(rng):
    torch.manual_seed(0)
    model = TinyCNN().eval()
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    return model, TorchNetwork(model, input_size=(8, 8)), x


def _input_gradient(model, x, score):
    xt = torch.from_numpy(x.transpose(0, 3, 1, 2)).requires_grad_()
    (grad,) = torch.autograd.grad(score(model, xt).sum(), [xt])
    return grad.numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize(("objective", "score"), [
    (Softmax(), lambda m, xt: torch.softmax(m(xt), dim=1)[:, 1]),
    (ChannelMean("features.2"), lambda m, xt: m.features[:3](xt)[:, 1].mean(dim=(1, 2))),
    (ChannelMax("features.2"), lambda m, xt: m.features[:3](xt)[:, 1].amax(dim=(1, 2))),
    (Custom(lambda out: out[:, 2:].sum(dim=1)), lambda m, xt: m(xt)[:, 2:].sum(dim=1)),
])
def test_each_objective_differentiates_what_it_names(setup, objective, score):
    model, net, x = setup
    target = 0 if isinstance(objective, Custom) else 1
    trace = net.trace(x, np.full((2, 1), target), wrt=["input"], objective=objective)
    expected = _input_gradient(model, x, score)
    np.testing.assert_allclose(trace.gradients["input"][:, 0], expected, rtol=1e-4, atol=1e-6)


def test_objectives_are_types_not_strings(setup):
    _, net, x = setup
    with pytest.raises(MethodError, match="objective must be Logits"):
        net.trace(x, np.zeros((2, 1), np.int64), wrt=["input"], objective="softmax")
