"""What a traced pass differentiates: an objective, one type per kind, so adapters dispatch on the type.

`Logits` (the model's scores as they are), `Softmax` (their probabilities), `ChannelMean` / `ChannelMax`
(a layer's channels scored by their mean over positions or their strongest unit; targets then are channel
indices) and `Custom` (a function of the model's raw output, written with the framework's ops).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import MethodError


@dataclass(frozen=True)
class Logits:
    """The model's scores (N, classes) as they are."""


@dataclass(frozen=True)
class Softmax:
    """The softmax probabilities of the model's scores."""


@dataclass(frozen=True)
class ChannelMean:
    """Each channel of `layer` scored by its mean over positions: (N, C) scores."""

    layer: str


@dataclass(frozen=True)
class ChannelMax:
    """Each channel of `layer` scored by its strongest unit: (N, C) scores."""

    layer: str


@dataclass(frozen=True)
class Custom:
    """`fn(raw model output)` -> (N,) or (N, K) scores, built with the framework's ops."""

    fn: Callable[[Any], Any]


LOGITS = Logits()
Objective = Logits | Softmax | ChannelMean | ChannelMax | Custom
ChannelObjective = ChannelMean | ChannelMax
OBJECTIVES = (Logits, Softmax, ChannelMean, ChannelMax, Custom)


def check_objective(objective: object) -> Objective:
    """`objective` if it is one of the objective types; otherwise a MethodError naming them."""
    if not isinstance(objective, OBJECTIVES):
        raise MethodError("objective must be Logits(), Softmax(), ChannelMean(layer), ChannelMax(layer) or "
                          f"Custom(fn) from heatlens.models.objectives. Received: {objective!r}")
    return objective


def channel_layer(objective: Objective) -> str | None:
    """The layer whose channels are the scores, for channel objectives; None otherwise."""
    return objective.layer if isinstance(objective, ChannelMean | ChannelMax) else None
