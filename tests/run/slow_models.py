"""A tiny classifier that takes a while per batch, so a test can kill a `heatlens run` while it is working."""

from __future__ import annotations

import time

import torch
from toy_models import TinyCNN

SECONDS_PER_BATCH = 0.05


class SlowCNN(TinyCNN):
    """TinyCNN that sleeps before each forward pass (the weights and outputs are TinyCNN's)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(SECONDS_PER_BATCH)
        return super().forward(x)


def slow_cnn() -> torch.nn.Module:
    """Factory for `--model slow_models:slow_cnn`."""
    torch.manual_seed(0)
    return SlowCNN()
