"""Explanation methods, each written once over the Network primitives; importing this registers them all."""

from . import cam, gradients, perturbation  # noqa: F401  (importing registers the methods)
from .registry import METHODS, MethodInfo, MethodOutput, get_method

__all__ = ["METHODS", "MethodInfo", "MethodOutput", "get_method"]
