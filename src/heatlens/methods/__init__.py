"""Explanation methods, each written once over the Network primitives; importing this registers them all."""

from . import cam  # noqa: F401  (registers the CAM family)
from .registry import METHODS, MethodInfo, MethodOutput, get_method

__all__ = ["METHODS", "MethodInfo", "MethodOutput", "get_method"]
