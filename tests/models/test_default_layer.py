"""The automatic CAM layer on different designs, found by probing output shapes (no per-architecture table): for
CNNs the last spatial output before global pooling; for vision transformers the last token layer whose patch
tokens reach the scores, on the patch embedding's grid. Real architectures: test_default_layer_families.py and
test_default_layer_keras.py."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import heatlens


def plain_vgg() -> nn.Module:
    """conv-relu blocks with max pooling, a final max pool, flatten, linear (VGG)."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 5),
    )


class Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c, 3,
                                                                                                          padding=1))
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.body(x) + x)


class ResNetLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
        self.layer1 = nn.Sequential(Residual(8), Residual(8))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.layer1(self.stem(x))), 1))


def depthwise() -> nn.Module:
    """Depthwise-separable blocks ending in a 1x1 conv with no activation after it (MobileNet-style)."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU6(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU6(),
        nn.Conv2d(8, 16, 1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5),
    )


class Inception(nn.Module):
    """Parallel branches concatenated (Inception-style); the functional concat is no module of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.branch1 = nn.Conv2d(3, 4, 1)
        self.branch3 = nn.Conv2d(3, 4, 3, padding=1)
        self.mix = nn.Conv2d(8, 8, 1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        mixed = self.act(self.mix(torch.cat([self.branch1(x), self.branch3(x)], dim=1)))
        return self.fc(mixed.mean(dim=(2, 3)))


def efficientnet() -> nn.Module:
    from heatlens.models.zoo.efficientnet_lite import EfficientNetLite

    return EfficientNetLite("lite0")


@pytest.mark.parametrize(("build", "size", "expected"), [
    (plain_vgg, 16, "4"),
    (ResNetLike, 16, "layer1"),
    (depthwise, 16, "4"),
    (Inception, 16, "act"),
    (efficientnet, 64, "head"),
], ids=["plain-vgg", "residual", "depthwise-no-final-activation", "inception", "efficientnet"])
def test_default_layer(build, size, expected):
    net = heatlens.wrap(build(), preprocess=None, input_size=(size, size))
    assert net.default_layer() == expected


class Block(nn.Module):
    """A pre-norm transformer block named as timm names it; `explicit` computes attention with a Softmax module,
    so the probabilities (N, heads, T, T) are a layer's output."""

    def __init__(self, c: int, explicit: bool = False) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.attn = nn.MultiheadAttention(c, 2, batch_first=True)
        self.qkv, self.probs = nn.Linear(c, 3 * c), nn.Softmax(dim=-1)
        self.fc1, self.act, self.fc2 = nn.Linear(c, 2 * c), nn.GELU(), nn.Linear(2 * c, c)
        self.explicit = explicit

    def forward(self, x):
        h = self.norm1(x)
        if self.explicit:
            q, k, v = self.qkv(h).unflatten(-1, (3, 2, -1)).permute(2, 0, 3, 1, 4)
            mixed = (self.probs(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5) @ v).transpose(1, 2).flatten(2)
        else:
            mixed = self.attn(h, h, h, need_weights=False)[0]
        x = x + mixed
        return x + self.fc2(self.act(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    """4x4 patches, class + register tokens (or none, `pooled`), two blocks, a final norm, a head on the class
    token or on the mean of the tokens."""

    def __init__(self, grid: tuple[int, int], pooled: bool = False, registers: int = 0, explicit: bool = False):
        super().__init__()
        self.embed = nn.Conv2d(3, 16, 4, stride=4)
        self.lead = 0 if pooled else 1 + registers
        self.prefix = nn.Parameter(torch.randn(1, self.lead, 16) * 0.1)
        self.position = nn.Parameter(torch.randn(1, self.lead + grid[0] * grid[1], 16) * 0.1)
        self.blocks = nn.Sequential(Block(16, explicit), Block(16, explicit))
        self.norm = nn.LayerNorm(16)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.prefix.expand(len(x), -1, -1), tokens], dim=1) + self.position
        tokens = self.norm(self.blocks(tokens))
        return self.head(tokens[:, self.lead :].mean(dim=1) if self.lead == 0 else tokens[:, 0])


@pytest.mark.parametrize(("pooled", "registers", "expected"), [
    (False, 0, "blocks.1.norm1"), (False, 4, "blocks.1.norm1"), (True, 0, "norm"),
], ids=["class-token", "registers", "pooled"])
def test_vision_transformers_default_to_the_last_token_layer_that_reaches_the_scores(pooled, registers, expected):
    torch.manual_seed(0)
    model = ViT((4, 6), pooled, registers).eval()
    net = heatlens.wrap(model, preprocess=None)
    x = np.random.default_rng(0).standard_normal((2, 16, 24, 3)).astype(np.float32)
    assert net.default_layer(x.shape[1:]) == expected
    result = heatlens.explain(net, x, target=1, upsample=False)
    assert result.layer == expected
    layer = model.get_submodule(expected)
    held = {}
    handle = layer.register_forward_hook(lambda _m, _i, out: held.update(a=out) or out.retain_grad())
    model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))[:, 1].sum().backward()
    handle.remove()
    lead = model.lead
    a = held["a"].detach().numpy()[:, lead:].reshape(2, 4, 6, 16)  # the patch grid, read from the embedding
    g = held["a"].grad.numpy()[:, lead:].reshape(2, 4, 6, 16)
    expected_map = np.maximum(np.einsum("nc,nhwc->nhw", g.mean(axis=(1, 2)), a), 0)
    np.testing.assert_allclose(result.maps[:, 0], expected_map, rtol=1e-4, atol=1e-6)
    assert expected_map.max() > expected_map.min()


def test_attention_probabilities_are_no_spatial_layer():
    torch.manual_seed(0)
    net = heatlens.wrap(ViT((4, 4), explicit=True).eval(), preprocess=None)
    infos = {info.name: info for info in net.layers((16, 16, 3))}
    probs = infos["blocks.1.probs"]
    assert probs.output_shape == (17, 17, 2) and not probs.spatial  # tokens x tokens, per head
    assert infos["blocks.1.norm1"].token_layout == (1, 4, 4)
    assert net.default_layer((16, 16, 3)) == "blocks.1.norm1"


def test_the_spatial_only_methods_keep_the_last_spatial_layer_of_a_vision_transformer():
    net = heatlens.wrap(ViT((4, 4)).eval(), preprocess=None)
    assert net.spatial_layer(None, (16, 16, 3)) == "embed"
    assert net.spatial_layer(None, (16, 16, 3), tokens=True) == "blocks.1.norm1"
