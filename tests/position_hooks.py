"""The adapters' `layer_at` hooks as proposed for TorchNetwork and KerasNetwork, installed by tests only
while an adapter still has the base class's (which refuses positions); once it has its own, tests use it."""

from __future__ import annotations

from typing import Any

import numpy as np

from heatlens.models.base import Network


def torch_layer_at(self: Any, index: int, end: str, input_shape: tuple[int, ...] | None = None) -> str:
    """TorchNetwork.layer_at: one probe pass on zeros of the model's input shape."""
    import torch

    from heatlens.models import torch_positions

    shape = tuple(input_shape) if input_shape is not None else self._probe_shape()
    with self._session(), torch.no_grad():
        return torch_positions.layer_at(
            self.module, index, end, lambda: self._run(self._to_tensor(np.zeros((1, *shape), np.float32))))


def keras_layer_at(self: Any, index: int, end: str, input_shape: tuple[int, ...] | None = None) -> str:
    """KerasNetwork.layer_at: read from the model's graph."""
    from heatlens.models import keras_positions

    return keras_positions.layer_at(self.model, index, end)


def install(monkeypatch: Any, adapter: type, hook: Any) -> None:
    """Give `adapter` the proposed hook unless it has its own layer_at."""
    if adapter.layer_at is Network.layer_at:
        monkeypatch.setattr(adapter, "layer_at", hook, raising=False)
