"""Method name -> implementation, with capability flags the API and the CLI use to route and explain."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import MethodError, close_matches

TargetFn = Callable[[np.ndarray], np.ndarray]
LayerSpec = str | Sequence[str] | None
"""A layer option: a name or position, a list of them (for the methods that fuse several), or None (the default)."""


@dataclass
class MethodOutput:
    """What a method returns: maps (N, K, h, w) on the model input's grid (or the layer's), the logits
    (N, classes) and target ids (N, K) it explained, the layer used, method-specific extras, for
    pixel methods the signed attributions (N, K, h, w, C) in the input space the model sees, and notes the
    result should say (a measured property of this run, such as how much LRP relevance was conserved)."""

    maps: np.ndarray
    logits: np.ndarray
    ids: np.ndarray
    layer: str | None = None
    extras: dict = field(default_factory=dict)
    attributions: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MethodInfo:
    """A registered method and what it needs from a model."""

    name: str
    fn: Callable[..., MethodOutput]
    summary: str
    paper: str
    needs_gradients: bool
    uses_layer: bool
    black_box: bool = False


METHODS: dict[str, MethodInfo] = {}


def register(
    name: str, summary: str, paper: str, *, needs_gradients: bool, uses_layer: bool, black_box: bool = False
) -> Callable[[Callable[..., MethodOutput]], Callable[..., MethodOutput]]:
    """Decorator adding a method to the registry under `name`."""

    def add(fn: Callable[..., MethodOutput]) -> Callable[..., MethodOutput]:
        METHODS[name] = MethodInfo(name, fn, summary, paper, needs_gradients, uses_layer, black_box)
        return fn

    return add


def get_method(name: str) -> MethodInfo:
    """Look a method up by name (case and dashes ignored); unknown names list close ones."""
    key = name.strip().lower().replace("-", "_")
    if key not in METHODS:
        raise MethodError(f"unknown method '{name}'.{close_matches(key, METHODS)} See `heatlens methods`")
    return METHODS[key]
