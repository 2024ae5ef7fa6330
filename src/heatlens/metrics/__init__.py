"""Numbers to trust a map by: faithfulness, localisation, robustness, complexity and sanity metrics.

Each metric is a function (model, images, explanation, target=..., **its parameters) -> MetricResult, where
explanation is an Explanation of the images or a method name; METRICS lists them, compute(name, ...) runs one.
"""

from . import curves, faithfulness, localisation, robustness, sanity  # noqa: F401  (importing registers them)
from .core import MetricResult
from .curves import deletion, insertion
from .registry import METRICS, MetricInfo, compute, get_metric

__all__ = ["METRICS", "MetricInfo", "MetricResult", "compute", "deletion", "get_metric", "insertion"]
