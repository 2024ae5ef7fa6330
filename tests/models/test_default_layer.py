"""The automatic CAM layer on different CNN designs: the last spatial output before global pooling,
found by probing output shapes (no per-architecture table). Keras designs: test_keras_adapter.py."""

from __future__ import annotations

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
