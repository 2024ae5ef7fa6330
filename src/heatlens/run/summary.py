"""A finished run in numbers: per predicted class the images, how many of the labelled ones are right, the mean
map, how concentrated the maps are and the mean of each metric the run scored. Read shard by shard, so a run of
millions of rows stays small in memory."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import HeatlensError
from .arrow import pyarrow
from .shards import read_errors, shard_files

TOP_SHARE = 0.1  # concentration: the share of a map's positive mass in its 10% highest cells


def concentration(maps: np.ndarray) -> np.ndarray:
    """Per map (N, h, w): the share of its positive mass in its highest TOP_SHARE of cells: 0.1 when the map is
    spread evenly, 1 when everything is in those cells; NaN for a map with no positive value."""
    flat = np.clip(maps.reshape(len(maps), -1).astype(np.float32), 0, None)
    k = max(1, math.ceil(TOP_SHARE * flat.shape[1]))
    top = np.sort(flat, axis=1)[:, -k:].sum(axis=1)
    total = flat.sum(axis=1)
    return np.where(total > 0, top / np.where(total > 0, total, 1), np.nan)


@dataclass
class ClassSummary:
    """One predicted class of one method: images, labelled images and the right ones among them, the mean map
    (each image's first target, scaled to a peak of 1), the mean concentration and per metric the mean score of
    the first target's map (finite scores only)."""

    id: int
    name: str
    images: int = 0
    labelled: int = 0
    correct: int = 0
    concentration_sum: float = 0.0
    concentration_count: int = 0
    map_sum: np.ndarray | None = None
    metric_sums: dict[str, float] = field(default_factory=dict)
    metric_counts: dict[str, int] = field(default_factory=dict)

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    @property
    def concentration(self) -> float | None:
        return self.concentration_sum / self.concentration_count if self.concentration_count else None

    def metric(self, name: str) -> float | None:
        """The mean score of metric `name` over this class's images that have a finite one."""
        count = self.metric_counts.get(name, 0)
        return self.metric_sums[name] / count if count else None

    @property
    def mean_map(self) -> np.ndarray:
        return self.map_sum / self.images if self.map_sum is not None else np.zeros((1, 1), np.float32)


@dataclass
class RunOverview:
    """What a run folder holds: its record (run.json), row and error counts, the overall accuracy on labelled
    images, and per method the per-class summaries, largest class first."""

    folder: Path
    record: dict[str, Any]
    rows: int
    errors: list[dict[str, Any]]
    labelled: int
    correct: int
    classes: dict[str, list[ClassSummary]] = field(default_factory=dict)

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None


def is_run(folder: Path) -> bool:
    """Whether `folder` holds the output of heatlens run."""
    return (folder / "run.json").is_file() and (folder / "shards").is_dir()


def overview(folder: str | Path) -> RunOverview:
    """The per-class summary of the run in `folder` (finished or not: what its shards hold)."""
    folder = Path(folder)
    if not is_run(folder):
        raise HeatlensError(f"'{folder}' holds no heatlens run (no run.json and shards/): give the --out folder of "
                            "a `heatlens run`")
    record = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    methods = list(record["settings"]["plan"]["methods"])
    metrics = list(record["settings"]["plan"].get("metrics", ()))
    summaries: dict[str, dict[int, ClassSummary]] = {m: {} for m in methods}
    rows = labelled = correct = 0
    pq = pyarrow().parquet
    for path in shard_files(folder):
        table = pq.read_table(path)
        if not table.num_rows:
            continue
        rows += table.num_rows
        predicted = [ids[0] for ids in table["pred_ids"].to_pylist()]
        names = [n[0] for n in table["pred_names"].to_pylist()]
        labels = table["label_id"].to_pylist()
        right = [label is not None and label == p for label, p in zip(labels, predicted, strict=True)]
        labelled += sum(label is not None for label in labels)
        correct += sum(right)
        for method in methods:
            maps = table[f"map_{method}"].combine_chunks().to_numpy_ndarray()[:, 0].astype(np.float32)
            scores = {m: _first_scores(table, f"{m}_{method}") for m in metrics}
            _add(summaries[method], predicted, names, labels, right, maps, scores)
    ordered = {m: sorted(s.values(), key=lambda c: (-c.images, c.id)) for m, s in summaries.items()}
    return RunOverview(folder, record, rows, read_errors(folder), labelled, correct, ordered)


def _first_scores(table: Any, column: str) -> np.ndarray:
    """A metric column's score of each row's first target (NaN where the row has none)."""
    values = table[column].to_pylist() if column in table.column_names else [None] * table.num_rows
    return np.array([v[0] if v and v[0] is not None else np.nan for v in values], np.float64)


def _add(classes: dict[int, ClassSummary], predicted: list[int], names: list[str], labels: list[int | None],
         right: list[bool], maps: np.ndarray, scores: dict[str, np.ndarray]) -> None:
    """One shard's rows added to the per-class sums of one method."""
    peaks = np.abs(maps).reshape(len(maps), -1).max(axis=1)
    scaled = maps / np.where(peaks > 0, peaks, 1)[:, None, None]
    spread = concentration(maps)
    for row, class_id in enumerate(predicted):
        summary = classes.setdefault(class_id, ClassSummary(class_id, names[row]))
        summary.images += 1
        summary.labelled += labels[row] is not None
        summary.correct += right[row]
        if not np.isnan(spread[row]):
            summary.concentration_sum += float(spread[row])
            summary.concentration_count += 1
        summary.map_sum = scaled[row] if summary.map_sum is None else summary.map_sum + scaled[row]
        for metric, values in scores.items():
            if np.isfinite(values[row]):
                summary.metric_sums[metric] = summary.metric_sums.get(metric, 0.0) + float(values[row])
                summary.metric_counts[metric] = summary.metric_counts.get(metric, 0) + 1
