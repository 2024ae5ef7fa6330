"""Shared benchmark helpers: a ResNet-50-sized torch model, interleaved median timing, and the time a run spends
inside a network's predict."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: 1x1 reduce, 3x3 (stride here), 1x1 expand, projection shortcut when needed."""

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * 4
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )
        self.shortcut = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout else nn.Identity()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class ResNet50(nn.Module):
    """The ResNet-50 layout (3, 4, 6, 3 bottlenecks; 25.6 M parameters), random weights."""

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, 2, 1))
        stages, cin = [], 64
        for width, blocks, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
            layers = []
            for i in range(blocks):
                layers.append(Bottleneck(cin, width, stride if i == 0 else 1))
                cin = width * 4
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(2048, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.fc(torch.flatten(x.mean(dim=(2, 3)), 1))


def interleaved(variants: dict[str, Callable[[], object]], rounds: int = 7, warmup: int = 2) -> dict[str, float]:
    """Median seconds per variant, running the variants in turn each round so drift hits all alike."""
    for _ in range(warmup):
        for fn in variants.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def report(title: str, medians: dict[str, float], floor: str) -> None:
    """Print each variant's median time and its ratio to the compute floor."""
    print(f"\n{title}")
    print(f"  {'variant':<48} {'median s':>9} {'x floor':>8}")
    for name, seconds in medians.items():
        print(f"  {name:<48} {seconds:>9.4f} {seconds / medians[floor]:>8.2f}")


@contextlib.contextmanager
def predict_timer(network: Any) -> Iterator[list[float]]:
    """Yields [seconds]: the time spent inside network.predict while the block runs (reset it to 0.0 between runs);
    the network's own predict is put back afterwards."""
    predict, inside = network.predict, [0.0]

    def timed_predict(batch: Any) -> Any:
        start = time.perf_counter()
        out = predict(batch)
        inside[0] += time.perf_counter() - start
        return out

    network.predict = timed_predict
    try:
        yield inside
    finally:
        network.predict = predict
