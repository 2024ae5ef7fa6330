"""Target specs ("top1", "top3", 281, "tabby", [..], callable) resolved once to class ids (N, K)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .classes import find_class, imagenet_wnids, is_imagenet
from .errors import HeatlensError, ModelError, TargetError, first_line

TargetSpec = (str | int | np.integer | Sequence[int | str] | Sequence[Sequence[int | str]] | np.ndarray
              | Callable[[np.ndarray], np.ndarray])
"""What `target=` accepts: a name or id, a list of them, a per-image list of lists, an id array, a callable."""


@dataclass(frozen=True)
class Targets:
    """The classes explained for each image: ids (N, K), their names, raw scores and probabilities, and
    for ImageNet's classes their WordNet ids (as decode_predictions prints them)."""

    ids: np.ndarray
    names: list[list[str]]
    scores: np.ndarray
    probabilities: np.ndarray
    wnids: list[list[str]] | None = None

    def as_records(self) -> list[list[dict]]:
        """Per image, per target: {'id', 'name', 'score', 'probability'} (and 'wnid' for ImageNet's classes)
        for manifests and reports."""
        wnids: Sequence[Sequence[str | None]] = (
            self.wnids if self.wnids is not None else [[None] * len(row) for row in self.names])
        return [
            [
                {"id": int(i), "name": n, **({"wnid": w} if w is not None else {}), "score": float(s),
                 "probability": float(p)}
                for i, n, w, s, p in zip(ids, names, row_wnids, scores, probs, strict=True)
            ]
            for ids, names, row_wnids, scores, probs in zip(self.ids, self.names, wnids, self.scores,
                                                             self.probabilities, strict=True)
        ]


@dataclass(frozen=True)
class TopK:
    """The k best-scoring classes of each image; adapters may resolve it inside their own graph."""

    k: int

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        if not 1 <= self.k <= logits.shape[1]:
            raise TargetError(f"'top{self.k}' asks for {self.k} classes; the model has {logits.shape[1]}")
        return np.argsort(-logits, axis=1, kind="stable")[:, : self.k]


def resolver(spec: TargetSpec, classes: Sequence[str] | None) -> Callable[[np.ndarray], np.ndarray]:
    """For targets that depend on the scores ('topK', callables): a function from logits to ids (N, K)."""
    if callable(spec):
        return lambda logits: _from_callable(spec, logits)
    return TopK(int(str(spec).strip().lower()[3:]))


def resolve(spec: TargetSpec, logits: np.ndarray, classes: Sequence[str] | None) -> Targets:
    """Resolve a target spec against the model's scores (N, classes) for each image."""
    logits = check_scores(logits)
    n = logits.shape[0]
    ids = static_ids(spec, n, classes)
    ids = check_ids(resolver(spec, classes)(logits) if ids is None else ids, n, logits.shape[1])
    probs = probabilities(logits)
    rows = np.arange(n)[:, None]
    names = [[class_name(int(i), classes) for i in row] for row in ids]
    wnids = [[imagenet_wnids()[int(i)] for i in row] for row in ids] if is_imagenet(classes) else None
    return Targets(ids, names, logits[rows, ids], probs[rows, ids], wnids)


def check_scores(logits: np.ndarray, rows: int | None = None) -> np.ndarray:
    """The model's scores as float (N, classes), one row per input when `rows` is given, refusing NaN or
    infinite values with a clear message."""
    logits = np.asarray(logits, dtype=np.float32)
    if logits.ndim == 2 and rows is not None and len(logits) != rows:
        raise ModelError(f"the model returned {len(logits)} rows of scores for {rows} inputs; it must return "
                         "one row per input")
    if logits.ndim != 2 or 0 in logits.shape:
        raise ModelError(f"expected model scores of shape (N, classes). Received: shape={logits.shape}")
    bad = ~np.isfinite(logits).all(axis=1)
    if bad.any():
        raise ModelError(
            f"the model returned NaN or infinite scores for image {int(np.argmax(bad))}; "
            "check the input preprocessing and the model weights"
        )
    return logits


def probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax of logits, or the scores themselves when they already are a probability distribution."""
    if logits.min() >= 0 and np.allclose(logits.sum(axis=1), 1, atol=1e-3):
        return logits
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def check_ids(ids: np.ndarray, n: int, n_classes: int) -> np.ndarray:
    """Class ids as int64 (N, K), K >= 1, each within 0..n_classes-1, one row per image."""
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu" and ids.size:
        raise TargetError(f"class ids must be integers. Received: dtype={ids.dtype}, first value {ids.flat[0]!r}")
    if ids.dtype.kind == "u" and ids.size and ids.max() > np.iinfo(np.int64).max:
        raise TargetError(f"class id {int(ids.max())} is out of range: the model has classes 0..{n_classes - 1}")
    ids = ids.astype(np.int64)
    if ids.ndim == 1:
        ids = ids[:, None]
    if ids.ndim != 2 or ids.shape[0] != n:
        raise TargetError(f"the target gives class ids of shape {ids.shape} for {n} images; expected ({n}, K)")
    if ids.shape[1] == 0:
        raise TargetError("the target names no class: give at least one class id or name per image")
    bad = ids[(ids < 0) | (ids >= n_classes)]
    if bad.size:
        raise TargetError(f"class id {int(bad[0])} is out of range: the model has classes 0..{n_classes - 1}")
    return ids


def is_dynamic(spec: TargetSpec) -> bool:
    """True for targets that depend on the model's scores ('topK', callables)."""
    return callable(spec) or (isinstance(spec, str) and re.fullmatch(r"top\d+", spec.strip().lower()) is not None)


def score_label(function: Callable) -> str:
    """A custom score function's name for messages, manifests and target names ('score' for lambdas)."""
    name = getattr(function, "__name__", type(function).__name__)
    return "score" if name == "<lambda>" else name


def score_names(function: Callable, count: int) -> list[str]:
    """Names for the K scores of a custom score function: its label, indexed when it returns several."""
    name = score_label(function)
    return [name] if count == 1 else [f"{name}[{k}]" for k in range(count)]


def class_name(index: int, classes: Sequence[str] | None) -> str:
    return classes[index] if classes is not None and index < len(classes) else f"class {index}"


def static_ids(spec: TargetSpec, n: int, classes: Sequence[str] | None) -> np.ndarray | None:
    """Class ids (N, K) for targets known before the model runs; None for 'topK' and callables."""
    if is_dynamic(spec):
        return None
    if isinstance(spec, np.ndarray):
        spec = spec.item() if spec.ndim == 0 else spec.tolist()
    if isinstance(spec, str | int | np.integer) and not isinstance(spec, bool):
        return np.full((n, 1), _one_id(spec, classes), dtype=np.int64)
    if isinstance(spec, Sequence) and not isinstance(spec, str) and len(spec) > 0:
        per_image = [s for s in spec if isinstance(s, Sequence) and not isinstance(s, str)]
        if len(per_image) == len(spec):
            lengths = sorted({len(row) for row in per_image})
            if len(lengths) > 1:
                raise TargetError(f"per-image target lists must all have the same length. Received lengths "
                                  f"{lengths}; explain the images separately or pad with more classes")
            if len(spec) != n:
                raise TargetError(f"the target gives {len(spec)} per-image lists for {n} images; give one per image")
            if lengths == [0]:
                raise TargetError("the target names no class: give at least one class id or name per image")
            return np.array([[_one_id(s, classes) for s in row] for row in per_image], dtype=np.int64)
        row = [_one_id(s, classes) for s in spec]
        return np.tile(np.array(row, dtype=np.int64), (n, 1))
    raise TargetError(
        f"expected a target: 'top1', 'top3', a class id, a class name, a list or a callable. Received: {spec!r}"
    )


LARGEST_ID = 2**62  # beyond any model's classes; keeps ids inside int64 (and off silent int32 wrap-around)


def _one_id(item: object, classes: Sequence[str] | None) -> int:
    if isinstance(item, str):
        return _class_id(item, classes)
    if isinstance(item, int | np.integer) and not isinstance(item, bool | np.bool_):
        if not -LARGEST_ID <= int(item) <= LARGEST_ID:
            raise TargetError(f"class id {int(item)} is out of range for any model: use an id 0..classes-1")
        return int(item)
    raise TargetError(f"expected a class id (an integer) or a class name in the target. Received: {item!r}")


def _class_id(name: str, classes: Sequence[str] | None) -> int:
    if re.fullmatch(r"-?[0-9]+", name.strip()):
        return _one_id(int(name), classes)
    if classes is None:
        raise TargetError(f"class name '{name}' given, but the model has no class names: use a class id")
    return find_class(name, classes)


def _from_callable(fn: Callable[[np.ndarray], np.ndarray], logits: np.ndarray) -> np.ndarray:
    try:
        returned = fn(logits.copy())
    except HeatlensError:
        raise
    except Exception as exc:
        raise TargetError(f"the target callable {getattr(fn, '__name__', type(fn).__name__)} failed on the scores: "
                          f"{type(exc).__name__}: {first_line(exc)}") from exc
    try:
        result = np.asarray(returned)
    except (ValueError, TypeError):
        result = np.asarray(None)
    if result.dtype.kind not in "iu" or result.ndim not in (1, 2):
        raise TargetError(
            "a target callable must return integer class ids of shape (N,) or (N, K). "
            f"Received: {_summary(returned)}"
        )
    return result


def _summary(value: object) -> str:
    """What a callable returned, in a few words: an array's shape and dtype, or its type."""
    if isinstance(value, np.ndarray):
        return f"shape={value.shape}, dtype={value.dtype}"
    return f"a {type(value).__name__}" + (" that is not a rectangular array of integers" if isinstance(
        value, list | tuple) else "")
