"""Layers by position, as the tutorials write them (`model.layers[7].input`): each resolves to the name of
the layer whose output it is, checked against Keras' own `model.layers[k].input` and by hand for torch."""

from __future__ import annotations

import numpy as np
import pytest

from heatlens import LayerError
from heatlens.models.base import layer_position

torch = pytest.importorskip("torch")

from toy_models import TinyCNN

import heatlens
from heatlens.models.adapters import torch_positions


@pytest.mark.parametrize(("text", "position"), [
    ("layers[7].input", (7, "input")), ("layers[-2].output", (-2, "output")), ("model.layers[3].input", (3, "input")),
    ("layers[ 4 ]", (4, "output")), (" layers[0].output ", (0, "output")),
    ("layers.7", None), ("layers[7].inputs", None), ("features", None), ("layers[x]", None), (7, None),
])
def test_positions_are_read_as_the_tutorials_write_them(text, position):
    assert layer_position(text) == position


class SideBranch(torch.nn.Module):
    """Children stem, side, main; forward: main(stem(x)) + side(stem(x)), so main's input is not layers[1]."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(inplace=True))
        self.side = torch.nn.Conv2d(4, 2, 1)
        self.main = torch.nn.Conv2d(4, 2, 1)
        self.head = torch.nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stem(x)
        return self.head((self.main(s) + self.side(s)).mean(dim=(2, 3)))


def _at(module: torch.nn.Module, index: int, end: str) -> str:
    with torch.no_grad():
        return torch_positions.layer_at(module, index, end, lambda: module(torch.zeros(1, 3, 8, 8)))


def test_torch_positions_follow_named_children_and_the_forward_pass():
    net = SideBranch().eval()
    assert [_at(net, k, "output") for k in range(4)] == ["stem", "side", "main", "head"]
    assert _at(net, 2, "input") == "stem" and _at(net, 1, "input") == "stem" and _at(net, -3, "input") == "stem"
    assert _at(net.stem, 1, "input") == "0"
    inplace = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(inplace=True), torch.nn.Conv2d(4, 4, 3))
    assert _at(inplace, 2, "input") == "1"  # the in-place ReLU's output, though it is the conv's tensor
    with pytest.raises(LayerError, match=r"the input of layers\[0\] \('stem'\) is the model's own input"):
        _at(net, 0, "input")
    with pytest.raises(LayerError, match=r"layers\[3\] \('head'\) is computed by the model's forward code"):
        _at(net, 3, "input")
    with pytest.raises(LayerError, match=r"layers\[4\] is out of range: SideBranch has 4 top-level layers"):
        _at(net, 4, "output")


def test_torch_positions_in_explain_report_the_resolved_name(rng):
    torch.manual_seed(0)
    network = heatlens.wrap(TinyCNN(classes=3), preprocess=None)
    x = rng.standard_normal((1, 8, 8, 3)).astype(np.float32)
    named = heatlens.explain(network, x, method="gradcam", layer="features", target=1)
    placed = heatlens.explain(network, x, method="gradcam", layer="layers[1].input", target=1)
    assert placed.layer == "features"
    np.testing.assert_array_equal(placed.maps, named.maps)
    assert network.resolve_layer(["layers[0].output", "features.2"], (8, 8, 3)) == ["features", "features.2"]
    with pytest.raises(LayerError, match="is a layer position, not a name"):
        network.layer("layers[0].output", (8, 8, 3))
    assert list(heatlens.activations(network, x, layers="layers[0].output").arrays) == ["features"]
    grown = heatlens.filters(network, "layers[1].input", channels=[0], steps=2, size=8)
    assert grown.details["layer"] == "features" and "features_channel_0" in grown.pictures


def test_networks_without_a_position_list_refuse_positions():
    box = heatlens.wrap(lambda x: np.zeros((len(x), 2), np.float32), preprocess=None)
    with pytest.raises(LayerError, match=r"cannot find layers by position \(layers\[7\]\.input\)"):
        box.layer_at(7, "input")
