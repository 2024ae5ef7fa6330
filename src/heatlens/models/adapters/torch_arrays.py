"""ArrayOps (models/arrays.py) over torch tensors on one device: a trace's activations and gradients stay where
the model ran (a CUDA GPU) through a method's reductions, and only `to_numpy` copies to the host."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..arrays import Axis

_DTYPES = {np.float32: torch.float32, np.float64: torch.float64}


class TorchOps:
    """ArrayOps for torch tensors on `device`; the same formulas as numpy's, so maps agree to rounding."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def asarray(self, a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), device=self.device)

    def to_numpy(self, a: torch.Tensor) -> np.ndarray:
        return a.detach().cpu().numpy()

    def sum(self, a: torch.Tensor, axis: Axis = None, keepdims: bool = False) -> torch.Tensor:
        return a.sum() if axis is None else a.sum(dim=axis, keepdim=keepdims)

    def mean(self, a: torch.Tensor, axis: Axis = None, keepdims: bool = False) -> torch.Tensor:
        return a.mean() if axis is None else a.mean(dim=axis, keepdim=keepdims)

    def amax(self, a: torch.Tensor, axis: Axis = None, keepdims: bool = False) -> torch.Tensor:
        return a.amax() if axis is None else a.amax(dim=axis, keepdim=keepdims)

    def abs(self, a: torch.Tensor) -> torch.Tensor:
        return a.abs()

    def square(self, a: torch.Tensor) -> torch.Tensor:
        return a.square()

    def maximum(self, a: torch.Tensor, floor: float) -> torch.Tensor:
        return a.clamp_min(floor)

    def where(self, condition: torch.Tensor, a: Any, b: Any) -> torch.Tensor:
        return torch.where(condition, a, b)

    def all_finite(self, a: torch.Tensor) -> bool:
        return bool(torch.isfinite(a).all())

    def broadcast_to(self, a: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        return a.expand(shape)

    def concatenate(self, arrays: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat(list(arrays))

    def stack(self, arrays: Sequence[torch.Tensor], axis: int) -> torch.Tensor:
        return torch.stack(list(arrays), dim=axis)

    def astype(self, a: torch.Tensor, dtype: type[np.floating]) -> torch.Tensor:
        return a.to(_DTYPES[dtype])

    def zeros(self, shape: tuple[int, ...], dtype: type[np.floating]) -> torch.Tensor:
        return torch.zeros(shape, dtype=_DTYPES[dtype], device=self.device)

    def add_at(self, total: torch.Tensor, rows: np.ndarray, values: torch.Tensor) -> None:
        index = torch.as_tensor(np.asarray(rows, np.int64), device=total.device)
        total.index_add_(0, index, values.to(total.dtype))

    def einsum(self, spec: str, *arrays: torch.Tensor) -> torch.Tensor:
        return torch.einsum(spec, *arrays)

    def first_right_singular(self, a: torch.Tensor) -> torch.Tensor:
        return torch.linalg.svd(a, full_matrices=False)[2][:, 0, :]
