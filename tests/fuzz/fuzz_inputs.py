"""What the explain() campaign feeds heatlens, drawn with hypothesis: images, targets, layers and method
options, good and bad. Each draw carries a repro label, whether it came from the valid pool (for the
`refused` check) and, for targets, what an ok result must have explained."""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st
from PIL import Image

SIZES = [(1, 1), (1, 9), (9, 1), (2, 3), (5, 5), (8, 8), (16, 16), (12, 20), (24, 24), (33, 17), (48, 48),
         (3, 97), (97, 3), (120, 90)]


@dataclass
class Drawn:
    """A drawn argument: its value, a short repro text, and whether it came from the valid pool."""

    value: Any
    label: str
    valid: bool = False
    expect: Any = None  # targets: ("ids", array) | ("top", k) | "refuse" | None (no judgement)


def _rng(data: st.DataObject) -> np.random.Generator:
    return np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="numpy seed"))


def _size(data: st.DataObject, fixed: int | None) -> tuple[int, int]:
    if fixed is not None:
        return fixed, fixed
    return data.draw(st.sampled_from(SIZES), label="size")


# ---------------------------------------------------------------- images

GOOD_PHOTOS = ["mixed sizes", "uint8", "uint8", "uint8 batch", "uint8 batch", "grey", "grey1", "rgba", "uint16",
               "uint16 low", "bool", "float01", "float64 01", "float16 01", "int64", "list", "list of PIL",
               "non-contiguous", "read-only", "PIL", "PIL mode I;16", "PIL mode CMYK"]
BAD_PHOTOS = ["float out of range", "nan", "negative int", "rank1", "rank5", "empty", "two channels",
              "empty list", "none", "missing path", "object", "nested lists", "PIL mode F", "PIL mode LAB",
              "PIL mode HSV"]
GOOD_INPUTS = ["float32", "float32", "float32", "rank3", "float64", "float16", "uint8", "int", "zeros", "list",
               "non-contiguous", "read-only", "fortran", "tiny"]
BAD_INPUTS = ["one channel", "four channels", "nan", "inf", "huge", "rank2", "rank5", "empty batch", "bool", "complex",
              "object"]


def photos(data: st.DataObject, bad: bool) -> Drawn:
    """Images for a network that prepares photos: uint8, 16-bit, bool, greyscale, RGBA, floats, lists, junk."""
    rng = _rng(data)
    h, w = _size(data, None)
    n = data.draw(st.integers(1, 3), label="batch")
    big = min(h, w) >= 4
    kind = data.draw(st.sampled_from(BAD_PHOTOS if bad else GOOD_PHOTOS), label="image kind")
    u8 = lambda *shape: rng.integers(0, 256, shape, dtype=np.uint8)  # noqa: E731 - a local shorthand
    table: dict[str, Any] = {
        "uint8": lambda: Drawn(u8(h, w, 3), f"uint8 {(h, w, 3)}", big),
        "uint8 batch": lambda: Drawn(u8(n, h, w, 3), f"uint8 {(n, h, w, 3)}", big),
        "grey": lambda: Drawn(u8(h, w), f"uint8 {(h, w)}"),
        "grey1": lambda: Drawn(u8(h, w, 1), f"uint8 {(h, w, 1)}"),
        "rgba": lambda: Drawn(u8(h, w, 4), f"uint8 {(h, w, 4)}"),
        "uint16": lambda: Drawn(rng.integers(0, 65536, (h, w, 3)).astype(np.uint16), f"uint16 {(h, w, 3)}"),
        "uint16 low": lambda: Drawn(rng.integers(0, 200, (h, w)).astype(np.uint16), f"uint16 0..199 {(h, w)}"),
        "bool": lambda: Drawn(rng.random((h, w)) > 0.5, f"bool {(h, w)}"),
        "float01": lambda: Drawn(rng.random((n, h, w, 3), np.float32), f"float32 in [0, 1] {(n, h, w, 3)}"),
        "float64 01": lambda: Drawn(rng.random((h, w, 3)), f"float64 in [0, 1] {(h, w, 3)}"),
        "float16 01": lambda: Drawn(rng.random((h, w, 3)).astype(np.float16), f"float16 in [0, 1] {(h, w, 3)}"),
        "int64": lambda: Drawn(rng.integers(0, 256, (h, w, 3)), f"int64 0..255 {(h, w, 3)}"),
        "float out of range": lambda: Drawn(rng.uniform(-1, 2, (h, w, 3)), f"float64 in [-1, 2] {(h, w, 3)}"),
        "nan": lambda: Drawn(_with_nan(rng.random((h, w, 3))), f"float64 with NaN {(h, w, 3)}"),
        "negative int": lambda: Drawn(rng.integers(-5, 5, (h, w, 3)).astype(np.int32), f"int32 -5..4 {(h, w, 3)}"),
        "rank1": lambda: Drawn(u8(w), f"uint8 {(w,)}"),
        "rank5": lambda: Drawn(u8(1, 1, h, w, 3), f"uint8 {(1, 1, h, w, 3)}"),
        "empty": lambda: Drawn(np.zeros((0, w, 3), np.uint8), f"uint8 {(0, w, 3)}"),
        "two channels": lambda: Drawn(u8(h, w, 2), f"uint8 {(h, w, 2)}"),
        "list": lambda: Drawn([u8(h, w, 3) for _ in range(n)], f"[uint8 {(h, w, 3)}] * {n}", big),
        "list of PIL": lambda: Drawn([Image.fromarray(u8(h, w, 3)) for _ in range(n)],
                                     f"[PIL RGB {w}x{h}] * {n}", big),
        "mixed sizes": lambda: Drawn([u8(h, w, 3), u8(h + 1, w, 3)], f"[uint8 {(h, w, 3)}, uint8 {(h + 1, w, 3)}]"),
        "empty list": lambda: Drawn([], "[]"),
        "none": lambda: Drawn(None, "None"),
        "missing path": lambda: Drawn("/nonexistent/photo.jpg", "'/nonexistent/photo.jpg'"),
        "object": lambda: Drawn(np.array([[object()]], dtype=object), "object array (1, 1)"),
        "non-contiguous": lambda: Drawn(u8(n, h, 2 * w, 3)[:, :, ::2], f"uint8 {(n, h, 2 * w, 3)}[:, :, ::2]", big),
        "read-only": lambda: Drawn(_read_only(u8(n, h, w, 3)), f"read-only uint8 {(n, h, w, 3)}", big),
        "nested lists": lambda: Drawn(u8(h, w, 3).tolist(), f"nested lists {(h, w, 3)}"),
        "PIL": lambda: Drawn(Image.fromarray(u8(h, w, 3)), f"PIL RGB {w}x{h}", big),
        "PIL mode I;16": lambda: Drawn(Image.fromarray(rng.integers(0, 65536, (h, w)).astype(np.uint16)),
                                       f"PIL I;16 {w}x{h}"),
        "PIL mode F": lambda: Drawn(Image.fromarray(rng.random((h, w), np.float32) * 300), f"PIL F 0..300 {w}x{h}"),
        "PIL mode CMYK": lambda: Drawn(Image.fromarray(u8(h, w, 3)).convert("CMYK"), f"PIL CMYK {w}x{h}"),
        "PIL mode LAB": lambda: Drawn(Image.fromarray(u8(h, w, 3), "RGB").convert("LAB"), f"PIL LAB {w}x{h}"),
        "PIL mode HSV": lambda: Drawn(Image.fromarray(u8(h, w, 3)).convert("HSV"), f"PIL HSV {w}x{h}"),
    }
    return table[kind]()


def model_inputs(data: st.DataObject, fixed: int | None, bad: bool) -> Drawn:
    """Model-ready inputs for preprocess=None: floats of every kind, ranks, layouts and sizes, and junk."""
    rng = _rng(data)
    h, w = _size(data, None if bad else fixed)
    n = data.draw(st.integers(1, 3), label="batch")
    good = (h, w) == (fixed, fixed) if fixed is not None else min(h, w) >= 4
    kind = data.draw(st.sampled_from(BAD_INPUTS if bad else GOOD_INPUTS), label="input kind")
    f32 = lambda *shape: rng.uniform(-2, 2, shape).astype(np.float32)  # noqa: E731 - a local shorthand
    table: dict[str, Any] = {
        "float32": lambda: Drawn(f32(n, h, w, 3), f"float32 in [-2, 2] {(n, h, w, 3)}", good),
        "rank3": lambda: Drawn(f32(h, w, 3), f"float32 in [-2, 2] {(h, w, 3)}", good),
        "float64": lambda: Drawn(f32(n, h, w, 3).astype(np.float64), f"float64 {(n, h, w, 3)}"),
        "float16": lambda: Drawn(f32(n, h, w, 3).astype(np.float16), f"float16 {(n, h, w, 3)}"),
        "uint8": lambda: Drawn(rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8), f"uint8 {(n, h, w, 3)}"),
        "int": lambda: Drawn(rng.integers(-3, 3, (n, h, w, 3)), f"int64 {(n, h, w, 3)}"),
        "one channel": lambda: Drawn(f32(n, h, w, 1), f"float32 {(n, h, w, 1)}"),
        "four channels": lambda: Drawn(f32(n, h, w, 4), f"float32 {(n, h, w, 4)}"),
        "nan": lambda: Drawn(_with_nan(f32(n, h, w, 3)), f"float32 with NaN {(n, h, w, 3)}"),
        "inf": lambda: Drawn(_with_nan(f32(n, h, w, 3), np.inf), f"float32 with inf {(n, h, w, 3)}"),
        "huge": lambda: Drawn(f32(n, h, w, 3) * np.float32(1e30), f"float32 in [-2e30, 2e30] {(n, h, w, 3)}"),
        "tiny": lambda: Drawn(f32(n, h, w, 3) * np.float32(1e-30), f"float32 in [-2e-30, 2e-30] {(n, h, w, 3)}"),
        "zeros": lambda: Drawn(np.zeros((n, h, w, 3), np.float32), f"zeros float32 {(n, h, w, 3)}", good),
        "rank2": lambda: Drawn(f32(h, w), f"float32 {(h, w)}"),
        "rank5": lambda: Drawn(f32(1, n, h, w, 3), f"float32 {(1, n, h, w, 3)}"),
        "empty batch": lambda: Drawn(np.zeros((0, h, w, 3), np.float32), f"float32 {(0, h, w, 3)}"),
        "list": lambda: Drawn([f32(h, w, 3) for _ in range(n)], f"[float32 {(h, w, 3)}] * {n}"),
        "bool": lambda: Drawn(rng.random((n, h, w, 3)) > 0.5, f"bool {(n, h, w, 3)}"),
        "complex": lambda: Drawn(f32(n, h, w, 3) + 1j, f"complex {(n, h, w, 3)}"),
        "object": lambda: Drawn(np.empty((n, h, w, 3), dtype=object), f"object {(n, h, w, 3)}"),
        "non-contiguous": lambda: Drawn(f32(n, h, 2 * w, 3)[:, :, ::2], f"float32 {(n, h, 2 * w, 3)}[:, :, ::2]",
                                        good),
        "read-only": lambda: Drawn(_read_only(f32(n, h, w, 3)), f"read-only float32 {(n, h, w, 3)}", good),
        "fortran": lambda: Drawn(np.asfortranarray(f32(n, h, w, 3)), f"Fortran-order float32 {(n, h, w, 3)}", good),
    }
    return table[kind]()


def _with_nan(a: np.ndarray, value: float = np.nan) -> np.ndarray:
    a.flat[len(a.flat) // 2] = value
    return a


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def count_images(value: Any) -> int | None:
    """How many images a (valid) images argument holds."""
    if isinstance(value, list):
        return len(value)
    if isinstance(value, np.ndarray):
        return len(value) if value.ndim == 4 else 1
    return 1


def image_size(value: Any, mode: str) -> tuple[int, int] | None:
    """The (H, W) maps must have for an images argument (None when it cannot be said)."""
    first = value[0] if isinstance(value, list) and value else value
    if isinstance(first, Image.Image):
        return first.height, first.width
    arr = np.asarray(first) if not isinstance(first, str | type(None)) else None
    if arr is None or arr.ndim < 2:
        return None
    if mode == "raw" or isinstance(value, list):
        return arr.shape[-3:-1] if arr.ndim >= 3 else None
    return arr.shape[1:3] if arr.ndim == 4 else arr.shape[:2]


# ---------------------------------------------------------------- targets

def targets(data: st.DataObject, n: int, classes: int, names: list[str] | None, bad: bool) -> Drawn:
    """Target specs: 'topK', ids, names, lists, per-image lists, numpy scalars and arrays, callables, junk."""
    ids = lambda rows: ("ids", np.array(rows))  # noqa: E731 - a local shorthand
    valid_name = names[3] if names else "tabby cat"
    pool: list[tuple[Any, str, bool, Any]] = [
        ("top1", "'top1'", True, ("top", 1)),
        ("top2", "'top2'", True, ("top", 2)),
        ("top3", "'top3'", True, ("top", 3)),
        (0, "0", True, ids([[0]] * n)),
        (3, "3", True, ids([[3]] * n)),
        ([0, 2], "[0, 2]", True, ids([[0, 2]] * n)),
        ([[i % classes] for i in range(n)], "per-image [[i % C] ...]", True, ids([[i % classes] for i in range(n)])),
        (np.int64(2), "np.int64(2)", False, ids([[2]] * n)),
        (np.array(2), "np.array(2)", False, None),
        (np.array([1, 2]), "np.array([1, 2])", False, None),
        ("TOP1", "'TOP1'", False, None),
        (" top2 ", "' top2 '", False, None),
        ("top0", "'top0'", False, "refuse"),
        ("top-1", "'top-1'", False, "refuse"),
        (f"top{classes + 1}", "'top{C+1}'", False, "refuse"),
        ("top", "'top'", False, "refuse"),
        ("top1.5", "'top1.5'", False, "refuse"),
        (-1, "-1", False, "refuse"),
        (classes, "C (one past the last class)", False, "refuse"),
        (10**30, "10**30", False, "refuse"),
        (2**32 + 1, "2**32 + 1", False, "refuse"),
        (2**63, "2**63", False, "refuse"),
        (1.7, "1.7", False, "refuse"),
        (2.0, "2.0", False, None),
        (float("nan"), "float('nan')", False, "refuse"),
        (np.array([[1.7]]), "np.array([[1.7]])", False, "refuse"),
        (np.float32(1.5), "np.float32(1.5)", False, "refuse"),
        (True, "True", False, None),
        (None, "None", False, None),
        ("²", "'²'", False, "refuse" if not names or "²" not in names else None),
        ("3", "'3'", False, None),
        ("", "''", False, "refuse"),
        ("nope", "'nope'", False, "refuse"),
        (valid_name, repr(valid_name), bool(names), ids([[3]] * n) if names else "refuse"),
        ([valid_name, 0], f"[{valid_name!r}, 0]", False, ids([[3, 0]] * n) if names else "refuse"),
        ([], "[]", False, "refuse"),
        ([[]], "[[]]", False, "refuse"),
        ([[]] * n, "[[]] * N", False, "refuse"),
        ([[0], [1, 2]], "[[0], [1, 2]] (ragged)", False, "refuse"),
        ([[0]] * (n + 1), "[[0]] * (N + 1) (a row too many)", False, "refuse"),
        ([[0, 1]], "[[0, 1]] (one row)", False, None if n == 1 else "refuse"),
        ([0, [1]], "[0, [1]]", False, "refuse"),
        ({0: 1}, "{0: 1}", False, "refuse"),
        ({1}, "{1}", False, None),
        ((0, 1), "(0, 1)", False, None),
        (b"top1", "b'top1'", False, None),
        (lambda s: np.argsort(-s, axis=1)[:, :2], "lambda s: argsort(-s)[:, :2]", False, ("top", 2)),
        (lambda s: s.argmax(1)[:, None], "lambda s: argmax(1)[:, None]", False, ("top", 1)),
        (lambda s: s.argmax(1), "lambda s: s.argmax(1)", False, ("top", 1)),
        (lambda s: [[0], [1, 2]][: len(s)], "lambda s: ragged lists", False, "refuse" if n > 1 else None),
        (lambda s: np.full((len(s), 1), 1.7), "lambda s: np.full((N, 1), 1.7)", False, "refuse"),
        (lambda s: np.full((len(s), 1), classes + 5), "lambda s: out-of-range ids", False, "refuse"),
        (lambda s: np.zeros((len(s) + 1, 1), int), "lambda s: a row too many", False, "refuse"),
        (lambda s: np.zeros((len(s), 0), int), "lambda s: zero targets", False, "refuse"),
        (lambda s: 1 / 0, "lambda s: 1 / 0", False, "refuse"),
        (lambda s: "tabby", "lambda s: 'tabby'", False, None),
        (lambda s: None, "lambda s: None", False, "refuse"),
        (lambda: 0, "lambda: 0 (no argument)", False, "refuse"),
    ]
    acceptable = {"np.int64(2)", "lambda s: argsort(-s)[:, :2]", "lambda s: argmax(1)[:, None]"}
    is_good = [entry[2] or entry[1] in acceptable for entry in pool]
    chosen = [entry for entry, good in zip(pool, is_good, strict=True) if good != bad]
    value, label, valid, expect = data.draw(st.sampled_from(chosen), label="target")
    if valid and isinstance(value, str) and value.startswith("top") and int(value[3:]) > classes:
        valid, expect = False, "refuse"
    return Drawn(value, label, valid, expect)


# ---------------------------------------------------------------- layers

def layers(data: st.DataObject, names: list[str], bad: bool, module_of: Any = None) -> Drawn:
    """Layer arguments: None (the default), real names and lists of them; bad: unknown names and junk."""
    real = names or ["conv1"]
    last, first = real[-1], real[0]
    if not bad:
        pool: list[tuple[Any, str]] = [(None, "None"), (None, "None"),
                                       (data.draw(st.sampled_from(real), label="a layer name"), "a real name"),
                                       ([first, real[len(real) // 2]], "a list of two real names")]
    else:
        pool = [((first,), "a one-name tuple"), ([], "[]"), ([""], "['']"), ("", "''"), ("nope", "'nope'"),
                (last + ".", "a real name plus '.'"), (3, "3"), (3.5, "3.5"), ([3], "[3]"), (b"conv", "b'conv'"),
                ("features", "'features' (a container)"), ("²", "'²'"), ([first, first], "a name twice")]
        if module_of is not None:
            pool.append((module_of, "a module object"))
    value, label = data.draw(st.sampled_from(pool), label="layer")
    if isinstance(value, str) or (isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value)):
        label = repr(value)
    return Drawn(value, label, value is None)


# ---------------------------------------------------------------- method options

BUDGETS: dict[str, list[Any]] = {  # always passed, small, so every case costs milliseconds
    "n_samples": [1, 2, 3], "n_masks": [1, 4, 12], "num_samples": [2, 8, 24], "steps": [2, 3, 4],
    "max_evals": [2, 10, 40], "batch_size": [1, 3, 8, 64], "stride": [3, 6, 100], "window": [1, 4, 6, 100],
}
GOOD: dict[str, list[Any]] = {  # cheap valid values of the other options
    "batch_size": [1, 3, 8, 64, 10**6, "auto"], "cells": [1, 2, 4, 50], "p": [0.1, 0.5, 1.0],
    "fill": ["black", "blurred", "mean", 0.0, 0.5, -3.0], "segmentation": ["slic", "quickshift", "felzenszwalb"],
    "hide": ["mean", "blur", "black", 0.3], "kernel_width": [0.25, 1.0], "noise": [0.0, 0.15, 1.0],
    "squared": [True, False], "seed": [0, 1, 2**31 - 1], "integration": [
        "gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"],
    "baseline": ["black", "blurred", "uniform"], "masker": ["blur", "black", 0.5],
    "min_block": [1, 4, 100], "split_channels": [True, False], "eigen_smooth": [True, False],
    "aug_smooth": [True, False], "softmax": [True, False], "progress": [False],
}
BAD_BY_TYPE: dict[str, list[tuple[Any, str]]] = {
    "int": [(0, "0"), (-1, "-1"), (-7, "-7"), (2.5, "2.5"), ("4", "'4'"), (True, "True"), (None, "None"),
            (math.nan, "nan"), (math.inf, "inf"), (10**30, "10**30"), (2**31, "2**31"), (2**63, "2**63"),
            (np.int64(-1), "np.int64(-1)"), (np.float32(3.0), "np.float32(3.0)"), ([3], "[3]"),
            (np.array(3), "np.array(3)"), (np.int64(3), "np.int64(3)")],
    "float": [(-1.0, "-1.0"), (0.0, "0.0"), (math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf"),
              ("0.5", "'0.5'"), (True, "True"), (None, "None"), (1e300, "1e300"), (10**400, "10**400"),
              ([0.5], "[0.5]"), (1 + 1j, "1+1j"), (np.float64(np.nan), "np.float64(nan)"), (7, "7")],
    "str": [("nope", "'nope'"), ("", "''"), ("²", "'²'"), (" black ", "' black '"), ("BLACK", "'BLACK'"),
            (3, "3"), (None, "None"), (b"black", "b'black'"), (["black"], "['black']")],
    "bool": [("yes", "'yes'"), (1, "1"), (0, "0"), (None, "None"), (np.bool_(True), "np.bool_(True)"),
             ("False", "'False'")],
    "any": [(None, "None"), ("nope", "'nope'"), (-1, "-1"), (np.zeros(0), "np.zeros(0)"), ([], "[]"),
            (object(), "object()")],
}
EXTRA_BAD: dict[str, list[tuple[Any, str]]] = {
    "grid": [((4, 4), "(4, 4)"), ((2, 8), "(2, 8)"), ((0, 0), "(0, 0)"), ((3,), "(3,)"), ("4x4", "'4x4'"),
             ((2.5, 2), "(2.5, 2)"), ((-4, -4), "(-4, -4)"), ((10**30, 1), "(10**30, 1)")],
    "prefix_tokens": [(0, "0"), (1, "1"), (16, "16"), (-1, "-1"), (2.5, "2.5"), (10**9, "10**9")],
    "p": [(0.0, "0.0"), (1.5, "1.5"), (-0.5, "-0.5")],
    "cells": [(0, "0"), (-2, "-2")],
    "kernel_width": [(0.0, "0.0"), (-1.0, "-1.0"), (1e-300, "1e-300")],
    "noise": [(1e300, "1e300"), (-0.5, "-0.5"), (1e30, "1e30")],
    "fill": [(math.nan, "nan"), (math.inf, "inf"), (1e30, "1e30")],
    "hide": [(math.nan, "nan"), (math.inf, "inf")],
    "masker": [(math.nan, "nan"), ("inpaint_nope", "'inpaint_nope'"), ("inpaint_telea", "'inpaint_telea'"),
               ("inpaint_ns", "'inpaint_ns'")],
}


def _kind(annotation: Any) -> str:
    text = str(annotation)
    for name in ("bool", "int", "float", "str"):
        if text.split("|")[0].strip() == name:
            return name
    return "any"


def options(data: st.DataObject, fn: Any, x_shape: tuple[int, ...] | None, images: Any, bad: bool) -> Drawn:
    """Options from the method's signature: small budgets always, other options now and then, from their
    valid pools; bad: one of them gets a value of the wrong type, sign, size or finiteness, or an unknown
    option is added."""
    chosen: dict[str, Any] = {}
    labels: dict[str, str] = {}
    parameters = [p for k, p in inspect.signature(fn).parameters.items()
                  if k not in {"network", "x", "targets", "layer"}]
    for p in parameters:
        if p.name in BUDGETS or p.name == "background" or data.draw(st.integers(0, 3), label=f"use {p.name}") == 0:
            value, label = _good_value(data, p.name, x_shape, images)
            if value is not _SKIP:
                chosen[p.name], labels[p.name] = value, label
    if bad:
        names = [p.name for p in parameters]
        victim = data.draw(st.sampled_from([*names, "an unknown option"]), label="bad option")
        if victim == "an unknown option":
            chosen["nope"], labels["nope"] = 1, "1"
        else:
            kind = _kind(next(p for p in parameters if p.name == victim).annotation)
            pool = BAD_BY_TYPE[kind] + EXTRA_BAD.get(victim, []) + _bad_arrays(victim, x_shape)
            chosen[victim], labels[victim] = data.draw(st.sampled_from(pool), label=f"{victim} bad")
    return Drawn(chosen, ", ".join(f"{k}={v}" for k, v in labels.items()), not bad)


_SKIP = object()


def _good_value(data: st.DataObject, name: str, x_shape: tuple[int, ...] | None, images: Any) -> tuple[Any, str]:
    if name in BUDGETS:
        value = data.draw(st.sampled_from(BUDGETS[name]), label=name)
        return value, repr(value)
    if name == "background":
        return _background(images)
    if name == "segments":
        if x_shape is None:
            return _SKIP, ""
        h, w = x_shape[1:3]
        seg = (np.arange(h)[:, None] // max(1, h // 2) * 2 + np.arange(w)[None, :] // max(1, w // 2)).astype(int)
        return seg, f"quadrant labels {(h, w)}"
    if name in ("samples", "grid", "prefix_tokens"):
        return _SKIP, ""
    if name == "baseline" and x_shape is not None and data.draw(st.booleans(), label="baseline array"):
        return np.zeros(x_shape[1:], np.float32), f"np.zeros({x_shape[1:]})"
    if name in GOOD:
        value = data.draw(st.sampled_from(GOOD[name]), label=name)
        return value, repr(value)
    return _SKIP, ""


def _background(images: Any) -> tuple[Any, str]:
    """A background set of the images' own kind: the images flipped (not the images, whose EG is 0)."""
    if isinstance(images, np.ndarray) and images.ndim >= 3:
        flipped = np.ascontiguousarray(images[..., ::-1, :, :] if images.ndim == 4 else images[::-1])
        return flipped, "the images flipped upside down"
    return images, "the images themselves"


def _bad_arrays(name: str, x_shape: tuple[int, ...] | None) -> list[tuple[Any, str]]:
    shape = x_shape[1:] if x_shape is not None else (4, 4, 3)
    if name in ("baseline", "background"):
        return [(np.zeros((2, 2, 3), np.float32), "np.zeros((2, 2, 3))"), (np.full(shape, np.nan), "NaN array"),
                (np.zeros((0, *shape)), "empty batch"), ([], "[]"), (np.zeros(shape, complex), "complex array"),
                (np.full(shape, 1e30, np.float32), "1e30 array")]
    if name == "segments":
        return [(np.zeros((3, 3), int), "np.zeros((3, 3))"), (np.full(shape[:2], -1), "all -1"),
                (np.zeros(shape[:2], float) + 0.5, "float labels"), (np.zeros(shape[:2], int), "one segment"),
                (np.arange(int(np.prod(shape[:2]))).reshape(shape[:2]) * 10**6, "huge sparse labels")]
    if name == "samples":
        return [(np.zeros((0,)), "np.zeros(0)"), (np.ones((4, 4)), "np.ones((4, 4))"), ("x", "'x'"),
                (np.full((2, 2), 2), "values 2")]
    return []


# ---------------------------------------------------------------- custom score functions

def score_functions(family: str) -> list[tuple[Any, str, bool]]:
    """score_fn= callables (popped before option checks): (function, label, whether it is a valid score)."""
    def boom(out: Any) -> Any:
        raise ZeroDivisionError("division by zero")

    fns: list[tuple[Any, str, bool]] = [
        (lambda out: out[:, 0:2], "lambda out: out[:, 0:2]", True),
        (lambda out: out * 2, "lambda out: out * 2", True),
        (boom, "a function that raises ZeroDivisionError", False),
        (lambda out: 1.5, "lambda out: 1.5", False),
        (lambda out: out[0], "lambda out: out[0] (one image's scores)", False),
        (lambda out: out[:, :0], "lambda out: out[:, :0] (no scores)", False),
    ]
    if family == "predict":
        fns.append((lambda out: np.asarray(out)[:, 1] * np.nan, "lambda out: NaN scores", False))
    return fns
