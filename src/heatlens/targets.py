"""Target specs ("top1", "top3", 281, "tabby", [..], callable) resolved once to class ids (N, K)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ModelError, TargetError, close_matches

TargetSpec = str | int | Sequence[int | str] | Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Targets:
    """The classes explained for each image: ids (N, K), their names, raw scores and probabilities."""

    ids: np.ndarray
    names: list[list[str]]
    scores: np.ndarray
    probabilities: np.ndarray

    def as_records(self) -> list[list[dict]]:
        """Per image, per target: {'id', 'name', 'score', 'probability'} for manifests and reports."""
        return [
            [
                {"id": int(i), "name": n, "score": float(s), "probability": float(p)}
                for i, n, s, p in zip(ids, names, scores, probs, strict=True)
            ]
            for ids, names, scores, probs in zip(self.ids, self.names, self.scores, self.probabilities,
                                                  strict=True)
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
    return Targets(ids, names, logits[rows, ids], probs[rows, ids])


def check_scores(logits: np.ndarray) -> np.ndarray:
    """The model's scores as float (N, classes), refusing NaN or infinite values with a clear message."""
    logits = np.asarray(logits, dtype=np.float32)
    if logits.ndim != 2:
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
    """Class ids as int64 (N, K), each within 0..n_classes-1, one row per image."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim == 1:
        ids = ids[:, None]
    if ids.ndim != 2 or ids.shape[0] != n:
        raise TargetError(f"the target gives class ids of shape {ids.shape} for {n} images; expected ({n}, K)")
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
    if isinstance(spec, str):
        return np.full((n, 1), _class_id(spec, classes))
    if isinstance(spec, bool):
        raise TargetError(f"expected a class id, name, 'topK', list or callable. Received: {spec!r}")
    if isinstance(spec, int | np.integer):
        return np.full((n, 1), int(spec))
    if isinstance(spec, np.ndarray) and spec.ndim == 2:
        return spec.astype(np.int64)
    if isinstance(spec, Sequence | np.ndarray) and len(spec) > 0:
        if all(isinstance(s, Sequence) and not isinstance(s, str) for s in spec):
            lengths = sorted({len(row) for row in spec})
            if len(lengths) > 1:
                raise TargetError(f"per-image target lists must all have the same length. Received lengths "
                                  f"{lengths}; explain the images separately or pad with more classes")
            return np.array([[_one_id(s, classes) for s in row] for row in spec], dtype=np.int64)
        row = [_one_id(s, classes) for s in spec]
        return np.tile(np.array(row, dtype=np.int64), (n, 1))
    raise TargetError(
        f"expected a target: 'top1', 'top3', a class id, a class name, a list or a callable. Received: {spec!r}"
    )


def _one_id(item: object, classes: Sequence[str] | None) -> int:
    if isinstance(item, str):
        return _class_id(item, classes)
    if isinstance(item, int | np.integer) and not isinstance(item, bool):
        return int(item)
    raise TargetError(f"expected a class id or name in the target list. Received: {item!r}")


def _class_id(name: str, classes: Sequence[str] | None) -> int:
    if name.strip().lstrip("-").isdigit():
        return int(name)
    if classes is None:
        raise TargetError(f"class name '{name}' given, but the model has no class names: use a class id")
    lowered = [c.lower() for c in classes]
    if name.strip().lower() in lowered:
        return lowered.index(name.strip().lower())
    raise TargetError(f"unknown class name '{name}'.{close_matches(name, classes)}")


def _from_callable(fn: Callable[[np.ndarray], np.ndarray], logits: np.ndarray) -> np.ndarray:
    result = np.asarray(fn(logits.copy()))
    if result.dtype.kind not in "iu" or result.ndim not in (1, 2):
        raise TargetError(
            "a target callable must return integer class ids of shape (N,) or (N, K). "
            f"Received: shape={result.shape}, dtype={result.dtype}"
        )
    return result.astype(np.int64)
