"""Explanation methods, each written once over the Network primitives; importing this registers them all."""

# importing registers the methods; `heatlens methods` and the app list them in this order
# isort: off
from . import cam, gradients, lrp, vit, perturbation, lime, shap_partition  # noqa: F401
# isort: on
from .registry import METHODS, MethodInfo, MethodOutput, get_method

__all__ = ["METHODS", "MethodInfo", "MethodOutput", "get_method"]
