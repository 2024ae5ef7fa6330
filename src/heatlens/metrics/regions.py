"""Object regions for the localisation metrics: boxes (x_min, y_min, x_max, y_max) or boolean masks in PHOTO pixels,
checked and laid onto the model-input grid through the box of the photo the model sees (so a centre crop counts
right); and the boxes CSV of the CLI (`image,x_min,y_min,x_max,y_max`, several rows per image make their union).

Box coordinates are continuous photo coordinates, as in COCO-style corner boxes: pixel column c spans c..c+1, so
the box (0, 0, 10, 5) covers columns 0-9 and rows 0-4. A model-input pixel belongs to a region when its centre,
mapped into the photo, lies inside a box (x_min <= x < x_max, y_min <= y < y_max) or on a True mask pixel.
"""

from __future__ import annotations

import csv
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import HeatlensError, MethodError
from ..preprocess import Box, whole_image

COLUMNS = ("image", "x_min", "y_min", "x_max", "y_max")
REGION_FORMS = ("a box (x_min, y_min, x_max, y_max) in photo pixels, a list of such boxes (their union) or a boolean "
                "mask (H, W) at the photo's resolution")


@dataclass
class GridRegions:
    """Regions on the model-input grid: `masks` (N, h, w) bool, `kind` ('boxes' or 'masks'), and `notes` saying
    what of them the model does not see."""

    masks: np.ndarray
    kind: str
    notes: list[str]


def regions_on_grid(region: Any, n: int, photo: tuple[int, int], box: Box | None,
                    grid: tuple[int, int]) -> GridRegions:
    """Lay `region` (one per image, or a bare one for a single image) of n photos of size `photo` onto the model
    input grid `grid`, whose pixels cover the photo box `box` (top, left, bottom, right; None: the whole photo)."""
    items = per_image(region, n)
    box = whole_image(*photo) if box is None else box
    kinds, masks, notes = set(), [], []
    for i, item in enumerate(items):
        kind, value = photo_region(item, photo, i)
        kinds.add(kind)
        share = seen_share(kind, value, photo, box)
        if share == 0:
            raise MethodError(f"the region of image {i} lies outside the part of the photo the model sees (photo "
                              f"box x {box[1]:g}..{box[3]:g}, y {box[0]:g}..{box[2]:g}): give a region inside it, "
                              "or wrap the model with fit='resize' or fit='pad' to show it the whole photo")
        if share < 1:
            note = (f"{100 * (1 - share):.0f}% of the region of image {i} lies outside the part of the photo the "
                    "model sees (its crop); only the part inside counts")
            warnings.warn(note, stacklevel=3)
            notes.append(note)
        masks.append(boxes_on_grid(value, box, grid) if kind == "boxes" else mask_on_grid(value, box, grid))
    return GridRegions(np.stack(masks), kinds.pop() if len(kinds) == 1 else "boxes and masks", notes)


def per_image(region: Any, n: int) -> list[Any]:
    """The region of each of n images: a list (or array) with one entry per image, or, for one image, its region
    itself."""
    if region is None:
        raise MethodError(f"this metric needs region=: {REGION_FORMS}, one per image")
    if isinstance(region, np.ndarray):
        if region.ndim == 3 and region.dtype == bool:
            return list(region) if len(region) == n else _count_error(len(region), n)
        if region.ndim == 2 and region.shape[-1] == 4 and region.dtype != bool:
            return [region] if n == 1 else list(region) if len(region) == n else _count_error(len(region), n)
        if region.ndim in (1, 2):
            return [region] if n == 1 else _count_error(1, n)
    if isinstance(region, list | tuple):
        if _is_box(region) or (n == 1 and all(_is_box(b) for b in region) and len(region) > 0):
            return [region] if n == 1 else _count_error(1, n)
        return list(region) if len(region) == n else _count_error(len(region), n)
    return [region] if n == 1 else _count_error(1, n)


def _is_box(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.ndim == 1 and value.size == 4
    number = int | float | np.integer | np.floating
    return isinstance(value, list | tuple) and len(value) == 4 and all(isinstance(v, number) for v in value)


def _count_error(given: int, n: int) -> list[Any]:
    raise MethodError(f"region= needs one region per image: {n} image(s) but {given} region(s) given. Give a list "
                      f"with one entry per image, each {REGION_FORMS}")


def photo_region(item: Any, photo: tuple[int, int], i: int) -> tuple[str, np.ndarray]:
    """('boxes', (m, 4) float64) or ('mask', (H, W) bool): one image's region, checked against its photo size."""
    try:
        value = np.asarray(item)
    except ValueError:
        raise MethodError(f"the region of image {i} must be {REGION_FORMS}. Received: {_described(item)}") from None
    if value.dtype == bool or (value.ndim == 2 and value.shape != (1, 4) and value.shape[-1] != 4):
        return "masks", _mask(value, photo, i)
    if value.dtype == object or not np.issubdtype(value.dtype, np.number) or value.size == 0 or value.ndim > 2:
        raise MethodError(f"the region of image {i} must be {REGION_FORMS}. Received: {_described(item)}")
    boxes = value.reshape(-1, 4).astype(np.float64)
    for x_min, y_min, x_max, y_max in boxes:
        check_box((x_min, y_min, x_max, y_max), f"the box of image {i}")
        height, width = photo
        if x_min < 0 or y_min < 0 or x_max > width or y_max > height:
            raise MethodError(f"the box of image {i} (x_min, y_min, x_max, y_max) = ({x_min:g}, {y_min:g}, "
                              f"{x_max:g}, {y_max:g}) reaches outside its photo of {width} x {height} pixels "
                              "(width x height): give boxes in the photo's own pixels")
    return "boxes", boxes


def check_box(values: tuple[float, float, float, float], what: str) -> None:
    """Refuse a box that is not four finite numbers with x_min < x_max and y_min < y_max."""
    x_min, y_min, x_max, y_max = values
    if not np.isfinite(values).all() or not (x_min < x_max and y_min < y_max):
        raise MethodError(f"{what} must be (x_min, y_min, x_max, y_max) with x_min < x_max and y_min < y_max. "
                          f"Received: ({', '.join(f'{v:g}' for v in values)})")


def _mask(value: np.ndarray, photo: tuple[int, int], i: int) -> np.ndarray:
    if value.dtype != bool:
        if not np.issubdtype(value.dtype, np.number) or not np.isin(value, (0, 1)).all():
            raise MethodError(f"the mask of image {i} must be boolean (or 0/1). Received: dtype {value.dtype}")
        value = value.astype(bool)
    if value.shape != tuple(photo):
        raise MethodError(f"the mask of image {i} must have its photo's size {photo[0]} x {photo[1]} (height x "
                          f"width). Received: shape {value.shape}")
    if not value.any():
        raise MethodError(f"the mask of image {i} is empty: mark the object's pixels True")
    return value


def _described(item: Any) -> str:
    if isinstance(item, np.ndarray):
        return f"an array of shape {item.shape} and dtype {item.dtype}"
    return repr(item) if len(repr(item)) < 80 else type(item).__name__


def seen_share(kind: str, value: np.ndarray, photo: tuple[int, int], box: Box) -> float:
    """The share of a region (its area, or its mask's pixels) inside the photo box the model sees."""
    top, left = max(box[0], 0.0), max(box[1], 0.0)
    bottom, right = min(box[2], float(photo[0])), min(box[3], float(photo[1]))
    if kind == "boxes":
        inside = _union_area(value, (top, left, bottom, right))
        return inside / _union_area(value, (0.0, 0.0, float(photo[0]), float(photo[1])))
    rows = (np.arange(photo[0]) + 0.5 >= top) & (np.arange(photo[0]) + 0.5 < bottom)
    cols = (np.arange(photo[1]) + 0.5 >= left) & (np.arange(photo[1]) + 0.5 < right)
    return float(value[np.ix_(rows, cols)].sum() / value.sum())


def _union_area(boxes: np.ndarray, within: Box) -> float:
    """The area of the union of boxes (x_min, y_min, x_max, y_max) clipped to `within` (top, left, bottom, right),
    on the grid of their own edges."""
    top, left, bottom, right = within
    xs = np.unique(np.clip(np.concatenate([boxes[:, 0], boxes[:, 2]]), left, right))
    ys = np.unique(np.clip(np.concatenate([boxes[:, 1], boxes[:, 3]]), top, bottom))
    if len(xs) < 2 or len(ys) < 2:
        return 0.0
    cx, cy = (xs[1:] + xs[:-1]) / 2, (ys[1:] + ys[:-1]) / 2
    covered = np.zeros((len(cy), len(cx)), bool)
    for x_min, y_min, x_max, y_max in boxes:
        covered |= ((cy >= y_min) & (cy < y_max))[:, None] & ((cx >= x_min) & (cx < x_max))[None]
    return float((np.diff(ys)[:, None] * np.diff(xs)[None] * covered).sum())


def pixel_centres(box: Box, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The photo coordinates (y (h,), x (w,)) of the model-input pixels' centres."""
    top, left, bottom, right = box
    ys = top + (np.arange(grid[0]) + 0.5) * (bottom - top) / grid[0]
    xs = left + (np.arange(grid[1]) + 0.5) * (right - left) / grid[1]
    return ys, xs


def boxes_on_grid(boxes: np.ndarray, box: Box, grid: tuple[int, int]) -> np.ndarray:
    """The model-input pixels (h, w) whose centres lie in any of the boxes; a box too small to hold a centre
    takes the pixel under its own centre, so no box is lost."""
    ys, xs = pixel_centres(box, grid)
    mask = np.zeros(grid, bool)
    for x_min, y_min, x_max, y_max in boxes:
        rows, cols = (ys >= y_min) & (ys < y_max), (xs >= x_min) & (xs < x_max)
        if not rows.any():
            rows = _middle_pixel((y_min, y_max), (box[0], box[2]), grid[0])
        if not cols.any():
            cols = _middle_pixel((x_min, x_max), (box[1], box[3]), grid[1])
        mask |= rows[:, None] & cols[None]
    return mask


def _middle_pixel(extent: tuple[float, float], span: tuple[float, float], n: int) -> np.ndarray:
    """The one pixel (of n over `span`) holding the middle of the part of `extent` inside the span (none when
    they do not overlap)."""
    chosen = np.zeros(n, bool)
    low, high = max(extent[0], span[0]), min(extent[1], span[1])
    if low < high:
        chosen[min(n - 1, int(((low + high) / 2 - span[0]) / (span[1] - span[0]) * n))] = True
    return chosen


def mask_on_grid(mask: np.ndarray, box: Box, grid: tuple[int, int]) -> np.ndarray:
    """The model-input pixels (h, w) whose centres fall on a True photo pixel (pixels outside the photo are not
    the object); a mask too thin to hold a centre takes the pixels its seen True pixels fall into."""
    ys, xs = pixel_centres(box, grid)
    rows, cols = np.floor(ys).astype(np.int64), np.floor(xs).astype(np.int64)
    row_ok, col_ok = (rows >= 0) & (rows < mask.shape[0]), (cols >= 0) & (cols < mask.shape[1])
    out = np.zeros(grid, bool)
    out[np.ix_(row_ok, col_ok)] = mask[np.ix_(rows[row_ok], cols[col_ok])]
    if not out.any():
        py, px = np.nonzero(mask)
        r = np.floor((py + 0.5 - box[0]) / (box[2] - box[0]) * grid[0]).astype(np.int64)
        c = np.floor((px + 0.5 - box[1]) / (box[3] - box[1]) * grid[1]).astype(np.int64)
        seen = (r >= 0) & (r < grid[0]) & (c >= 0) & (c < grid[1])
        out[r[seen], c[seen]] = True
    return out


def read_boxes(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A boxes CSV with the header `image,x_min,y_min,x_max,y_max` (other columns are ignored) -> image name ->
    its boxes (m, 4) float64 in photo pixels; several rows of one image are its union."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise HeatlensError(f"no boxes file at {path}: give a CSV with the header {','.join(COLUMNS)}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HeatlensError(f"cannot read the boxes file {path} ({type(exc).__name__}): give a UTF-8 CSV with the "
                            f"header {','.join(COLUMNS)}") from None
    reader = csv.DictReader(text.splitlines())
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in COLUMNS if name not in header]
    if missing:
        raise HeatlensError(f"the boxes file {path} has no column {', '.join(missing)}: its first line must be the "
                            f"header {','.join(COLUMNS)}. Received: {','.join(header) or 'an empty file'}")
    reader.fieldnames = header
    table: dict[str, list[tuple[float, ...]]] = {}
    for line, row in enumerate(reader, start=2):
        if not any(str(value).strip() for key, value in row.items() if key is not None and value):
            continue
        image = (row["image"] or "").strip()
        if not image:
            raise HeatlensError(f"line {line} of the boxes file {path} names no image: fill its image column")
        table.setdefault(image, []).append(_row_box(row, line, path))
    if not table:
        raise HeatlensError(f"the boxes file {path} has a header but no boxes: add one row per box")
    return {image: np.array(boxes, np.float64) for image, boxes in table.items()}


def _row_box(row: dict[str, str | None], line: int, path: Path) -> tuple[float, float, float, float]:
    try:
        x_min, y_min, x_max, y_max = (float((row[name] or "").strip()) for name in COLUMNS[1:])
    except ValueError:
        received = ",".join(str(row[name]) for name in COLUMNS[1:])
        raise HeatlensError(f"line {line} of the boxes file {path} must hold four numbers x_min,y_min,x_max,y_max. "
                            f"Received: {received}") from None
    values = (x_min, y_min, x_max, y_max)
    try:
        check_box(values, f"the box on line {line} of {path}")
    except MethodError as exc:
        raise HeatlensError(str(exc)) from None
    return values


def boxes_for(table: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
    """Each image's boxes from a read_boxes table, found by the name as given or by its file name."""
    by_file = {Path(key).name: value for key, value in table.items()}
    out = []
    for name in names:
        found = table.get(name, by_file.get(Path(name).name))
        if found is None:
            raise HeatlensError(f"the boxes file has no row for image {name!r}: add rows image,x_min,y_min,x_max,"
                                f"y_max for it. It names: {', '.join(sorted(table)[:10])}")
        out.append(found)
    return out
