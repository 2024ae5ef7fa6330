"""`heatlens explain --task detection|segmentation`: the boxes, labels, classes and mask a user gives on the photo,
checked before the model loads, mapped into the model input (the crop and resize its preprocessing does) and
made into a heatlens.scores function per photo, with the targets that give one map per box or class."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import scores
from .errors import HeatlensError, ModelError, TargetError, close_matches
from .metrics.regions import mask_on_grid
from .models import ZOO, Network

TASKS = ("detection", "segmentation")
CLASSIFIER_PREFIXES = ("torchvision:", "timm:", "hf:", "keras:")  # loaders whose non-task models are classifiers
NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
BOX = re.compile(rf"\s*({NUMBER})\s*,\s*({NUMBER})\s*,\s*({NUMBER})\s*,\s*({NUMBER})\s*")
USAGE = {"detection": "--task detection --box X0,Y0,X1,Y1 --label ID",
         "segmentation": "--task segmentation --class ID (and --mask MASK.png)"}


@dataclass(frozen=True)
class TaskRequest:
    """What --task asks for: boxes (photo pixels x0, y0, x1, y1) with labels (detection), or classes with an
    optional mask at the photo's size (segmentation); labels and classes are ids or class names."""

    task: str
    boxes: tuple[tuple[float, float, float, float], ...] = ()
    labels: tuple[int | str, ...] = ()
    classes: tuple[int | str, ...] = ()
    mask: np.ndarray | None = None
    mask_file: str | None = None


def task_request(task: str | None, boxes: list[str], labels: list[str], classes: list[str], mask: Path | None,
                 target: str | None, score_fn: bool) -> TaskRequest | None:
    """The checked request of --task and its options (None without --task); a one-line error for an option
    of the other task, a missing box or class, a malformed box, an unreadable mask, or --target / -o score_fn
    beside --task (the task's score picks what is explained)."""
    if task is None:
        stray = _first_given(box=boxes, label=labels, **{"class": classes}, mask=[mask] if mask else [])
        if stray:
            wanted = "detection" if stray in ("box", "label") else "segmentation"
            raise HeatlensError(f"--{stray} is an option of --task {wanted}: add --task {wanted} (usage: "
                                f"{USAGE[wanted]})")
        return None
    if task not in TASKS:
        raise HeatlensError(f"--task takes {' or '.join(TASKS)}. Received: {task!r}{close_matches(task, TASKS)}")
    if target is not None:
        raise HeatlensError(f"--target does not go with --task {task}: the task's score picks what is explained "
                            f"(one map per {'box' if task == 'detection' else 'class'}); drop --target")
    if score_fn:
        raise HeatlensError(f"-o score_fn=... does not go with --task {task}, which brings its own score; drop one")
    if task == "detection":
        other = _first_given(**{"class": classes}, mask=[mask] if mask else [])
        if other:
            raise HeatlensError(f"--{other} is an option of --task segmentation; a detection is given by "
                                f"{USAGE['detection']}")
        if not boxes:
            raise HeatlensError(f"--task detection needs --box: the box of the detection, in photo pixels (usage: "
                                f"{USAGE['detection']})")
        return TaskRequest(task, boxes=tuple(_box(text) for text in boxes), labels=_labels(labels, len(boxes)))
    other = _first_given(box=boxes, label=labels)
    if other:
        raise HeatlensError(f"--{other} is an option of --task detection; a segment is given by "
                            f"{USAGE['segmentation']}")
    if not classes:
        raise HeatlensError(f"--task segmentation needs --class: the class whose pixels are explained (usage: "
                            f"{USAGE['segmentation']})")
    ids = tuple(_class_value(text, "class") for text in classes)
    return TaskRequest(task, classes=ids, mask=None if mask is None else read_mask(mask),
                       mask_file=None if mask is None else str(mask))


def check_task_model(request: TaskRequest | None, network: Network, model: str) -> None:
    """Refuse a detection or segmentation model without --task (or with the other task), and --task on a model
    that is known to be an image classifier (the zoo's, and the classifiers torchvision:, timm:, hf: and keras:
    load). Other models (factories, files) show what they return when their output reaches the score."""
    own = getattr(network, "task", None)
    if request is None:
        if own is not None:
            raise HeatlensError(f"{network.name} is a {own} model, which has no classes to explain: add "
                                f"{USAGE[own]}")
        return
    if own is not None and own != request.task:
        raise HeatlensError(f"--task {request.task} does not fit {network.name}, a {own} model: use {USAGE[own]}")
    if own is None and (model in ZOO or model.startswith(CLASSIFIER_PREFIXES)):
        raise HeatlensError(f"{network.name} is an image classifier, and --task {request.task} is for "
                            f"{request.task} models (e.g. torchvision:"
                            f"{'fasterrcnn_resnet50_fpn' if request.task == 'detection' else 'deeplabv3_resnet50'}); "
                            "drop --task and choose classes with --target")


def task_score(request: TaskRequest, network: Network, photo: np.ndarray) -> tuple[Any, list[int], dict[str, Any]]:
    """The score function for one photo (boxes or mask mapped into the model input), the targets (one per box
    or class) and what the manifest records about it."""
    height, width = photo.shape[:2]
    size = network.prepare(photo[None]).shape[1:3]
    box = network.input_box(height, width)
    if request.task == "detection":
        given = np.asarray(request.boxes, dtype=np.float64)
        mapped = input_boxes(given, box, size, (height, width))
        labels = [_class_id(label, network, "label") for label in request.labels]
        score: Any = scores.detection(mapped, labels if len(labels) > 1 else labels[0])
        record = {"task": "detection", "boxes": given.tolist(), "input_boxes": mapped.round(3).tolist(),
                  "labels": labels}
        return score, list(range(len(mapped))), record
    ids = [_class_id(value, network, "class") for value in request.classes]
    mask = None if request.mask is None else input_mask(request.mask, box, size, request.mask_file)
    score = scores.segment(ids, mask)
    record = {"task": "segmentation", "classes": ids, "mask": request.mask_file}
    return score, list(range(len(ids))), record


def input_boxes(boxes: np.ndarray, box: tuple[float, float, float, float], size: tuple[int, int],
                photo: tuple[int, int]) -> np.ndarray:
    """Boxes (K, 4) in photo pixels (x0, y0, x1, y1) in the model input's pixels: `box` (top, left, bottom,
    right, the part of the photo the input covers) scaled to the input `size` (h, w), clipped to the input."""
    height, width = photo
    outside = (boxes[:, 0] < 0) | (boxes[:, 1] < 0) | (boxes[:, 2] > width) | (boxes[:, 3] > height)
    if outside.any():
        raise TargetError(f"--box {_shown(boxes[outside][0])} reaches outside the {width}x{height} photo; give "
                          f"photo pixels x0,y0,x1,y1 within 0..{width} and 0..{height}")
    top, left, bottom, right = box
    sx, sy = size[1] / (right - left), size[0] / (bottom - top)
    mapped = np.stack([(boxes[:, 0] - left) * sx, (boxes[:, 1] - top) * sy,
                       (boxes[:, 2] - left) * sx, (boxes[:, 3] - top) * sy], axis=1)
    mapped[:, 0::2] = mapped[:, 0::2].clip(0, size[1])
    mapped[:, 1::2] = mapped[:, 1::2].clip(0, size[0])
    empty = (mapped[:, 2] <= mapped[:, 0]) | (mapped[:, 3] <= mapped[:, 1])
    if empty.any():
        raise TargetError(f"--box {_shown(boxes[empty][0])} lies outside the part of the photo the model sees "
                          f"(x {left:g}..{right:g}, y {top:g}..{bottom:g} after its crop); give a box inside it, "
                          "or --fit resize")
    return mapped


def input_mask(mask: np.ndarray, box: tuple[float, float, float, float], size: tuple[int, int],
               file: str | None) -> np.ndarray:
    """A photo-sized boolean mask on the model input's (h, w) grid, cropped and resized as the photo is: each
    input pixel takes the mask pixel under its centre (nearest), and pixels beyond the photo (padding) are out
    (the localisation metrics' mapping, metrics.regions.mask_on_grid)."""
    top, left, bottom, right = box
    mapped = mask_on_grid(mask, box, size)
    if not mapped.any():
        raise TargetError(f"--mask {file}: none of the mask's pixels lies in the part of the photo the model sees "
                          f"(x {left:g}..{right:g}, y {top:g}..{bottom:g}); mark the region inside it, or use "
                          "--fit resize")
    return mapped


def check_mask_size(request: TaskRequest | None, photo: np.ndarray) -> None:
    """Refuse a --mask whose size is not the photo's (the mask marks the photo's own pixels)."""
    if request is None or request.mask is None or request.mask.shape == photo.shape[:2]:
        return
    (mh, mw), (ph, pw) = request.mask.shape, photo.shape[:2]
    raise TargetError(f"--mask {request.mask_file}: the mask must have the photo's size, {pw}x{ph} pixels, and it has "
                      f"{mw}x{mh} (heatlens maps it into the model input as it does the photo)")


def read_mask(path: Path) -> np.ndarray:
    """A binary mask image as booleans (H, W): its nonzero pixels (any channel of a colour image) are the
    region; a one-line error for a file that is not an image or marks nothing."""
    try:
        with Image.open(path) as picture:
            values = np.asarray(picture if picture.mode in ("1", "L", "P", "I", "I;16") else picture.convert("RGB"))
    except FileNotFoundError:
        raise HeatlensError(f"--mask: no mask image at '{path}'") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise HeatlensError(f"--mask: cannot read '{path}' as an image ({exc}); give a PNG whose nonzero pixels "
                            "mark the region") from None
    region = np.asarray(values.any(axis=2) if values.ndim == 3 else values != 0, dtype=bool)
    if not region.any():
        raise HeatlensError(f"--mask {path} marks no pixel (it is all zero); its nonzero pixels are the region")
    return region


def score_rows(result: Any) -> list[tuple[str, float]]:
    """(name, score) per box or class of a task's explanation (its first image), for the table the CLI prints."""
    names = result.targets.names[0]
    return [(str(name), float(value)) for name, value in zip(names, result.logits[0], strict=True)]


def _box(text: str) -> tuple[float, float, float, float]:
    match = BOX.fullmatch(text)
    if match is None:
        raise HeatlensError(f"--box expects four numbers x0,y0,x1,y1 (photo pixels). Received: {text!r}")
    x0, y0, x1, y1 = (float(v) for v in match.groups())
    if x1 <= x0 or y1 <= y0:
        raise HeatlensError(f"--box {text} is empty: x0,y0,x1,y1 needs x0 < x1 and y0 < y1 (the top-left corner "
                            "first)")
    return x0, y0, x1, y1


def _labels(labels: list[str], boxes: int) -> tuple[int | str, ...]:
    if not labels:
        raise HeatlensError(f"--task detection needs --label ID: the class of the detection to explain "
                            f"(usage: {USAGE['detection']})")
    if len(labels) not in (1, boxes):
        raise HeatlensError(f"{boxes} --box and {len(labels)} --label: give one --label per --box, or one for all")
    return tuple(_class_value(text, "label") for text in labels)


def _class_value(text: str, option: str) -> int | str:
    text = text.strip()
    if not text:
        raise HeatlensError(f"--{option} is empty: give a class id or name")
    return int(text) if re.fullmatch(r"\d+", text) else text


def _class_id(value: int | str, network: Network, option: str) -> int:
    """A --label or --class as a class id: ids as given, names looked up in the model's classes."""
    if isinstance(value, int):
        return value
    names = list(network.classes or [])
    if not names:
        raise ModelError(f"--{option} {value!r}: {network.name} has no class names, so give the class id")
    if value not in names:
        raise ModelError(f"--{option} {value!r} is not a class of {network.name}.{close_matches(value, names)} "
                         "Give a class id, or one of its class names")
    return names.index(value)


def _first_given(**options: list[Any]) -> str | None:
    """The name of the first option that has values."""
    return next((name for name, values in options.items() if values), None)


def _shown(box: np.ndarray) -> str:
    return ",".join(f"{v:g}" for v in box)
