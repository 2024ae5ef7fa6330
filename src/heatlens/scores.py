"""Ready-made score functions beyond classification, for `explain(..., score_fn=...)` and every method:

- `segment(class_id, mask=None)`: a class's logits summed over a region of a segmentation output;
- `detection(boxes, labels)`: the class score of the detection that matches each box (and its IoU);
- `similarity(reference)`: the cosine similarity of the model's embedding to a reference embedding.

Each is a function of the model's raw output, written once over the few array operations
heatlens.models.score_ops picks from the output's type (torch, Keras' TensorFlow or JAX, numpy), so gradients
flow through the model's own ops and nothing here imports a framework.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import ModelError, TargetError
from .models.score_ops import NumpyOps, array_ops, is_tensor

__all__ = ["Detection", "Segment", "Similarity", "detection", "segment", "similarity"]


def segment(class_id: int | Sequence[int], mask: Any = None, channels_last: bool | None = None) -> Segment:
    """Score a segmentation model by the SUM of class `class_id`'s logits over `mask` (as pytorch-grad-cam's
    SemanticSegmentationTarget): an (H, W) or (N, H, W) array on the output's grid (booleans, or weights);
    None: the pixels each output predicts as that class (its argmax). Several class ids give one score each.

    Takes (N, classes, H, W) outputs (torchvision's dict 'out', Hugging Face's `.logits`, a tensor);
    Keras outputs are (N, H, W, classes). `channels_last` overrides that layout."""
    return Segment(class_id, mask, channels_last)


def detection(boxes: Any, labels: int | Sequence[int], iou: bool = False, iou_threshold: float = 0.5) -> Detection:
    """Score a detector (torchvision Faster R-CNN, RetinaNet, FCOS, SSD: a list of dicts of boxes, labels,
    scores per image) for each of K boxes (x_min, y_min, x_max, y_max in the model input's pixels) with its
    label: the score of the detection of that label that overlaps the box most, when that overlap (IoU)
    exceeds `iou_threshold`, else 0; iou=True adds the IoU (pytorch-grad-cam's FasterRCNNBoxScoreTarget,
    which sums the K scores into one). Scores are (N, K): pass target=list(range(K)) for a map per box."""
    return Detection(boxes, labels, iou, iou_threshold)


def similarity(reference: Any) -> Similarity:
    """Score an embedding model by the cosine similarity of its output embedding (N, D), flattened after the
    batch axis, to a reference embedding (D,), or to each of K references (K, D)."""
    return Similarity(reference)


class Segment:
    """The sum of classes' logits over a mask of a segmentation output (see `segment`)."""

    __name__ = "segment"

    def __init__(self, class_id: int | Sequence[int], mask: Any = None, channels_last: bool | None = None) -> None:
        self.class_ids = _ids(class_id, "class_id")
        self.mask = None if mask is None else _mask(mask)
        self.channels_last = channels_last

    def __repr__(self) -> str:
        shape = "predicted pixels" if self.mask is None else f"mask {self.mask.shape}"
        return f"segment({list(self.class_ids)}, {shape})"

    def __call__(self, output: Any) -> Any:
        logits = segmentation_logits(output)
        ops = array_ops(logits, "heatlens.scores.segment")
        last = ops.channels_last if self.channels_last is None else self.channels_last
        classes = logits.shape[-1] if last else logits.shape[1]
        if max(self.class_ids) >= classes or min(self.class_ids) < 0:
            raise TargetError(f"segment: class_id {max(self.class_ids)} is out of range: the segmentation output has "
                              f"{classes} classes, ids 0 .. {classes - 1}")
        grid = tuple(logits.shape[1:3] if last else logits.shape[2:4])
        mask = None if self.mask is None else ops.constant(self._fitted_mask(len(logits), grid), like=logits)
        winners = None if mask is not None else ops.argmax(logits, axis=-1 if last else 1)
        scores = []
        for class_id in self.class_ids:
            plane = logits[..., class_id] if last else logits[:, class_id]
            region = mask if mask is not None else ops.where(winners == class_id, 1.0, 0.0)
            scores.append(ops.sum(plane * region, axis=(1, 2)))
        return ops.stack(scores, axis=1)

    def _fitted_mask(self, count: int, grid: tuple[int, ...]) -> np.ndarray:
        """The mask (N, H, W) for `count` outputs on `grid`; a ModelError where its shape does not fit."""
        mask = np.asarray(self.mask)
        if mask.shape[-2:] != grid or (mask.ndim == 3 and mask.shape[0] != count):
            want = f"({grid[0]}, {grid[1]}) or ({count}, {grid[0]}, {grid[1]})"
            raise ModelError(f"segment: the mask has shape {mask.shape}, and the segmentation output's grid needs "
                             f"{want}; resize the mask to the model's output")
        return np.broadcast_to(mask, (count, *grid))


class Detection:
    """The matched detections' scores for K boxes of given labels (see `detection`)."""

    __name__ = "detection"

    def __init__(self, boxes: Any, labels: int | Sequence[int], iou: bool = False, iou_threshold: float = 0.5) -> None:
        self.boxes = _boxes(boxes)
        ids = _ids(labels, "labels")
        if len(ids) not in (1, len(self.boxes)):
            raise TargetError(f"detection: {len(self.boxes)} boxes and {len(ids)} labels; give one label per box "
                              "(or one for all)")
        self.labels = np.broadcast_to(np.asarray(ids), (len(self.boxes),)).copy()
        if not 0 <= iou_threshold < 1:
            raise TargetError(f"detection: iou_threshold must be in [0, 1). Received: {iou_threshold!r}")
        self.iou = bool(iou)
        self.iou_threshold = float(iou_threshold)

    def __repr__(self) -> str:
        return f"detection({self.boxes.tolist()}, {self.labels.tolist()}, iou={self.iou})"

    def __call__(self, output: Any) -> Any:
        images = detections_of(output)
        first = next((image["scores"] for image in images if len(image["boxes"])), images[0]["boxes"])
        ops = array_ops(first, "heatlens.scores.detection")
        rows, matched = [], np.zeros(len(self.boxes), bool)
        for image in images:
            row, hits = self._image_scores(ops, image)
            rows.append(row)
            matched |= hits
        scores = ops.stack(rows, axis=0)
        if not matched.all() and ops.tracked(scores):
            raise TargetError(self._unmatched(int(np.flatnonzero(~matched)[0]), images, ops))
        return scores

    def _image_scores(self, ops: NumpyOps, image: dict[str, Any]) -> tuple[Any, np.ndarray]:
        """One image's K scores, and which of the K boxes a detection matched."""
        found, labels, confidence = image["boxes"], image["labels"], image["scores"]
        if len(found) == 0:
            return ops.constant(np.zeros(len(self.boxes)), like=found), np.zeros(len(self.boxes), bool)
        ious = box_iou(ops, ops.constant(self.boxes, like=found), found)
        same = ops.to_numpy(labels)[None, :] == self.labels[:, None]
        candidates = ops.where(ops.constant(same, like=ious) > 0, ious, -1.0)
        best = ops.argmax(candidates, axis=1)
        best_iou = ops.take_along(ious, best)
        hits = ops.to_numpy(ops.take_along(candidates, best)) > self.iou_threshold
        score = ops.take(confidence, best) + (best_iou if self.iou else 0.0)
        return ops.where(ops.constant(hits, like=ious) > 0, score, 0.0), hits

    def _unmatched(self, k: int, images: list[dict[str, Any]], ops: NumpyOps) -> str:
        box = ", ".join(f"{v:g}" for v in self.boxes[k])
        labels = sorted({int(v) for image in images for v in ops.to_numpy(image["labels"]).ravel()})
        seen = f"labels {labels[:10]}" if labels else "nothing"
        return (f"detection: no detection of label {self.labels[k]} overlaps box ({box}) by IoU > "
                f"{self.iou_threshold:g}; the model detected {seen} there; give the box and label of one of its "
                "detections (model input pixels), or lower the model's score threshold")


class Similarity:
    """The cosine similarity of the output embedding to K reference embeddings (see `similarity`)."""

    __name__ = "similarity"

    def __init__(self, reference: Any) -> None:
        if hasattr(reference, "detach"):  # a torch tensor, perhaps on a GPU or recording gradients
            reference = reference.detach().cpu().numpy()
        values = np.asarray(reference, dtype=np.float64)
        if values.ndim not in (1, 2) or values.size == 0 or not np.isfinite(values).all():
            raise TargetError(f"similarity: the reference must be a finite embedding (D,) or K embeddings (K, D). "
                              f"Received: shape={values.shape}")
        norms = np.linalg.norm(values.reshape(-1, values.shape[-1]), axis=1, keepdims=True)
        if (norms == 0).any():
            raise TargetError("similarity: a reference embedding is all zeros, so no cosine is defined")
        self.reference = (values.reshape(-1, values.shape[-1]) / norms).astype(np.float32)

    def __repr__(self) -> str:
        return f"similarity({len(self.reference)} x {self.reference.shape[1]})"

    def __call__(self, output: Any) -> Any:
        embedding = embedding_of(output)
        ops = array_ops(embedding, "heatlens.scores.similarity")
        flat = ops.reshape(embedding, (embedding.shape[0], -1))
        if flat.shape[1] != self.reference.shape[1]:
            raise ModelError(f"similarity: the model's embedding has {flat.shape[1]} values and the reference "
                             f"{self.reference.shape[1]}; give a reference from the same model and layer")
        norms = ops.sqrt(ops.sum(flat * flat, axis=1))
        dots = ops.matmul(flat, ops.transpose(ops.constant(self.reference, like=flat)))
        return dots / ops.maximum(norms, ops.constant(1e-8, like=norms))[:, None]


def box_iou(ops: NumpyOps, a: Any, b: Any) -> Any:
    """Intersection over union (K, M) of boxes a (K, 4) and b (M, 4), each (x_min, y_min, x_max, y_max)."""
    zero = ops.constant(0.0, like=a)
    width = ops.maximum(ops.minimum(a[:, None, 2], b[None, :, 2]) - ops.maximum(a[:, None, 0], b[None, :, 0]), zero)
    height = ops.maximum(ops.minimum(a[:, None, 3], b[None, :, 3]) - ops.maximum(a[:, None, 1], b[None, :, 1]), zero)
    inter = width * height
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def segmentation_logits(output: Any) -> Any:
    """The (N, classes, H, W) scores in a segmentation model's output: a tensor, torchvision's dict 'out',
    Hugging Face's `.logits`, or the first of a tuple."""
    if isinstance(output, dict) and "out" in output:
        output = output["out"]
    elif not is_tensor(output) and hasattr(output, "logits"):
        output = output.logits
    elif isinstance(output, tuple | list) and output and is_tensor(output[0]):
        output = output[0]
    if not is_tensor(output) or len(output.shape) != 4:
        hint = "; this is a detector's output: use heatlens.scores.detection" if _looks_detected(output) else ""
        raise ModelError(f"segment: expected a segmentation output (N, classes, H, W): a tensor, a dict with 'out' "
                         f"or an output with .logits. Received: {_described(output)}{hint}")
    return output


def detections_of(output: Any) -> list[dict[str, Any]]:
    """A detector's output as a list (one per image) of dicts with 'boxes' (M, 4), 'labels' (M,), 'scores' (M,)."""
    if isinstance(output, tuple) and len(output) == 2 and isinstance(output[1], list):  # scripted: (losses, dets)
        output = output[1]
    if not _looks_detected(output):
        raise ModelError("detection: expected a detector's output, a list of dicts with 'boxes', 'labels' and "
                         f"'scores' per image (torchvision's detection models). Received: {_described(output)}")
    return list(output)


def embedding_of(output: Any) -> Any:
    """The embedding (N, ...) in a model's output: a tensor, `image_embeds` / `pooler_output` (Hugging Face),
    or the first of a tuple."""
    for key in ("image_embeds", "pooler_output"):
        value = output.get(key) if isinstance(output, dict) else getattr(output, key, None)
        if value is not None and not is_tensor(output):
            output = value
            break
    if isinstance(output, tuple | list) and output and is_tensor(output[0]):
        output = output[0]
    if not is_tensor(output) or len(output.shape) < 2:
        raise ModelError(f"similarity: expected an embedding (N, D) in the model's output. Received: "
                         f"{_described(output)}")
    return output


def _looks_detected(output: Any) -> bool:
    return (isinstance(output, list | tuple) and len(output) > 0
            and all(isinstance(item, dict) and {"boxes", "labels", "scores"} <= set(item) for item in output))


def _described(output: Any) -> str:
    if is_tensor(output):
        return f"a {type(output).__name__} of shape {tuple(output.shape)}"
    if isinstance(output, dict):
        return f"a dict with keys {sorted(map(str, output))[:6]}"
    return f"a {type(output).__name__}"


def _ids(value: int | Sequence[int], name: str) -> tuple[int, ...]:
    """One or several class ids as a tuple of ints >= 0; a TargetError for anything else."""
    items: list[Any] = np.asarray(value).ravel().tolist() if np.ndim(value) else [value]
    items = [v.item() if isinstance(v, np.integer) else v for v in items]
    if not items or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in items):
        raise TargetError(f"{name} must be a class id (an int >= 0) or a list of them. Received: {value!r}")
    return tuple(items)


def _mask(mask: Any) -> np.ndarray:
    values = np.asarray(mask)
    if values.ndim not in (2, 3) or values.size == 0 or not (values.dtype == bool or np.issubdtype(values.dtype,
                                                                                                     np.number)):
        raise TargetError(f"segment: the mask must be an (H, W) or (N, H, W) array of booleans or weights. "
                          f"Received: shape={values.shape}, dtype={values.dtype}")
    return values.astype(np.float32)


def _boxes(boxes: Any) -> np.ndarray:
    values = np.asarray(boxes, dtype=np.float64)
    values = values[None] if values.ndim == 1 else values
    if values.ndim != 2 or values.shape[1] != 4 or len(values) == 0 or not np.isfinite(values).all():
        raise TargetError(f"detection: boxes must be (x_min, y_min, x_max, y_max), one box or a list of them. "
                          f"Received: shape={np.shape(boxes)}")
    if ((values[:, 2] <= values[:, 0]) | (values[:, 3] <= values[:, 1])).any():
        bad = values[(values[:, 2] <= values[:, 0]) | (values[:, 3] <= values[:, 1])][0]
        raise TargetError(f"detection: box {bad.tolist()} is empty; give x_min, y_min, x_max, y_max with "
                          "x_min < x_max and y_min < y_max")
    return values
