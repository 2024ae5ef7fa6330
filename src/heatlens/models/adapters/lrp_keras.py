"""Layer-wise relevance propagation for Keras 3 on any backend, for the duration of one `with` block (one traced pass).

The layers' `call` is replaced by instance attributes (removed again on exit, whatever happens), so the backward
pass carries relevance instead of gradients, as the torch adapter does (lrp_torch.py):
- Conv1D/2D/3D, DepthwiseConv1D/2D and Dense layers run with the composite's rule (methods/lrp_rules.py): the
  backward recomputes the layer with the rule's modified inputs and weights and returns R_in; a fused
  `activation=` is applied after it and passes relevance through;
- a BatchNormalization right after such a layer (channels last, no fused activation between) is merged into it:
  the rule sees the merged weights and bias (tensors computed for the call; no variable is touched), and the
  batch norm's own output is the forward value;
- activation layers (ReLU, LeakyReLU, ELU, and Activation of relu, relu6, leaky_relu, elu, silu, gelu,
  hard_silu) and unmerged batch norms pass relevance through unchanged (their forward value is kept);
- Add layers and (global) average pools split relevance in proportion to their inputs' contributions:
  R_i = x_i d(y)/d(x_i) R / stab(y);
- every other layer keeps its gradient, which routes relevance.
The backend brings two pieces: `custom(inputs, value, backward)`, a tensor equal to `value` whose backward pass
hands the arriving relevance R to `backward(inputs, R)` (one relevance per input), and `vjp(fn, primals,
cotangent)`, the vector-Jacobian products of `fn` at `primals`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import keras
from keras import ops

from ...errors import ModelError
from .keras_rectifiers import swap_attribute

Rule = Any  # a rule of methods/lrp_rules.py, read by its `formula` and fields (models import nothing from methods)
Composite = Any  # methods/lrp_rules.Composite: rule_for(name, kind, role, first), counts_as_first(role), stabilizer
Custom = Callable[[Sequence[Any], Any, Callable[[list[Any], Any], list[Any]]], Any]
Vjp = Callable[[Callable[..., Any], Sequence[Any], Any], list[Any]]
Op = Callable[[Any, Any, Any], Any]  # (input, weight, bias or None) -> the layer's output before its activation

_CONVS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
_POOLS = (keras.layers.AveragePooling1D, keras.layers.AveragePooling2D, keras.layers.AveragePooling3D,
          keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D,
          keras.layers.GlobalAveragePooling3D)
_ACTIVATION_LAYERS = (keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU)
_PASSING = {keras.activations.get(name) for name in
            ("relu", "relu6", "leaky_relu", "elu", "silu", "gelu", "hard_silu")}


def _stab(value: Any, epsilon: float) -> Any:
    """value + epsilon * sign(value), sign(0) = 1."""
    return value + epsilon * ops.where(value >= 0, 1.0, -1.0)


def _divide(numerator: Any, denominator: Any, epsilon: float) -> Any:
    """numerator / stab(denominator), 0 where the stabilised denominator is 0 (LRP-0 at a dead output)."""
    stable = _stab(denominator, epsilon)
    return ops.where(stable == 0, 0.0, numerator / ops.where(stable == 0, 1.0, stable))


@dataclass
class _Linear:
    """One call of a linear layer: its rule, its op and the weight and bias it used."""

    rule: Rule
    op: Op
    weight: Any
    bias: Any


def relevance_in(layer: _Linear, x: Any, relevance: Any, vjp: Vjp) -> Any:
    """The input relevance of one linear layer under its rule (formulas: methods/lrp_rules.py)."""
    rule, op, w, b = layer.rule, layer.op, layer.weight, layer.bias
    s = rule.stabilizer

    def part(t: Any, positive: bool) -> Any:
        return None if t is None else (ops.maximum(t, 0.0) if positive else ops.minimum(t, 0.0))

    def back(inp: Any, weight: Any, cotangent: Any) -> Any:
        """d op(inp, weight) / d inp applied to the cotangent (op is linear in its input)."""
        return vjp(lambda t: op(t, weight, None), [inp], cotangent)[0]

    pos, neg = ops.maximum(x, 0.0), ops.minimum(x, 0.0)
    formula = rule.formula
    if formula == "alpha_beta":
        wp, wn = part(w, True), part(w, False)
        up = _divide(relevance, op(pos, wp, part(b, True)) + op(neg, wn, None), s)
        result = rule.alpha * (pos * back(pos, wp, up) + neg * back(neg, wn, up))
        if not rule.beta:
            return result
        down = _divide(relevance, op(pos, wn, part(b, False)) + op(neg, wp, None), s)
        return result - rule.beta * (pos * back(pos, wn, down) + neg * back(neg, wp, down))
    if formula == "gamma":
        g = rule.gamma

        def boost(t: Any, positive: bool) -> Any:
            return None if t is None else t + g * part(t, positive)

        w_up, w_down = boost(w, True), boost(w, False)
        z = op(x, w, b)
        up = _divide(relevance * ops.cast(z > 0, z.dtype), op(pos, w_up, boost(b, True)) + op(neg, w_down, None), s)
        down = _divide(relevance * ops.cast(z < 0, z.dtype), op(pos, w_down, boost(b, False)) + op(neg, w_up, None),
                       s)
        return pos * (back(pos, w_up, up) + back(pos, w_down, down)) + neg * (back(neg, w_down, up)
                                                                            + back(neg, w_up, down))
    if formula == "zbox":
        if int(x.shape[-1]) != len(rule.low):
            raise ModelError(f"the z-box bounds have {len(rule.low)} channels; the first layer's input has "
                             f"{int(x.shape[-1])} (channels last): give low= and high= per input channel")
        ones = ops.ones_like(x)
        low, high = ones * ops.convert_to_tensor(rule.low, x.dtype), ones * ops.convert_to_tensor(rule.high, x.dtype)
        wp, wn = part(w, True), part(w, False)
        grad = _divide(relevance, op(x, w, b) - op(low, wp, part(b, True)) - op(high, wn, part(b, False)), s)
        return x * back(x, w, grad) - low * back(low, wp, grad) - high * back(high, wn, grad)
    if formula in ("flat", "wsquare"):
        ones = ops.ones_like(x)
        weight = ops.ones_like(w) if formula == "flat" else w * w
        return back(ones, weight, _divide(relevance, op(ones, weight, None), s))
    if formula != "epsilon":
        raise ModelError(f"unknown LRP rule formula {formula!r}")
    return x * back(x, w, _divide(relevance, op(x, w, b), rule.epsilon))


def _op(layer: keras.Layer) -> tuple[str, Op] | None:
    """(role, op) of a linear layer: its output before the activation from an input, a weight and a bias."""
    channels_last = getattr(layer, "data_format", "channels_last") == "channels_last"

    def bias_of(b: Any, rank: int) -> Any:
        return ops.reshape(b, (1,) * (rank - 1) + (-1,) if channels_last else (1, -1) + (1,) * (rank - 2))

    if isinstance(layer, _CONVS):
        def conv(inp: Any, w: Any, b: Any) -> Any:
            out = layer.convolution_op(inp, w)
            return out if b is None else out + bias_of(b, len(out.shape))

        return "conv", conv
    if isinstance(layer, _DEPTHWISE):
        def depthwise(inp: Any, w: Any, b: Any) -> Any:
            out = ops.depthwise_conv(inp, w, strides=layer.strides, padding=layer.padding,
                                     data_format=layer.data_format, dilation_rate=layer.dilation_rate)
            return out if b is None else out + bias_of(b, len(out.shape))

        return "conv", depthwise
    if isinstance(layer, keras.layers.Dense):
        def dense(inp: Any, w: Any, b: Any) -> Any:
            out = ops.matmul(inp, w)
            return out if b is None else out + b

        return "dense", dense
    return None


class Relevance:
    """The state of one traced pass: the rule each linear layer got, and the linear outputs a batch norm may merge."""

    def __init__(self, composite: Composite, custom: Custom, vjp: Vjp) -> None:
        self.composite, self.custom, self.vjp = composite, custom, vjp
        self.rules: dict[str, Rule] = {}
        self.first_seen = False
        self.outputs: dict[int, tuple[Any, Any, _Linear]] = {}  # id(output) -> (output, its input, the call)

    def rule(self, name: str, layer: keras.Layer, role: str) -> Rule:
        """The composite's rule for a layer, decided on its first call (in execution order, as in torch)."""
        if name not in self.rules:
            counts = self.composite.counts_as_first(role)
            rule = self.composite.rule_for(name, type(layer).__name__, role, counts and not self.first_seen)
            self.first_seen = self.first_seen or counts
            if rule.formula == "zbox" and (rule.low is None or rule.high is None):
                raise ModelError(f"the z-box rule of layer '{name}' has no input bounds")
            self.rules[name] = rule
        return self.rules[name]

    def ruled(self, x: Any, call: _Linear, value: Any) -> Any:
        """`value` (the layer's output for x) whose backward pass is the rule's."""
        return self.custom([x], ops.stop_gradient(value),
                           lambda inputs, relevance: [relevance_in(call, inputs[0], relevance, self.vjp)])

    def passed(self, x: Any, value: Any) -> Any:
        """`value` whose backward pass hands relevance to x unchanged."""
        return self.custom([x], ops.stop_gradient(value), lambda _, relevance: [relevance])

    def proportional(self, fn: Callable[..., Any], inputs: list[Any]) -> Any:
        """fn(*inputs), linear in them, whose backward splits R in proportion: R_k = x_k d fn / d x_k R / stab(y)."""
        value = fn(*inputs)

        def backward(xs: list[Any], relevance: Any) -> list[Any]:
            grads = self.vjp(fn, xs, _divide(relevance, fn(*xs), self.composite.stabilizer))
            return [x * g for x, g in zip(xs, grads, strict=True)]

        return self.custom(inputs, ops.stop_gradient(value), backward)

    def linear_call(self, name: str, layer: keras.Layer, role: str, op: Op) -> Callable[..., Any]:
        """The call of a Conv or Dense layer under its rule, its fused activation passing relevance."""
        def call(inputs: Any, *args: Any, **kwargs: Any) -> Any:
            if getattr(layer, "quantization_mode", None):
                raise ModelError(f"layer '{name}' is quantized ({layer.quantization_mode}); LRP needs float weights: "
                                 "explain the float model")
            weight = ops.convert_to_tensor(layer.kernel)
            bias = ops.convert_to_tensor(layer.bias) if getattr(layer, "bias", None) is not None else None
            linear = _Linear(self.rule(name, layer, role), op, weight, bias)
            out = self.ruled(inputs, linear, op(inputs, weight, bias))
            activation = layer.activation
            if activation is None or activation is keras.activations.linear:
                self.outputs[id(out)] = (out, inputs, linear)
                return out
            return self.passed(out, activation(out)) if activation in _PASSING else activation(out)

        return call

    def norm_call(self, layer: keras.Layer, original: Callable[..., Any]) -> Callable[..., Any]:
        """The call of a batch norm: merged into the linear call whose output it takes, else passing relevance."""
        def call(inputs: Any, *args: Any, **kwargs: Any) -> Any:
            value = original(inputs, *args, **kwargs)
            found = self.outputs.pop(id(inputs), None)
            rank = len(inputs.shape)
            if found is None or kwargs.get("training") or layer.axis not in (-1, rank - 1) \
                    or getattr(layer, "data_format", "channels_last") != "channels_last":
                return self.passed(inputs, value)
            _, x, linear = found
            return self.ruled(x, _merged(layer, linear), value)

        return call

    def passing_call(self, layer: keras.Layer, original: Callable[..., Any]) -> Callable[..., Any]:
        """The call of an activation layer, passing relevance (an Activation of another function keeps its gradient)."""
        def call(inputs: Any, *args: Any, **kwargs: Any) -> Any:
            value = original(inputs, *args, **kwargs)
            if isinstance(layer, keras.layers.Activation) and layer.activation not in _PASSING:
                return value
            return self.passed(inputs, value)

        return call

    def split_call(self, original: Callable[..., Any], merge: bool) -> Callable[..., Any]:
        """The call of an Add (`merge`: a list of inputs) or an average pool, splitting relevance in proportion."""
        def call(inputs: Any, *args: Any, **kwargs: Any) -> Any:
            if merge:
                return self.proportional(lambda *xs: original(list(xs), *args, **kwargs), list(inputs))
            return self.proportional(lambda x: original(x, *args, **kwargs), [inputs])

        return call


def _merged(norm: keras.Layer, linear: _Linear) -> _Linear:
    """The linear call with a batch norm's inference statistics merged into its weight and bias (new tensors)."""
    scale = ops.rsqrt(ops.convert_to_tensor(norm.moving_variance) + norm.epsilon)
    if norm.scale:
        scale = scale * ops.convert_to_tensor(norm.gamma)
    shift = -ops.convert_to_tensor(norm.moving_mean) * scale
    if norm.center:
        shift = shift + ops.convert_to_tensor(norm.beta)
    w = linear.weight
    # a Conv or Dense kernel ends in its outputs; a depthwise kernel in (inputs, multiplier), output i * m + k
    per_output = scale if int(w.shape[-1]) == int(scale.shape[0]) else ops.reshape(scale, tuple(w.shape[-2:]))
    bias = shift if linear.bias is None else linear.bias * scale + shift
    return _Linear(linear.rule, linear.op, w * per_output, bias)


def _replacement(state: Relevance, name: str, layer: keras.Layer) -> Callable[..., Any] | None:
    """The call that makes a layer carry relevance, or None where it keeps its gradient."""
    linear = _op(layer)
    if linear is not None:
        return state.linear_call(name, layer, *linear)
    if isinstance(layer, keras.layers.BatchNormalization):
        return state.norm_call(layer, layer.call)
    if isinstance(layer, (*_ACTIVATION_LAYERS, keras.layers.Activation)):
        return state.passing_call(layer, layer.call)
    if isinstance(layer, keras.layers.Add):
        return state.split_call(layer.call, merge=True)
    if isinstance(layer, _POOLS):
        return state.split_call(layer.call, merge=False)
    return None


@contextlib.contextmanager
def relevance_rules(composite: Composite | None, layers: Iterable[tuple[str, keras.Layer]], custom: Custom,
                    vjp: Vjp) -> Iterator[None]:
    """Within the block, the backward pass through `layers` propagates relevance by the composite's rules;
    with no composite nothing changes."""
    if composite is None:
        yield
        return
    state = Relevance(composite, custom, vjp)
    restores: list[Callable[[], None]] = []
    seen: set[int] = set()
    try:
        for name, layer in layers:
            if id(layer) in seen:  # a layer shared by two nested models: one replacement, under its first name
                continue
            seen.add(id(layer))
            call = _replacement(state, name, layer)
            if call is not None:
                restores.append(swap_attribute(layer, "call", call))
        yield
    finally:
        for restore in reversed(restores):
            restore()
        state.outputs.clear()
