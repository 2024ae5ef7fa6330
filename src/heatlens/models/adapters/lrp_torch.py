"""Layer-wise relevance propagation for torch, for the duration of one `with` block (one traced forward).

A TorchFunctionMode intercepts the model's function calls; the backward pass then carries relevance instead of
gradients, so the input gradient of a target score is its relevance for an output relevance of 1:
- conv / linear calls whose weight is a module's parameter run with the module's rule (methods/lrp_rules.py):
  the backward recomputes the layer with the rule's modified inputs and weights and returns R_in;
- a batch norm right after such a call (eval mode) is merged into it: the rule then sees the merged weights
  and bias (a temporary copy; the module's parameters are never touched), and the batch norm is the identity;
- activations (ReLU, ReLU6 / hardtanh, leaky ReLU, ELU, SiLU, GELU, hardswish) and unmerged batch norms pass
  relevance through unchanged (their forward value is kept);
- additions of two same-shaped tensors (residual connections), average pools and means split relevance in
  proportion to their inputs' contributions: R_i = x_i d(y)/d(x_i) R / stab(y);
- a zero padding right before a linear call is part of that call, as padding inside a convolution is: the rule's
  input terms (flat's ones, z-box's bounds) cover the input only, not the padded border;
- everything else (max pooling, other padding, reshapes, concatenation) keeps its gradient, which routes relevance.
Nothing is registered on the model; the mode ends with the block.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ...errors import ModelError

Rule = Any  # a rule of methods/lrp_rules.py, read by its `formula` and fields (models import nothing from methods)
Composite = Any  # methods/lrp_rules.Composite: rule_for(name, kind, role, first), counts_as_first(role), stabilizer

_LINEAR_CALLS = {F.conv1d: "conv", F.conv2d: "conv", F.conv3d: "conv", F.linear: "dense"}
_ACTIVATIONS = {F.relu, torch.relu, torch.Tensor.relu, F.relu_, torch.relu_, torch.Tensor.relu_, F.hardtanh,
                F.hardtanh_, F.relu6, F.leaky_relu, F.leaky_relu_, F.elu, F.elu_, F.silu, F.gelu, F.hardswish}
_ADDS = {torch.add, torch.Tensor.add, torch.Tensor.__add__, torch.Tensor.__radd__, torch.Tensor.add_,
         torch.Tensor.__iadd__}
_SIGNED_RULES = {"alpha_beta", "gamma"}  # rules that treat positive and negative inputs apart
_POOLS = {F.avg_pool1d, F.avg_pool2d, F.avg_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
          F.adaptive_avg_pool3d, torch.mean, torch.Tensor.mean}


def _traced(args: tuple) -> bool:
    """Whether the call's first argument is a tensor on the gradient path."""
    return bool(args) and isinstance(args[0], torch.Tensor) and args[0].requires_grad


def _stab(value: torch.Tensor, epsilon: float) -> torch.Tensor:
    """value + epsilon * sign(value), sign(0) = 1."""
    return torch.where(value >= 0, value + epsilon, value - epsilon)


def _divide(numerator: torch.Tensor, denominator: torch.Tensor, epsilon: float) -> torch.Tensor:
    """numerator / stab(denominator), 0 where the stabilised denominator is 0 (LRP-0 at a dead output; with
    epsilon > 0 it never is, so the division needs no guard)."""
    stable = _stab(denominator, epsilon)
    if epsilon > 0:
        return numerator / stable
    return torch.where(stable == 0, 0.0, numerator / torch.where(stable == 0, 1.0, stable))


@dataclass
class _Layer:
    """One call of a linear layer: its rule, its op(input, weight, bias) and the parameters it used."""

    rule: Rule
    op: Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
    weight: torch.Tensor
    bias: torch.Tensor | None
    value: torch.Tensor | None = None  # the output already computed (a merged batch norm's)


class _LinearRule(torch.autograd.Function):
    """Forward: the layer's output. Backward: the rule's input relevance for the relevance at its output."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, layer: _Layer) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.layer, ctx.recorded = layer, None
        if layer.value is not None:
            return layer.value
        if layer.rule.formula == "epsilon":  # its backward is this very call's: record it once, here
            bias = None if layer.bias is None else layer.bias.detach()
            with torch.enable_grad():
                ctx.recorded = _Recorded(layer.op, [(x, layer.weight.detach(), bias)], reused=True)
            return ctx.recorded.out[0]
        return layer.op(x, layer.weight, layer.bias)

    @staticmethod
    def backward(ctx: Any, relevance: torch.Tensor) -> tuple[torch.Tensor, None]:
        (x,) = ctx.saved_tensors
        with torch.enable_grad():
            return relevance_in(ctx.layer, x.detach(), relevance, ctx.recorded), None


Terms = list[tuple[Any, Any, Any]]  # (input, weight, bias or None) of one term


class _Recorded:
    """The layer op run on each term (input_k, weight_k, bias_k) with a graph, so one backward gives every
    input's vector-Jacobian product; `out` holds the outputs' values."""

    def __init__(self, op: Callable[..., torch.Tensor], terms: Terms, reused: bool = False) -> None:
        self.reused = reused  # recorded in the forward pass: kept for every target's backward
        self.inputs = [inp.detach().requires_grad_() for inp, _, _ in terms]
        self.outputs = [op(inp, weight, bias) for inp, (_, weight, bias) in zip(self.inputs, terms, strict=True)]
        self.out = [o.detach() for o in self.outputs]

    def vjp(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """d out_k / d input_k applied to grads[k], for every term k."""
        return list(torch.autograd.grad(self.outputs, self.inputs, grads, retain_graph=self.reused))


def _total(parts: list[torch.Tensor]) -> torch.Tensor:
    """The sum of same-shaped tensors, in order."""
    total = parts[0]
    for extra in parts[1:]:
        total = total + extra
    return total


def relevance_in(layer: _Layer, x: torch.Tensor, relevance: torch.Tensor,
                 recorded: _Recorded | None = None) -> torch.Tensor:
    """The input relevance of one linear layer under its rule (formulas: methods/lrp_rules.py); `recorded`: the
    epsilon rule's plain call, recorded in the forward pass."""
    rule, op, w, b = layer.rule, layer.op, layer.weight.detach(), None if layer.bias is None else layer.bias.detach()
    s = rule.stabilizer

    def part(t: torch.Tensor | None, positive: bool) -> torch.Tensor | None:
        return None if t is None else (t.clamp(min=0) if positive else t.clamp(max=0))

    signed = rule.formula in _SIGNED_RULES and bool((x < 0).any())  # after a ReLU no input is negative
    pos = x.clamp(min=0) if signed else x
    inputs = [pos, x.clamp(max=0)] if signed else [pos]

    def terms(with_pos: torch.Tensor | None, bias: torch.Tensor | None, with_neg: torch.Tensor | None) -> Terms:
        """Positive inputs with one weight part and the bias part; negative inputs (if any) with another."""
        return [(inputs[0], with_pos, bias), *[(negative, with_neg, None) for negative in inputs[1:]]]

    n = len(inputs)
    formula = rule.formula
    if formula == "alpha_beta":
        alpha, beta = rule.alpha, rule.beta
        plus = terms(part(w, True), part(b, True), part(w, False))
        minus = terms(part(w, False), part(b, False), part(w, True)) if beta else []
        run = _Recorded(op, plus + minus)
        grads = [_divide(relevance, _total(run.out[:n]), s)] * n
        if beta:
            grads += [_divide(relevance, _total(run.out[n:]), s)] * n
        c = run.vjp(grads)
        result = alpha * _total([t * g for t, g in zip(inputs, c[:n], strict=True)])
        return result - beta * _total([t * g for t, g in zip(inputs, c[n:], strict=True)]) if beta else result
    if formula == "gamma":
        g = rule.gamma

        def boost(t: torch.Tensor | None, positive: bool) -> torch.Tensor | None:
            return None if t is None else t + g * part(t, positive)

        run = _Recorded(op, terms(boost(w, True), boost(b, True), boost(w, False))
                        + terms(boost(w, False), boost(b, False), boost(w, True)))
        with torch.no_grad():
            z = op(x, w, b)
        up = _divide(relevance * (z > 0), _total(run.out[:n]), s)
        down = _divide(relevance * (z < 0), _total(run.out[n:]), s)
        c = run.vjp([up] * n + [down] * n)
        return _total([t * grad for t, grad in zip(inputs * 2, c, strict=True)])
    if formula == "zbox":
        shape = (1, -1, *([1] * (x.ndim - 2)))
        low = torch.as_tensor(rule.low, dtype=x.dtype, device=x.device).reshape(shape).expand_as(x)
        high = torch.as_tensor(rule.high, dtype=x.dtype, device=x.device).reshape(shape).expand_as(x)
        run = _Recorded(op, [(x, w, b), (low, part(w, True), part(b, True)), (high, part(w, False), part(b, False))])
        grad = _divide(relevance, run.out[0] - run.out[1] - run.out[2], s)
        c = run.vjp([grad] * 3)
        return x * c[0] - low * c[1] - high * c[2]
    if formula in ("flat", "wsquare"):
        run = _Recorded(op, [(torch.ones_like(x), torch.ones_like(w) if formula == "flat" else w * w, None)])
        return run.vjp([_divide(relevance, run.out[0], s)])[0]
    if formula != "epsilon":
        raise ModelError(f"unknown LRP rule formula {formula!r}")
    run = recorded or _Recorded(op, [(x, w, b)])
    return x * run.vjp([_divide(relevance, run.out[0], rule.epsilon)])[0]


class _Pass(torch.autograd.Function):
    """Forward: the function's value. Backward: relevance passes through unchanged."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, value: list[torch.Tensor]) -> torch.Tensor:
        return value[0]

    @staticmethod
    def backward(ctx: Any, relevance: torch.Tensor) -> tuple[torch.Tensor, None]:
        return relevance, None


class _Proportional(torch.autograd.Function):
    """Forward: a linear function's value y = f(x_1, ..., x_n). Backward: R_k = x_k * d f / d x_k (R / stab(y))."""

    @staticmethod
    def forward(ctx: Any, fn: Callable[..., torch.Tensor], stabilizer: float, *inputs: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(*inputs)
        ctx.fn, ctx.stabilizer = fn, stabilizer
        return fn(*inputs)

    @staticmethod
    def backward(ctx: Any, relevance: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        inputs = [t.detach().requires_grad_() for t in ctx.saved_tensors]
        with torch.enable_grad():
            out = ctx.fn(*inputs)
            grads = torch.autograd.grad(out, inputs, _divide(relevance, out.detach(), ctx.stabilizer))
        return (None, None, *(t.detach() * g for t, g in zip(inputs, grads, strict=True)))


class RelevanceMode(TorchFunctionMode):
    """Runs the model's linear layers with the composite's rules, and the other layers as the module says."""

    def __init__(self, module: torch.nn.Module, composite: Composite) -> None:
        super().__init__()
        self.composite = composite
        self.weights = {id(m.weight): (name, m) for name, m in module.named_modules()
                        if isinstance(getattr(m, "weight", None), torch.nn.Parameter)}
        self.rules: dict[str, Rule] = {}
        self.first_seen: set[str] = set()
        self.outputs: dict[int, tuple[torch.Tensor, torch.Tensor, _Layer]] = {}
        self.padded: dict[int, tuple[torch.Tensor, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]] = {}

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if func in _LINEAR_CALLS and len(args) > 1 and id(args[1]) in self.weights:
            return self._linear(func, args, kwargs)
        if func is F.batch_norm and args and id(args[0]) in self.outputs:
            return self._merged(args, kwargs)
        if func is F.pad and _traced(args) and _zero_padding(args, kwargs):
            padded = func(*args, **kwargs)
            self.padded[id(padded)] = (padded, args[0], lambda t: func(t, *args[1:], **kwargs))
            return padded
        if (func in _ACTIVATIONS or func is F.batch_norm) and _traced(args):
            with torch.no_grad():  # an in-place form changes a copy, and the result is returned
                given = args[0].detach()
                value = func(given.clone() if _in_place(func, args, kwargs) else given, *args[1:], **kwargs)
            return _Pass.apply(args[0], [value])
        if func in _ADDS and self._summands(args, kwargs):  # in-place forms too: the sum is returned, not written
            return _Proportional.apply(torch.add, self.composite.stabilizer, args[0], args[1])
        if func in _POOLS and _traced(args):
            return _Proportional.apply(lambda t: func(t, *args[1:], **kwargs), self.composite.stabilizer,
                                      args[0])
        return func(*args, **kwargs)

    @staticmethod
    def _summands(args: tuple, kwargs: dict) -> bool:
        """Two same-shaped floating tensors added without a scale: a residual connection."""
        if len(args) != 2 or kwargs or not all(isinstance(a, torch.Tensor) for a in args):
            return False
        a, b = args
        return a.shape == b.shape and a.is_floating_point() and (a.requires_grad or b.requires_grad)

    def _linear(self, func: Any, args: tuple, kwargs: dict) -> Any:
        x, weight = args[0], args[1]
        bias = args[2] if len(args) > 2 else kwargs.get("bias")
        rest, extra = args[3:], {k: v for k, v in kwargs.items() if k != "bias"}
        name, module = self.weights[id(weight)]
        role = _LINEAR_CALLS[func]
        if name not in self.rules:
            first = self.composite.counts_as_first(role) and not self.first_seen
            if self.composite.counts_as_first(role):
                self.first_seen.add(name)
            rule = self.composite.rule_for(name, type(module).__name__, role, first)
            if rule.formula == "zbox" and (rule.low is None or rule.high is None):
                raise ModelError(f"the z-box rule of layer '{name}' has no input bounds")
            self.rules[name] = rule

        pad: Callable[[torch.Tensor], torch.Tensor] = _unpadded
        if id(x) in self.padded and self.padded[id(x)][0] is x:
            _, x, pad = self.padded.pop(id(x))

        def op(inp: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
            return func(pad(inp), w, b, *rest, **extra)

        layer = _Layer(self.rules[name], op, weight, bias)
        if not (isinstance(x, torch.Tensor) and x.requires_grad):
            return op(x, weight, bias)
        out = _LinearRule.apply(x, layer)
        self.outputs[id(out)] = (out, x, layer)
        return out

    def _merged(self, args: tuple, kwargs: dict) -> Any:
        """A batch norm in eval mode right after a rule's linear call: the call again with the merged parameters."""
        call = dict(zip(("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps"),
                        args, strict=False)) | kwargs
        out, x, layer = self.outputs.pop(id(args[0]))
        if call.get("training", False) or call.get("running_mean") is None:
            with torch.no_grad():
                value = F.batch_norm(*args, **kwargs)
            return _Pass.apply(out, [value])
        var, mean = call["running_var"].detach(), call["running_mean"].detach()
        scale = torch.rsqrt(var + call.get("eps", 1e-5))
        if call.get("weight") is not None:
            scale = scale * call["weight"].detach()
        shift = -mean * scale + (0 if call.get("bias") is None else call["bias"].detach())
        weight = layer.weight.detach() * scale.reshape(-1, *([1] * (layer.weight.ndim - 1)))
        bias = shift if layer.bias is None else layer.bias.detach() * scale + shift
        with torch.no_grad():
            value = F.batch_norm(*args, **kwargs)
        return _LinearRule.apply(x, _Layer(layer.rule, layer.op, weight, bias, value))


def _in_place(func: Any, args: tuple, kwargs: dict) -> bool:
    """Whether an activation call writes into its input (relu_, inplace=True, or a positional True)."""
    named = getattr(func, "__name__", "").endswith("_")
    return named or bool(kwargs.get("inplace")) or any(a is True for a in args[1:])


def _unpadded(t: torch.Tensor) -> torch.Tensor:
    return t


def _zero_padding(args: tuple, kwargs: dict) -> bool:
    """Whether an F.pad call pads with zeros (constant mode, value 0 or None)."""
    call = dict(zip(("input", "pad", "mode", "value"), args, strict=False)) | kwargs
    return call.get("mode", "constant") == "constant" and not call.get("value")


@contextlib.contextmanager
def relevance_rules(module: torch.nn.Module, composite: Composite) -> Iterator[RelevanceMode]:
    """Within the block, the backward pass of `module` propagates relevance by the composite's rules."""
    mode = RelevanceMode(module, composite)
    try:
        with mode:
            yield mode
    finally:
        mode.outputs.clear()
        mode.padded.clear()
