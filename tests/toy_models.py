"""Small torch models for tests, importable by the CLI as 'toy_models:NAME'."""

from __future__ import annotations

import torch
from torch import nn


class TinyCNN(nn.Module):
    """conv -> ReLU -> conv -> ReLU -> global average pool -> linear: a CAM-compatible classifier."""

    def __init__(self, classes: int = 4, width: int = 8, inplace: bool = False) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(inplace=inplace),
            nn.Conv2d(width, width, 3, padding=1, stride=2), nn.ReLU(inplace=inplace),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


class FlattenHead(nn.Module):
    """conv -> ReLU -> flatten -> linear: gradients at the conv output are the linear weights, by hand."""

    def __init__(self, classes: int = 3, channels: int = 4, size: int = 6) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.act = nn.ReLU()
        self.fc = nn.Linear(channels * size * size, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.act(self.conv(x)), 1))


def tiny_cnn() -> nn.Module:
    """Factory for `--model toy_models:tiny_cnn`."""
    torch.manual_seed(0)
    return TinyCNN()


def all_cats(out: torch.Tensor) -> torch.Tensor:
    """A custom score for `-o score=toy_models:all_cats`: the five ImageNet cat classes together."""
    return out[:, 281:286].sum(dim=1)


def count_hooks(module: nn.Module) -> int:
    """Every forward, pre-forward and backward hook on a module tree."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in module.modules())
