"""Method options checked against the types the method's signature declares, before any work is done.

A wrong type is one MethodError line naming the option, what it takes and what it got, instead of a numpy
error deep inside the method (`window=2.5`, `n_masks="4"`, `seed=-1`). Ranges specific to one option
(positive counts, 0 < p <= 1) stay with the method that knows them.
"""

from __future__ import annotations

import collections.abc
import math
import types
import typing
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import MethodError

LARGEST_COUNT = 2**31 - 1  # counts and sizes above this cannot be allocated, whatever the method


def check_option_types(method: str, fn: Callable[..., Any], options: dict[str, Any]) -> None:
    """Refuse an option whose value does not have the type the method declares for it."""
    hints = typing.get_type_hints(fn)
    for key, value in options.items():
        hint = hints.get(key)
        if hint is not None and not matches(value, hint):
            raise MethodError(f"{key}={value!r} is not valid for {method}: {key} takes {describe(hint)}")
        if key == "seed" and isinstance(value, int | np.integer) and value < 0:
            raise MethodError(f"seed must be a non-negative integer. Received: {value!r}")


def takes_several(fn: Callable[..., Any], parameter: str) -> bool:
    """True when the method's `parameter` accepts a list (e.g. several layers for CAM fusion)."""
    hint = typing.get_type_hints(fn).get(parameter)
    return hint is not None and matches(["a"], hint)


def matches(value: Any, hint: Any) -> bool:
    """Whether `value` fits the annotation `hint` (unions, None, bool, int, float, str, arrays, tuples,
    sequences, callables and other classes; `object`, `Any` and aliases it cannot read accept anything)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, arm) for arm in typing.get_args(hint))
    if hint is type(None) or hint is None:
        return value is None
    if hint is bool:
        return isinstance(value, bool | np.bool_)
    if hint is int:
        return _is_int(value) and abs(int(value)) <= LARGEST_COUNT
    if hint is float:
        return _is_number(value) and finite_number(value)
    if hint is str:
        return isinstance(value, str)
    if hint is np.ndarray:
        return isinstance(value, np.ndarray)
    if origin is tuple:
        args = typing.get_args(hint)
        return (isinstance(value, tuple | list) and len(value) == len(args)
                and all(matches(v, a) for v, a in zip(value, args, strict=True)))
    if origin in (collections.abc.Sequence, list):
        (arg,) = typing.get_args(hint)
        return isinstance(value, list | tuple) and all(matches(v, arg) for v in value)
    if origin is collections.abc.Callable or hint is collections.abc.Callable:
        return callable(value)
    if isinstance(hint, type) and hint is not object:
        return isinstance(value, hint)
    return True


def describe(hint: Any) -> str:
    """A reader's name for an annotation: 'an integer or None', 'a number or a string', ..."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(arm) for arm in typing.get_args(hint))
    names = {bool: "True or False", int: "an integer", float: "a finite number", str: "a string",
             np.ndarray: "a numpy array", type(None): "None"}
    if hint in names:
        return names[hint]
    if origin is tuple:
        return f"a tuple of {len(typing.get_args(hint))} values"
    if origin in (collections.abc.Sequence, list):
        return f"a list of {describe(typing.get_args(hint)[0])}s".replace("a list of a ", "a list of ")
    return getattr(hint, "__name__", str(hint))


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def finite_number(value: Any) -> bool:
    """True for numbers a float holds and that are finite (10**400 is neither)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)
