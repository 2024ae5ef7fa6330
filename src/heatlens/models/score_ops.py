"""The few array operations heatlens.scores needs, for the framework a model's output comes from.

heatlens.scores writes each ready-made score once over these operations; `array_ops(tensor)` picks the
set for the tensor's type: torch for torch models, numpy for predict functions, keras.ops for Keras models
(TensorFlow or JAX tensors). Frameworks are imported only when one of their tensors arrives, so the scores
keep gradients flowing through the model's own ops.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from ..errors import ModelError


class NumpyOps:
    """numpy arrays (predict functions' outputs); keras.ops shares these signatures, see KerasOps."""

    xp: Any = np
    channels_last = False  # predict functions of torch exports (ONNX) give (N, classes, H, W)

    def constant(self, values: Any, like: Any) -> Any:
        """`values` as an array of `like`'s dtype (and device)."""
        return self.xp.asarray(np.asarray(values), dtype=like.dtype)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    def tracked(self, x: Any) -> bool:
        """True where gradients are being recorded through `x` (a traced pass); numpy never records them."""
        return False

    def sum(self, x: Any, axis: Any) -> Any:
        return self.xp.sum(x, axis=axis)

    def maximum(self, a: Any, b: Any) -> Any:
        return self.xp.maximum(a, b)

    def minimum(self, a: Any, b: Any) -> Any:
        return self.xp.minimum(a, b)

    def where(self, condition: Any, a: Any, b: Any) -> Any:
        return self.xp.where(condition, a, b)

    def argmax(self, x: Any, axis: int) -> Any:
        return self.xp.argmax(x, axis=axis)

    def stack(self, items: list[Any], axis: int) -> Any:
        return self.xp.stack(items, axis=axis)

    def take(self, x: Any, index: Any) -> Any:
        """x[index] along the first axis, for an integer array `index`."""
        return self.xp.take(x, index, axis=0)

    def take_along(self, x: Any, index: Any) -> Any:
        """x[k, index[k]] for each row k of a 2-D `x`."""
        return self.xp.take_along_axis(x, index[:, None], axis=1)[:, 0]

    def matmul(self, a: Any, b: Any) -> Any:
        return self.xp.matmul(a, b)

    def sqrt(self, x: Any) -> Any:
        return self.xp.sqrt(x)

    def reshape(self, x: Any, shape: tuple[int, ...]) -> Any:
        return self.xp.reshape(x, shape)

    def transpose(self, x: Any) -> Any:
        return self.xp.transpose(x)


class KerasOps(NumpyOps):
    """Keras tensors (TensorFlow or JAX, whichever backend runs the model), through keras.ops."""

    channels_last = True  # Keras' image layout

    def __init__(self) -> None:
        import keras

        self.xp = keras.ops

    def constant(self, values: Any, like: Any) -> Any:
        return self.xp.cast(self.xp.convert_to_tensor(np.asarray(values)), like.dtype)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(self.xp.convert_to_numpy(x))


class TorchOps(NumpyOps):
    """torch tensors: torch's own names for the operations (dim= for axis=)."""

    def __init__(self) -> None:
        import torch

        self.xp = torch

    def constant(self, values: Any, like: Any) -> Any:
        return self.xp.as_tensor(np.array(values), dtype=like.dtype, device=like.device)  # a writable copy

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.detach().cpu().numpy()

    def tracked(self, x: Any) -> bool:
        return bool(x.requires_grad)

    def sum(self, x: Any, axis: Any) -> Any:
        return self.xp.sum(x, dim=axis)

    def argmax(self, x: Any, axis: int) -> Any:
        return self.xp.argmax(x, dim=axis)

    def stack(self, items: list[Any], axis: int) -> Any:
        return self.xp.stack(items, dim=axis)

    def take(self, x: Any, index: Any) -> Any:
        return x[index]

    def take_along(self, x: Any, index: Any) -> Any:
        return x.gather(1, index[:, None])[:, 0]

    def transpose(self, x: Any) -> Any:
        return x.T


def is_tensor(value: Any) -> bool:
    """True for an array or tensor of any framework heatlens runs (something with a shape and a dtype)."""
    return hasattr(value, "shape") and hasattr(value, "dtype") and not isinstance(value, type)


def array_ops(tensor: Any, who: str) -> NumpyOps:
    """The operations for `tensor`'s framework; a ModelError naming `who` (the score) for anything else."""
    module = type(tensor).__module__.partition(".")[0]
    if isinstance(tensor, np.ndarray):
        return NumpyOps()
    if module == "torch":
        return TorchOps()
    if module in {"tensorflow", "jax", "jaxlib", "keras"} and "keras" in sys.modules:
        return KerasOps()
    raise ModelError(f"{who} works on torch, Keras (TensorFlow or JAX) and numpy outputs. "
                     f"Received: a {type(tensor).__module__}.{type(tensor).__name__}")
