"""Numbers to trust a map by: faithfulness, localisation, robustness, complexity and sanity metrics.

Each metric is a function (model, images, explanation, target=..., **its parameters) -> MetricResult, where
explanation is an Explanation of the images or a method name; METRICS lists them, compute(name, ...) runs one.
"""

from . import curves, faithfulness, localisation, robustness, sanity  # noqa: F401  (importing registers them)
from .core import MetricResult
from .curves import deletion, insertion
from .faithfulness import (
    average_drop,
    faithfulness_correlation,
    increase_in_confidence,
    infidelity,
    lerf,
    morf,
    road,
)
from .localisation import energy_pointing_game, pointing_game, relevance_mass, relevance_rank
from .regions import boxes_for, read_boxes
from .registry import METRICS, MetricInfo, compute, get_metric
from .robustness import avg_sensitivity, complexity, max_sensitivity, sparseness
from .sanity import model_randomisation, random_logit

__all__ = [
    "METRICS",
    "MetricInfo",
    "MetricResult",
    "average_drop",
    "avg_sensitivity",
    "boxes_for",
    "complexity",
    "compute",
    "deletion",
    "energy_pointing_game",
    "faithfulness_correlation",
    "get_metric",
    "increase_in_confidence",
    "infidelity",
    "insertion",
    "lerf",
    "max_sensitivity",
    "model_randomisation",
    "morf",
    "pointing_game",
    "random_logit",
    "read_boxes",
    "relevance_mass",
    "relevance_rank",
    "road",
    "sparseness",
]
