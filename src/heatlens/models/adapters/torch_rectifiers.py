"""Guided backprop and deconvnet ReLUs for torch, for the duration of one `with` block.

A TorchFunctionMode intercepts every rectifier call, whatever its form: `nn.ReLU` (also in place),
`nn.ReLU6`, `F.relu`, `torch.relu`, `Tensor.relu`. The forward value is unchanged; only the backward
rule differs (Springenberg et al. 2015; Zeiler & Fergus 2014). Guided keeps the rectifier's own
backward (the mask) and clamps the gradient arriving at its output with a hook on that output, which
lives as long as the call's graph; deconv replaces the backward by a custom function:
    guided:  dL/dx = max(dL/dy, 0) * [0 < x < upper]
    deconv:  dL/dx = max(dL/dy, 0)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

_RELUS = {F.relu, torch.relu, torch.Tensor.relu}
_RELUS_INPLACE = {F.relu_, torch.relu_, torch.Tensor.relu_}
RULES = ("guided", "deconv")


class _Rectifier(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, upper: float | None, rule: str, inplace: bool) -> torch.Tensor:
        inside = x > 0 if upper is None else (x > 0) & (x < upper)
        ctx.save_for_backward(inside)
        ctx.rule = rule
        if inplace:
            ctx.mark_dirty(x)
            return x.clamp_(min=0) if upper is None else x.clamp_(0, upper)
        return x.clamp(min=0) if upper is None else x.clamp(0, upper)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        (inside,) = ctx.saved_tensors
        positive = grad.clamp(min=0)
        return (positive * inside if ctx.rule == "guided" else positive), None, None, None


class Rectifiers(TorchFunctionMode):
    """Replace the backward rule of every ReLU / ReLU6 called inside the block; counts the calls."""

    def __init__(self, rule: str) -> None:
        super().__init__()
        self.rule = rule
        self.calls = 0

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        rectifier, upper, inplace = _rectifier(func, args, kwargs)
        if not rectifier:
            return func(*args, **kwargs)
        self.calls += 1
        if self.rule == "guided":
            y = func(*args, **kwargs)
            if y.requires_grad:
                y.register_hook(_positive)
            return y
        x = args[0]
        inplace = inplace and not (x.is_leaf and x.requires_grad)
        return _Rectifier.apply(x, upper, self.rule, inplace)


def _positive(grad: torch.Tensor) -> torch.Tensor:
    return grad.clamp(min=0)


def _rectifier(func: Any, args: tuple, kwargs: dict) -> tuple[bool, float | None, bool]:
    """(is a rectifier, its upper bound or None, in place) for one torch function call."""
    if func in _RELUS:
        inplace = func is F.relu and bool(kwargs.get("inplace", args[1] if len(args) > 1 else False))
        return True, None, inplace
    if func in _RELUS_INPLACE:
        return True, None, True
    if func is F.hardtanh:
        low = kwargs.get("min_val", args[1] if len(args) > 1 else -1.0)
        high = kwargs.get("max_val", args[2] if len(args) > 2 else 1.0)
        inplace = bool(kwargs.get("inplace", args[3] if len(args) > 3 else False))
        return low == 0, float(high), inplace
    return False, None, False
