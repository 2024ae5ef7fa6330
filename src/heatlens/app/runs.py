"""What the app shows of a `heatlens run` output folder, without Gradio: its rows (filtered by predicted class
and by right or wrong), one row's stored maps drawn over its photo by heatlens.display, and the per-class
summary `heatlens report` shows (heatlens.run.summary). Rows are read by the run's own readers (run/shards.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import display
from ..errors import HeatlensError, ImageError, first_line
from ..explanation import Explanation
from ..images import load_image
from ..run.report import mean_map_picture
from ..run.shards import read_columns, read_row, shard_files
from ..run.summary import TOP_SHARE, RunOverview, is_run, overview
from ..targets import Targets
from . import session as work

MAX_ROWS = 500  # rows listed at once; the filters narrow a larger run down
MEAN_MAP_SIDE = 96  # pixels: a mean map's side, as the report draws it
OUTCOMES = ("all", "right", "wrong")
ALL_CLASSES = -1  # the class filter's 'every predicted class'


@dataclass
class OpenedRun:
    """A run folder as the app holds it: its per-class summary (run.json included), the methods and metric columns
    of its rows, and per explained row the values its table lists (no maps: those are read per selected row)."""

    folder: Path
    summary: RunOverview
    methods: list[str]
    metrics: list[tuple[str, str]]  # (row column, heading): each metric of each method
    rows: list[dict[str, Any]]
    base: str = ""  # the folder all the rows' photos are under (the table lists their paths from there)

    @property
    def record(self) -> dict[str, Any]:
        return self.summary.record

    @property
    def labelled(self) -> bool:
        return self.summary.labelled > 0


def check_run(folder: str | Path) -> Path:
    """The run folder `folder` names, once it is one whose shards are all there; else a one-line HeatlensError
    saying what is wrong with it and what to do."""
    text = str(folder).strip()
    if not text:
        raise HeatlensError("no run folder given: type the --out folder of a `heatlens run`")
    path = Path(text).expanduser()
    if not path.is_dir():
        raise HeatlensError(f"there is no folder '{text}': give the --out folder of a `heatlens run`")
    if not is_run(path):
        raise HeatlensError(f"'{text}' holds no heatlens run (no run.json and shards/): give the --out folder of "
                            "a `heatlens run`")
    try:
        listed = json.loads((path / "run.json").read_text(encoding="utf-8")).get("shards", [])
    except (OSError, ValueError) as exc:
        raise HeatlensError(f"cannot read '{path / 'run.json'}': {first_line(exc)}; the run's record is damaged, "
                            "run it again into a new --out") from None
    present = {file.name for file in shard_files(path)}
    missing = [name for name in listed if name not in present]
    if missing:
        raise HeatlensError(f"the run in '{text}' lacks {len(missing)} of its {len(listed)} shards (first: shards/"
                            f"{missing[0]}): put them back, or rerun the same `heatlens run` with --resume to "
                            "explain their images again")
    return path


def open_run(folder: str | Path) -> OpenedRun:
    """The run in `folder` (checked by check_run), its summary and its rows; a damaged shard is a HeatlensError."""
    path = check_run(folder)
    try:
        summary = overview(path)
        plan = summary.record["settings"]["plan"]
        methods = list(plan["methods"])
        metrics = [(f"{metric}_{method}", f"{metric} ({method})") for method in methods for metric in plan["metrics"]]
        table = read_columns(path, lambda name: not name.startswith(("map_", "overlay_")))
        rows = [] if table is None else [_row(r, metrics) for r in table.to_pylist()]
    except HeatlensError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HeatlensError(f"a file of the run in '{path}' cannot be read ({type(exc).__name__}: "
                            f"{first_line(exc).rstrip('.')}): delete the damaged shard and rerun the same "
                            "`heatlens run` with --resume, or run it again into a new --out") from None
    return OpenedRun(path, summary, methods, metrics, rows, _common_folder([r["path"] for r in rows]))


def _common_folder(paths: list[str]) -> str:
    """The deepest folder every path is under ('' when there is none, e.g. absolute and relative paths mixed)."""
    try:
        return os.path.commonpath([os.path.dirname(p) for p in paths]) if paths else ""
    except ValueError:
        return ""


def _row(stored: dict[str, Any], metrics: list[tuple[str, str]]) -> dict[str, Any]:
    """What the table lists of one stored row: the first prediction and target, right or wrong, metric scores."""
    label_id = stored.get("label_id")
    values = {column: (stored.get(column) or [None])[0] for column, _ in metrics}
    return {"id": stored["id"], "path": stored["path"], "predicted_id": stored["pred_ids"][0],
            "predicted": stored["pred_names"][0], "probability": stored["pred_probs"][0],
            "target": ", ".join(stored["target_names"]), "score": stored["target_probs"][0],
            "label": stored.get("label"), "right": None if label_id is None else label_id == stored["pred_ids"][0],
            "metrics": values}


def class_choices(opened: OpenedRun) -> list[tuple[str, int]]:
    """The class filter's choices: every class, then each predicted class with its image count, largest first."""
    classes = next(iter(opened.summary.classes.values()), [])
    return [(f"every predicted class ({opened.summary.rows})", ALL_CLASSES),
            *((f"{c.name} (id {c.id}, {c.images})", c.id) for c in classes)]


def headings(opened: OpenedRun) -> list[str]:
    """The row table's column headings (label and right/wrong only when the run has labels)."""
    labels = ["label", "right"] if opened.labelled else []
    return ["id", "path", "predicted", "target", "score", *labels, *(heading for _, heading in opened.metrics)]


def table(opened: OpenedRun, class_id: int = ALL_CLASSES, outcome: str = "all") -> tuple[list[list[Any]], int]:
    """The rows predicted as `class_id` (ALL_CLASSES: any) that are `outcome` (all, right or wrong: those need
    labels), at most MAX_ROWS of them as the table lists them, and how many rows match in all."""
    if outcome not in OUTCOMES:
        raise HeatlensError(f"the outcome filter takes {', '.join(OUTCOMES)}. Received: {outcome!r}")
    if outcome != "all" and not opened.labelled:
        raise HeatlensError("this run has no labels, so no row is right or wrong: run it on a manifest with a "
                            "label column to see that")
    chosen = [r for r in opened.rows if (class_id == ALL_CLASSES or r["predicted_id"] == class_id)
              and (outcome == "all" or r["right"] is (outcome == "right"))]
    listed = []
    for r in chosen[:MAX_ROWS]:
        labels = [r["label"] or "", "-" if r["right"] is None else "right" if r["right"] else "wrong"] \
            if opened.labelled else []
        scores = [None if r["metrics"][c] is None else round(float(r["metrics"][c]), 4) for c, _ in opened.metrics]
        path = os.path.relpath(r["path"], opened.base) if opened.base else r["path"]
        listed.append([r["id"], path, f"{r['predicted']} {display.percent(r['probability'])}", r["target"],
                       round(float(r["score"]), 4), *labels, *scores])
    return listed, len(chosen)


def facts(opened: OpenedRun) -> list[tuple[str, str]]:
    """What ran and how it went, as the report's header says it: model, source, methods, target, images, accuracy."""
    summary, settings = opened.summary, opened.record["settings"]
    done = "" if opened.record.get("complete") else " (the run is not finished: resume it)"
    accuracy = (f"{summary.accuracy:.1%} of {summary.labelled} labelled images (top-1)" if summary.accuracy is not None
                else "no labels (give a manifest with a label column)")
    return [("model", str(settings["model"])), ("source", str(settings["source"])),
            ("photos under", opened.base or "-"), ("methods", ", ".join(opened.methods)),
            ("target", str(settings["plan"]["target"])),
            ("images", f"{summary.rows} explained, {len(summary.errors)} failed, of {opened.record['images']}{done}"),
            ("accuracy", accuracy)]


def class_rows(opened: OpenedRun) -> list[list[Any]]:
    """The per-class summary (heatlens.run.summary, as heatlens report shows it): per method and predicted class,
    largest first, the images, how many labelled ones are right, and the maps' mean concentration."""
    rows = []
    for method, classes in opened.summary.classes.items():
        for c in classes:
            right = f"{c.accuracy:.1%} of {c.labelled}" if c.accuracy is not None else "-"
            spread = round(c.concentration, 3) if c.concentration is not None else None
            rows.append([method, f"{c.name} (id {c.id})", c.images, right, spread])
    return rows


CLASS_HEADINGS = ["method", "predicted class", "images", "right (labelled)",
                  f"concentration (share in the top {TOP_SHARE:.0%} cells)"]


def mean_maps(opened: OpenedRun, limit: int = 60) -> list[tuple[np.ndarray, str]]:
    """Each method's mean map per predicted class (each map scaled to a peak of 1 first), in jet and blown up
    without smoothing as the report draws them, captioned; the `limit` largest classes over all methods."""
    out = []
    for method, classes in opened.summary.classes.items():
        for c in classes:
            picture = np.asarray(mean_map_picture(c.mean_map, MEAN_MAP_SIDE))
            out.append((picture, f"{method} · {c.name} · {c.images} images"))
    return out[:limit]


def errors(opened: OpenedRun) -> list[list[Any]]:
    """The images the run could not explain: id, path and the reason."""
    return [[e["id"], e["path"], e["error"]] for e in opened.summary.errors]


def row_results(opened: OpenedRun, row_id: int) -> list[Explanation]:
    """Row `row_id`'s stored maps (float16 at the layer's grid, and the crop box the model saw) as one
    Explanation per method over the photo read again from its path, ready for heatlens.display."""
    try:
        stored = read_row(opened.folder, row_id)
    except (OSError, ValueError) as exc:
        raise HeatlensError(f"cannot read row {row_id} of the run in '{opened.folder}': {first_line(exc)}") from None
    if stored is None:
        raise HeatlensError(f"the run in '{opened.folder}' has no explained row {row_id}: pick a row of the table")
    row = stored.select([n for n in stored.column_names if not n.startswith("map_")]).to_pylist()[0]
    photo = _photo(row)
    plan, layers = opened.record["settings"]["plan"], opened.record.get("layers", {})
    count = len(row["target_ids"])
    targets = Targets(np.array([row["target_ids"]], np.int64), [list(row["target_names"])],
                      np.full((1, count), np.nan), np.array([row["target_probs"]], np.float64))
    results = []
    for method in opened.methods:
        maps = stored[f"map_{method}"].combine_chunks().to_numpy_ndarray()[:1].astype(np.float32)
        layer = layers.get(method)
        results.append(Explanation(maps, targets, method, str(opened.record["settings"]["model"]),
                                   ", ".join(layer) if isinstance(layer, list) else layer,
                                   input_box=tuple(float(v) for v in row["crop_box"]),  # type: ignore[arg-type]
                                   params=dict(plan["options"].get(method, {})), names=[Path(row["path"]).name],
                                   _images=photo[None]))
    return results


def _photo(row: dict[str, Any]) -> np.ndarray:
    """The row's photo read again; one the run saw at another size, or that is gone, is refused in a line."""
    path = Path(row["path"])
    if not path.is_file():
        where = "" if path.is_absolute() else " (a relative path is read from the folder the app runs in: start " \
                                              "it where the run was started)"
        raise ImageError(f"the photo '{path}' of row {row['id']} is not there any more{where}")
    photo = load_image(path)
    if photo.shape[:2] != (row["height"], row["width"]):
        raise ImageError(f"the photo '{path}' is {photo.shape[0]}x{photo.shape[1]} now, and was {row['height']}x"
                         f"{row['width']} when the run explained it: it changed since, so its stored maps no "
                         "longer fit it")
    return photo


def row_tiles(opened: OpenedRun, row_id: int, alpha: float = 0.4, cmap: str | None = None) \
        -> list[tuple[np.ndarray, str]]:
    """Row `row_id`'s labelled tiles, per method and target: its stored map over its photo with the colour bar
    under it, drawn as the app draws a live explanation (heatlens.display through session.tiles)."""
    return [tile for result in row_results(opened, row_id) for tile in work.tiles(result, alpha, cmap)]
