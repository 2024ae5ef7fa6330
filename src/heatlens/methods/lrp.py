"""Layer-wise relevance propagation: the target's score redistributed from the output back to the pixels, layer by
layer, by the rules of a composite (methods/lrp_rules.py), in one traced pass whose backward carries relevance.

The adapters apply the rules; this module picks the composite, fills the z-box bounds from the model's
preprocessing, scales the relevance to the explained score and reports how far conservation holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import MethodError
from ..models.base import Network
from .lrp_rules import STABILISER, Composite, ZBox, check_rule, named_composite, user_composite
from .registry import MethodOutput, TargetFn, register
from .shared import at_least

Bounds = float | Sequence[float] | None


@register("lrp", "Layer-wise relevance propagation with a composite of rules (signed; sums to the score)",
          "Bach et al. 2015, On Pixel-Wise Explanations for Non-Linear Classifier Decisions by Layer-Wise Relevance "
          "Propagation; Montavon et al. 2019, Layer-Wise Relevance Propagation: An Overview",
          needs_gradients=True, uses_layer=False)
def lrp(network: Network, x: np.ndarray, targets: TargetFn, composite: str | Mapping = "epsilon_plus",
        epsilon: float = STABILISER, gamma: float = 0.25, stabilizer: float = STABILISER, low: Bounds = None,
        high: Bounds = None) -> MethodOutput:
    """R_out = y_c at the target; each layer passes R_i = sum_j (its rule's share of x_i in z_j) R_j down to the
    input; A = R per input channel, M = sum_c A.

    composite: 'epsilon_plus', 'epsilon_gamma_box', 'epsilon_alpha2_beta1', 'epsilon_plus_flat' (zennit's), or a
    mapping {layer kind or name pattern: rule name or Rule}. epsilon / gamma: those rules' parameters; low / high:
    the z-box bounds per input channel, by default what the preprocessing makes of black and white pixels;
    stabilizer: the rules' and the proportional splits' (sums, average pools) stabiliser.
    extras: relevance_sum and score (N, K), and absorbed = score - relevance_sum, what biases and stabilisers took."""
    for name, value in (("epsilon", epsilon), ("gamma", gamma), ("stabilizer", stabilizer)):
        at_least(name, value)
    plan = _composite(network, x, composite, epsilon, gamma, stabilizer)
    if any(isinstance(rule, ZBox) and rule.low is None for rule in plan.rules):
        plan = plan.bounded(*input_bounds(network, x, low, high))
    for rule in plan.rules:
        check_rule(rule)
    trace = network.trace(x, targets, wrt=["input"], rules=plan)
    ids = np.asarray(trace.targets)
    scores = np.take_along_axis(trace.logits, ids, axis=1).astype(np.float32)
    attributions = trace.gradients["input"] * scores[:, :, None, None, None]
    total = attributions.sum(axis=(2, 3, 4), dtype=np.float64).astype(np.float32)
    return MethodOutput(attributions.sum(axis=-1), trace.logits, ids, attributions=attributions,
                        extras={"composite": plan.name, "relevance_sum": total, "score": scores,
                                "absorbed": scores - total}, notes=[conservation_note(total, scores)])


def conservation_note(total: np.ndarray, scores: np.ndarray) -> str:
    """How much of the explained scores reached the pixels, in words: the median share over images and targets."""
    explained = scores != 0
    if not explained.any():
        return "lrp: the explained scores are 0, so there was no relevance to conserve (extras: relevance_sum)"
    share = float(np.median(total[explained] / scores[explained]))
    return (f"lrp: the pixels' relevance sums to {share:.3g} x the explained score (median over images and "
            "targets); the rest went into biases and stabilisers (extras: relevance_sum, score, absorbed)")


def _composite(network: Network, x: np.ndarray, composite: str | Mapping, epsilon: float, gamma: float,
               stabilizer: float) -> Composite:
    """The composite by name, or the user's mapping checked against the network's layers."""
    if isinstance(composite, str):
        return named_composite(composite.strip().lower().replace("-", "_"), epsilon, gamma, stabilizer)
    if isinstance(composite, Mapping):
        layers = [(info.name, info.kind) for info in network.layers(x.shape[1:])]
        return user_composite(composite, layers, epsilon, gamma, stabilizer)
    raise MethodError(f"composite must be a composite's name or a mapping {{layer kind or name pattern: rule}}. "
                      f"Received: {type(composite).__name__}")


def input_bounds(network: Network, x: np.ndarray, low: Bounds, high: Bounds) -> tuple[tuple[float, ...], ...]:
    """(low, high) per input channel for the z-box rule: as given, else the model inputs of an all-black and an
    all-white photo (the preprocessing's range), else, for model-ready inputs, the range of the inputs explained."""
    channels = x.shape[-1]
    if (low is None) != (high is None):
        raise MethodError("give both low= and high= (the z-box bounds), or neither to take them from the preprocessing")
    if low is not None and high is not None:
        return _per_channel(low, channels, "low"), _per_channel(high, channels, "high")
    if network.preprocess is not None:
        photos = np.stack([np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 255, np.uint8)])
        prepared = network.prepare(photos).reshape(2, -1, channels)
        return tuple(map(float, prepared.min(axis=(0, 1)))), tuple(map(float, prepared.max(axis=(0, 1))))
    flat = x.reshape(-1, channels)
    return tuple(map(float, flat.min(axis=0))), tuple(map(float, flat.max(axis=0)))


def _per_channel(value: float | Sequence[float], channels: int, name: str) -> tuple[float, ...]:
    values = [float(value)] * channels if np.ndim(value) == 0 else [float(v) for v in value]  # type: ignore[union-attr,arg-type]
    if len(values) != channels:
        raise MethodError(f"{name}= needs one bound or one per input channel ({channels}). Received: {value!r}")
    return tuple(values)
