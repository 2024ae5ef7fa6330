"""Twin networks for the LRP parity tests, one in torch and one in Keras with the same weights: a small VGG-style net
(convolutions with a batch norm to merge, max and average pools, dense layers with fused ReLUs in Keras) and the
bundled EfficientNet-Lite0 in both builds. Import only after importorskip("torch", "keras").

The torch build pads its stride-2 convolutions like TensorFlow's 'same', with an explicit F.pad where the padding
is asymmetric (even sizes: 224 px) and inside the convolution at odd sizes; Keras always pads inside. The torch
adapter treats a zero F.pad before a convolution as its padding, so the rules see the same inputs at both sizes:
the twins are compared at 224 px (the asymmetric F.pad) and at 225 px (padding inside the convolution).
"""

from __future__ import annotations

import copy
import dataclasses

import keras
import numpy as np
import torch
from torch import nn

import heatlens
from heatlens.methods.lrp_rules import Epsilon, ZBox

COMPOSITES = ("epsilon_plus", "epsilon_gamma_box", "epsilon_alpha2_beta1", "epsilon_plus_flat")
# (torch mapping, Keras mapping): by layer names (first match wins), by layer kinds, and with rule objects
MAPPINGS = {
    "names": ({"conv1": "wsquare", "conv*": "gamma", "fc1": "alpha2_beta1", "fc*": "epsilon"},
              {"conv1": "wsquare", "conv*": "gamma", "fc1": "alpha2_beta1", "fc*": "epsilon"}),
    "kinds": ({"Conv2d": "zplus", "Linear": "epsilon"}, {"Conv2D": "zplus", "Dense": "epsilon"}),
    "rule objects": ({"conv1": ZBox(low=[-1.0] * 3, high=[1.0] * 3), "*": Epsilon(epsilon=0.01)},  # lists: unhashable
                     {"conv1": ZBox(low=[-1.0] * 3, high=[1.0] * 3), "*": Epsilon(epsilon=0.01)}),
}
SIZE = 16


class Vgg(nn.Module):
    """conv-ReLU, conv-BN-ReLU, max pool, conv-ReLU, average pool, flatten, dense-ReLU, dense."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8, eps=1e-3)
        self.conv3 = nn.Conv2d(8, 12, 3, padding=1)
        self.fc1 = nn.Linear(12 * 4 * 4, 16)
        self.fc2 = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv1(x))
        h = nn.functional.max_pool2d(torch.relu(self.bn2(self.conv2(h))), 2)
        h = nn.functional.avg_pool2d(torch.relu(self.conv3(h)), 2)
        return self.fc2(torch.relu(self.fc1(torch.flatten(h, 1))))


def vgg_pair() -> tuple[heatlens.models.Network, heatlens.models.Network]:
    """(torch network, Keras network) of the VGG-style net with the same weights and batch-norm statistics."""
    torch.manual_seed(0)
    model = Vgg().eval()
    with torch.no_grad():
        model.bn2.running_mean.uniform_(-0.5, 0.5)
        model.bn2.running_var.uniform_(0.5, 2.0)
        model.bn2.weight.uniform_(0.5, 1.5)
        model.bn2.bias.uniform_(-0.2, 0.2)
    inputs = keras.Input((SIZE, SIZE, 3))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    h = keras.layers.Conv2D(8, 3, padding="same", name="conv2")(h)
    h = keras.layers.BatchNormalization(epsilon=1e-3, name="bn2")(h)
    h = keras.layers.MaxPooling2D(2)(keras.layers.ReLU()(h))
    h = keras.layers.AveragePooling2D(2)(keras.layers.Conv2D(12, 3, padding="same", activation="relu",
                                                             name="conv3")(h))
    h = keras.layers.Flatten()(keras.layers.Permute((3, 1, 2))(h))  # torch's channels-first flattening
    h = keras.layers.Dense(16, activation="relu", name="fc1")(h)
    twin = keras.Model(inputs, keras.layers.Dense(5, name="fc2")(h), name="vgg_twin")
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    for name in ("conv1", "conv2", "conv3"):
        twin.get_layer(name).set_weights([state[f"{name}.weight"].transpose(2, 3, 1, 0), state[f"{name}.bias"]])
    twin.get_layer("bn2").set_weights([state[f"bn2.{k}"] for k in ("weight", "bias", "running_mean", "running_var")])
    for name in ("fc1", "fc2"):
        twin.get_layer(name).set_weights([state[f"{name}.weight"].T, state[f"{name}.bias"]])
    return heatlens.wrap(model, preprocess=None), heatlens.wrap(twin, preprocess=None)


def vgg_inputs() -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)


def lite_pair(crop: int = 224) -> tuple[heatlens.models.Network, heatlens.models.Network]:
    """(torch, Keras) EfficientNet-Lite0 from the zoo, both preparing photos as `crop` px crops (see above)."""
    pair = []
    for framework in ("torch", "keras"):
        net = copy.copy(heatlens.load_model("efficientnet_lite0", framework=framework))
        net.preprocess = dataclasses.replace(net.preprocess, resize=round(crop * 8 / 7), crop=crop)
        pair.append(net)
    return pair[0], pair[1]


def assert_same_relevance(ours: heatlens.Explanation, theirs: heatlens.Explanation) -> None:
    """Equal attributions to 1e-4 of their peak, and the same conservation extras."""
    peak = np.abs(theirs.attributions).max()
    assert peak > 0
    assert np.abs(ours.attributions - theirs.attributions).max() <= 1e-4 * peak
    for key in ("relevance_sum", "score", "absorbed"):
        np.testing.assert_allclose(ours.extras[key], theirs.extras[key], rtol=1e-4,
                                   atol=1e-4 * np.abs(theirs.extras["score"]).max())


class Mixed(nn.Module):
    """conv-sigmoid (keeps its gradient), depthwise conv-SiLU, batch norm after the activation (not merged),
    flatten, dense."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.dw = nn.Conv2d(6, 6, 3, stride=2, padding=1, groups=6)
        self.bn = nn.BatchNorm2d(6, eps=1e-3)
        self.fc = nn.Linear(6 * 4 * 4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn(nn.functional.silu(self.dw(torch.sigmoid(self.conv1(x)))))
        return self.fc(torch.flatten(h, 1))


MIXED_MAPPINGS = (({"dw": "alpha2_beta1", "Conv2d": "zplus", "Linear": "epsilon"},
                   {"DepthwiseConv2D": "alpha2_beta1", "Conv2D": "zplus", "Dense": "epsilon"}),
                  ({"*": "gamma"}, {"*": "gamma"}))


def mixed_pair() -> tuple[heatlens.models.Network, heatlens.models.Network]:
    """(torch, Keras) networks of the Mixed net on 8x8 inputs with the same weights (Keras: fused activations,
    a DepthwiseConv2D with its bias)."""
    torch.manual_seed(2)
    model = Mixed().eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    inputs = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(6, 3, padding="same", activation="sigmoid", name="conv1")(inputs)
    h = keras.layers.ZeroPadding2D(1)(h)  # torch's symmetric padding at stride 2 ('same' would pad one side)
    h = keras.layers.DepthwiseConv2D(3, 2, activation="silu", name="dw")(h)
    h = keras.layers.BatchNormalization(epsilon=1e-3, name="bn")(h)
    h = keras.layers.Flatten()(keras.layers.Permute((3, 1, 2))(h))
    twin = keras.Model(inputs, keras.layers.Dense(4, name="fc")(h), name="mixed_twin")
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    twin.get_layer("conv1").set_weights([state["conv1.weight"].transpose(2, 3, 1, 0), state["conv1.bias"]])
    twin.get_layer("dw").set_weights([state["dw.weight"].transpose(2, 3, 0, 1), state["dw.bias"]])
    twin.get_layer("bn").set_weights([state[f"bn.{k}"] for k in ("weight", "bias", "running_mean", "running_var")])
    twin.get_layer("fc").set_weights([state["fc.weight"].T, state["fc.bias"]])
    return heatlens.wrap(model, preprocess=None), heatlens.wrap(twin, preprocess=None)
