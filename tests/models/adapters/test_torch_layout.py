"""Channels-last torch layers (Swin's stages, ConvNeXt's inner blocks): the probe reads their layout, and their
activations, gradients and injected values cross the boundary channels-last like every other layer's."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import heatlens
from heatlens.models.base import CHANNELS_FIRST, CHANNELS_LAST


class ChannelsLast(nn.Module):
    """A conv stem (NCHW), then channels-last blocks (N, H, W, C) after a functional permute, as Swin computes."""

    def __init__(self, channels: int = 6, norm: bool = True) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, stride=2, padding=1)
        self.norm = nn.LayerNorm(channels) if norm else nn.Identity()
        self.mix = nn.Linear(channels, channels)
        self.act = nn.GELU()
        self.head = nn.Linear(channels, 4)

    def forward(self, x):
        hidden = self.act(self.mix(self.norm(self.stem(x).permute(0, 2, 3, 1))))
        return self.head(hidden.mean(dim=(1, 2)))


def _gradcam_by_hand(model, layer, x, class_id):
    """Grad-CAM from the layer's own channels-last tensor and its gradient, with torch's hooks."""
    held = {}
    handle = layer.register_forward_hook(lambda _m, _i, out: held.update(a=out) or out.retain_grad())
    model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))[:, class_id].sum().backward()
    handle.remove()
    a, g = held["a"].detach().numpy(), held["a"].grad.numpy()
    return np.maximum(np.einsum("nc,nhwc->nhw", g.mean(axis=(1, 2)), a), 0)


@pytest.mark.parametrize("size", [(16, 16), (16, 24)], ids=["square", "wide"])
def test_channels_last_layers_are_read_as_such(size, rng):
    torch.manual_seed(0)
    model = ChannelsLast().eval()
    net = heatlens.wrap(model, preprocess=None)
    x = rng.standard_normal((2, *size, 3)).astype(np.float32)
    infos = {info.name: info for info in net.layers(x.shape[1:])}
    grid = (size[0] // 2, size[1] // 2)
    assert infos["stem"].layout == CHANNELS_FIRST and infos["stem"].output_shape == (*grid, 6)
    for name in ("norm", "mix", "act"):
        assert infos[name].layout == CHANNELS_LAST and infos[name].output_shape == (*grid, 6)
        assert infos[name].certain_layout and infos[name].spatial
    assert net.default_layer(x.shape[1:]) == "act"
    result = heatlens.explain(net, x, target=2, upsample=False)
    np.testing.assert_allclose(result.maps[:, 0], _gradcam_by_hand(model, model.act, x, 2), rtol=1e-5, atol=1e-6)


def test_a_channels_last_activation_goes_back_in_as_it_came_out(rng):
    torch.manual_seed(1)
    net = heatlens.wrap(ChannelsLast().eval(), preprocess=None)
    x = rng.standard_normal((2, 16, 24, 3)).astype(np.float32)
    activation = net.trace(x, capture=["norm"]).activations["norm"]
    assert activation.shape == (2, 8, 12, 6)
    np.testing.assert_allclose(net.split("norm").tail(activation, x), net.predict(x), rtol=1e-5, atol=1e-6)
    injected = net.trace(x, inject={"norm": activation}).logits
    np.testing.assert_allclose(injected, net.predict(x), rtol=1e-5, atol=1e-6)


class Ambiguous(nn.Module):
    """(8, 8, 8) maps: a conv (NCHW by its kind), a functional permute, an activation whose output fits both
    readings with nothing to say which, and a LayerNorm over the channels (channels-last by its kind)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.norm(self.act(self.stem(x).permute(0, 2, 3, 1))).mean(dim=(1, 2)))


def test_an_ambiguous_layout_is_marked_and_the_default_avoids_it():
    net = heatlens.wrap(Ambiguous(), preprocess=None)
    infos = {info.name: info for info in net.layers((16, 16, 3))}
    assert infos["act"].output_shape == (8, 8, 8) and not infos["act"].certain_layout
    assert infos["stem"].certain_layout and infos["stem"].layout == CHANNELS_FIRST
    assert infos["norm"].certain_layout and infos["norm"].layout == CHANNELS_LAST
    assert net.default_layer((16, 16, 3)) == "norm"
    torch.manual_seed(2)
    inherits = heatlens.wrap(ChannelsLast(channels=8, norm=False).eval(), preprocess=None)
    infos = {info.name: info for info in inherits.layers((16, 16, 3))}
    assert infos["mix"].certain_layout and infos["mix"].layout == CHANNELS_LAST  # a Linear acts on channels
    assert infos["act"].certain_layout and infos["act"].layout == CHANNELS_LAST  # as its input, of its shape
    assert inherits.default_layer((16, 16, 3)) == "act"


def test_a_plain_cnn_with_as_many_channels_as_positions_is_channels_first():
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
            self.body = nn.Conv2d(8, 8, 3, padding=1)
            self.act = nn.ReLU()
            self.head = nn.Linear(8, 2)

        def forward(self, x):
            a = self.conv(x)
            return self.head(self.act(self.body(a) + a).mean(dim=(2, 3)))

    info = heatlens.wrap(Residual(), preprocess=None).layer("act", (16, 16, 3))
    assert info.layout == CHANNELS_FIRST and info.certain_layout


def test_maps_over_windows_or_tokens_are_no_spatial_layers():
    class Windows(nn.Module):
        """Four 2x2 windows folded into the batch axis, as window attention does."""

        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 1)
            self.inner = nn.Conv2d(4, 4, 1)
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            a = self.stem(x)
            n, c = a.shape[:2]
            windows = a.reshape(n, c, 2, 2, 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(n * 4, c, 2, 2)
            return self.head(self.inner(windows).reshape(n, 4, c, 4).mean(dim=(1, 3)))

    infos = {info.name: info for info in heatlens.wrap(Windows(), preprocess=None).layers((4, 4, 3))}
    assert infos["stem"].spatial and not infos["inner"].per_image and not infos["inner"].spatial
