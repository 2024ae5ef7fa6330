"""The array operations methods reduce a Trace's activations and gradients with, whatever holds them.

A Trace's arrays are numpy by default. An adapter that keeps them where the model ran (torch on CUDA) gives its
trace the ops of its own tensors, so a method's reductions run there and only the maps come back as numpy.
`NUMPY` is the plain numpy version: methods written over `ArrayOps` compute exactly what numpy would.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

Axis = int | tuple[int, ...] | None


class ArrayOps(Protocol):
    """What methods may do to a Trace's arrays besides arithmetic, indexing and reshape (which every kind has)."""

    def asarray(self, a: np.ndarray) -> Any:
        """A numpy array as this kind (on the arrays' device); numpy's own ops return it unchanged."""

    def to_numpy(self, a: Any) -> np.ndarray:
        """An array back as numpy: the one host copy, for results only (maps, scores)."""

    def sum(self, a: Any, axis: Axis = None, keepdims: bool = False) -> Any: ...

    def mean(self, a: Any, axis: Axis = None, keepdims: bool = False) -> Any: ...

    def amax(self, a: Any, axis: Axis = None, keepdims: bool = False) -> Any: ...

    def abs(self, a: Any) -> Any: ...

    def square(self, a: Any) -> Any: ...

    def maximum(self, a: Any, floor: float) -> Any:
        """Elementwise max(a, floor) with a number (ReLU for 0)."""

    def where(self, condition: Any, a: Any, b: Any) -> Any:
        """`a` where condition holds, else `b`; either may be a number."""

    def all_finite(self, a: Any) -> bool: ...

    def broadcast_to(self, a: Any, shape: tuple[int, ...]) -> Any: ...

    def concatenate(self, arrays: Sequence[Any]) -> Any:
        """Arrays joined along the batch axis."""

    def stack(self, arrays: Sequence[Any], axis: int) -> Any: ...

    def astype(self, a: Any, dtype: type[np.floating]) -> Any:
        """`a` as np.float32 or np.float64."""

    def zeros(self, shape: tuple[int, ...], dtype: type[np.floating]) -> Any: ...

    def add_at(self, total: Any, rows: np.ndarray, values: Any) -> None:
        """total[rows[i]] += values[i] in place, repeated rows included (numpy's np.add.at)."""

    def einsum(self, spec: str, *arrays: Any) -> Any: ...

    def first_right_singular(self, a: Any) -> Any:
        """The first right singular vector of each matrix of a (B, P, C) batch: (B, C)."""


class NumpyOps:
    """ArrayOps for numpy arrays: numpy's own functions, so results are numpy's to the bit."""

    def asarray(self, a: np.ndarray) -> np.ndarray:
        return a

    def to_numpy(self, a: np.ndarray) -> np.ndarray:
        return np.asarray(a)

    def sum(self, a: np.ndarray, axis: Axis = None, keepdims: bool = False) -> np.ndarray:
        return a.sum(axis=axis, keepdims=keepdims)

    def mean(self, a: np.ndarray, axis: Axis = None, keepdims: bool = False) -> np.ndarray:
        return a.mean(axis=axis, keepdims=keepdims)

    def amax(self, a: np.ndarray, axis: Axis = None, keepdims: bool = False) -> np.ndarray:
        return a.max(axis=axis, keepdims=keepdims)

    def abs(self, a: np.ndarray) -> np.ndarray:
        return np.abs(a)

    def square(self, a: np.ndarray) -> np.ndarray:
        return np.square(a)

    def maximum(self, a: np.ndarray, floor: float) -> np.ndarray:
        return np.maximum(a, floor)

    def where(self, condition: np.ndarray, a: Any, b: Any) -> np.ndarray:
        return np.where(condition, a, b)

    def all_finite(self, a: np.ndarray) -> bool:
        return bool(np.isfinite(a).all())

    def broadcast_to(self, a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        return np.broadcast_to(a, shape)

    def concatenate(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        return np.concatenate(arrays)

    def stack(self, arrays: Sequence[np.ndarray], axis: int) -> np.ndarray:
        return np.stack(arrays, axis=axis)

    def astype(self, a: np.ndarray, dtype: type[np.floating]) -> np.ndarray:
        return a.astype(dtype)

    def zeros(self, shape: tuple[int, ...], dtype: type[np.floating]) -> np.ndarray:
        return np.zeros(shape, dtype)

    def add_at(self, total: np.ndarray, rows: np.ndarray, values: np.ndarray) -> None:
        np.add.at(total, rows, values)

    def einsum(self, spec: str, *arrays: np.ndarray) -> np.ndarray:
        return np.einsum(spec, *arrays)

    def first_right_singular(self, a: np.ndarray) -> np.ndarray:
        return np.linalg.svd(a, full_matrices=False)[2][:, 0, :]


NUMPY: ArrayOps = NumpyOps()
