"""The metric registry: name -> function, family, which way is better, its paper, and what it needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import MethodError, close_matches

FAMILIES = ("faithfulness", "localisation", "robustness", "complexity", "sanity")


@dataclass(frozen=True)
class MetricInfo:
    """A registered metric. `needs_region`: it takes region= (boxes or masks of the object); `reruns`: it explains
    perturbed inputs again (so it needs a method name or an Explanation heatlens can reproduce)."""

    name: str
    fn: Callable[..., Any]
    family: str
    higher_is_better: bool
    summary: str
    paper: str
    needs_region: bool = False
    reruns: bool = False


METRICS: dict[str, MetricInfo] = {}


def register(name: str, family: str, higher_is_better: bool, summary: str, paper: str, needs_region: bool = False,
             reruns: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: add a metric function to METRICS under `name`."""
    if family not in FAMILIES:
        raise ValueError(f"unknown metric family {family!r}")

    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        METRICS[name] = MetricInfo(name, fn, family, higher_is_better, summary, paper, needs_region, reruns)
        return fn

    return add


def get_metric(name: str) -> MetricInfo:
    """The MetricInfo for `name`; an unknown name gets the close ones and the list."""
    if name not in METRICS:
        raise MethodError(f"unknown metric {name!r}.{close_matches(name, METRICS)} Known: {', '.join(METRICS)}")
    return METRICS[name]


def compute(name: str, model: Any, images: Any, explanation: Any = "gradcam", **params: Any) -> Any:
    """Run the metric `name` (see METRICS) on a model's maps of images: explanation is an Explanation or a method
    name; params are the metric's own (target=, steps=, region=, ...). Returns a MetricResult."""
    return get_metric(name).fn(model, images, explanation, **params)
