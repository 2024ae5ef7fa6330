"""heatlens.evaluate(): several methods scored by several metrics on the same model, photos and targets, as one
table (rows: methods, columns: metrics; each cell the mean over images with a 95% percentile-bootstrap interval),
with the winner of each column, the per-image scores, the forward passes and the curves each metric measured."""

from __future__ import annotations

import csv
import html
import inspect
import json
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from .api import _image_names, _per_image_targets, _photo_list, explain
from .errors import MethodError, close_matches
from .explanation import Explanation, _jsonable
from .methods import get_method
from .metrics import MetricInfo, MetricResult, compute, get_metric
from .models import to_network
from .progress import in_notebook
from .targets import TargetSpec
from .version import __version__

log = logging.getLogger(__name__)
RESAMPLES = 2000  # bootstrap resamples per cell
LEVEL = 0.95  # the interval's coverage: the 2.5th and 97.5th percentiles of the resampled means
SCHEMA = 1
RUN_PARAMS = {"batch_size", "progress", "seed", "region", "options", "target"}  # set by evaluate, not by the user


@dataclass(frozen=True)
class Cell:
    """One table cell: the mean of the per-image scores, its 95% bootstrap interval [low, high], the image count."""

    mean: float
    low: float
    high: float
    n: int


@dataclass
class Evaluation:
    """Methods x metrics on the same photos. `scores[method][metric]`: per-image scores (N,) (each the mean over
    that image's targets); `results[method][metric]`: the MetricResults (curves, targets, parameters), one per
    group of same-size photos, group g covering the images at `groups[g]`, and `explanations[method]` the maps they
    measured, one per group; `forward_passes` per method and metric."""

    model: str
    methods: list[str]
    metrics: list[str]
    images: list[str]
    scores: dict[str, dict[str, np.ndarray]]
    results: dict[str, dict[str, list[MetricResult]]]
    groups: list[list[int]]
    higher_is_better: dict[str, bool]
    explanations: dict[str, list[Explanation]] = field(default_factory=dict, repr=False)
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seed: int = 0
    resamples: int = RESAMPLES
    cells: dict[tuple[str, str], Cell] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.cells = {(m, k): summarise(self.scores[m][k], self.seed, self.resamples)
                      for m in self.methods for k in self.metrics}

    def cell(self, method: str, metric: str) -> Cell:
        """The table cell of one method and one metric."""
        return self.cells[(method, metric)]

    def winners(self, metric: str) -> list[str]:
        """The methods with the best mean in a metric's column (by which way it is better): one, or several
        where their means tie (equal to 1e-12, relative)."""
        means = {m: self.cell(m, metric).mean for m in self.methods}
        best = (max if self.higher_is_better[metric] else min)(means.values())
        return [m for m, v in means.items() if abs(v - best) <= 1e-12 * max(1.0, abs(best))]

    def located(self, image: int) -> tuple[int, int]:
        """Where image `image` is in the per-group results: (group, position within it)."""
        return next((g, positions.index(image)) for g, positions in enumerate(self.groups) if image in positions)

    def forward_passes(self, method: str, metric: str) -> int:
        """The forward passes a metric made for a method's maps, over all images."""
        return sum(r.forward_passes for r in self.results[method][metric])

    def rows(self) -> list[dict[str, Any]]:
        """One record per method and metric: mean, low, high, n, which way is better, whether it wins its column
        (and whether that is a tie), and the forward passes it took."""
        out = []
        for metric in self.metrics:
            winners = self.winners(metric)
            for method in self.methods:
                cell = self.cell(method, metric)
                out.append({"method": method, "metric": metric, "mean": cell.mean, "low": cell.low,
                            "high": cell.high, "n": cell.n, "higher_is_better": self.higher_is_better[metric],
                            "winner": method in winners, "tie": method in winners and len(winners) > 1,
                            "forward_passes": self.forward_passes(method, metric)})
        return out

    def image_rows(self) -> list[dict[str, Any]]:
        """One record per image, method and metric: the image's score (the mean over its targets) and its targets."""
        out = []
        for method in self.methods:
            for metric in self.metrics:
                ids = self.target_ids(method, metric)
                for i, name in enumerate(self.images):
                    out.append({"image": name, "method": method, "metric": metric,
                                "score": float(self.scores[method][metric][i]),
                                "targets": " ".join(str(t) for t in ids[i])})
        return out

    def target_ids(self, method: str, metric: str) -> list[list[int]]:
        """Per image, the class ids its scores are of."""
        ids: list[list[int]] = [[] for _ in self.images]
        for positions, result in zip(self.groups, self.results[method][metric], strict=True):
            for i, row in zip(positions, np.asarray(result.targets), strict=True):
                ids[i] = [int(t) for t in row]
        return ids

    def to_csv(self, path: str | Path, per_image: bool = False) -> Path:
        """Write the table as CSV, one row per method and metric (mean, low, high, n, higher_is_better, winner,
        tie, forward_passes); per_image=True: one row per image, method and metric instead. Floats keep every digit."""
        rows = self.image_rows() if per_image else self.rows()
        target = Path(path)
        with target.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({k: repr(v) if isinstance(v, float) else v for k, v in row.items()} for row in rows)
        return target

    def to_json(self, path: str | Path, header: dict[str, Any] | None = None) -> Path:
        """Write everything as JSON: the model, images, every parameter, the bootstrap settings, the table, the
        winners, the per-image scores, the forward passes and the mean curves; `header` adds keys (versions, ...)."""
        target = Path(path)
        target.write_text(json.dumps(self.as_dict(header), indent=2) + "\n", encoding="utf-8")
        return target

    def as_dict(self, header: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON document of to_json as a dict."""
        return {
            "schema_version": SCHEMA, "versions": {"heatlens": __version__}, **(header or {}),
            "model": self.model, "methods": self.methods, "metrics": self.metrics, "images": self.images,
            "bootstrap": {"kind": "percentile", "level": LEVEL, "resamples": self.resamples, "seed": self.seed,
                          "over": "images (each image's score is the mean over its targets)"},
            "params": _jsonable_tree(self.params),
            "table": self.rows(),
            "winners": {metric: self.winners(metric) for metric in self.metrics},
            "per_image": {m: {k: [float(v) for v in self.scores[m][k]] for k in self.metrics} for m in self.methods},
            "curves": {m: {k: _jsonable_tree(mean_curves(self, m, k)) for k in self.metrics} for m in self.methods},
            "notes": self.notes,
        }

    def table_text(self, two_lines: bool = False) -> list[list[str]]:
        """The table as text: a header row (each metric with which way is better), then one row per method with
        'mean [low, high]' per metric, '*' after a column's winner ('=' after methods that tie for it); two_lines:
        the interval and the way that is better on a line of their own (narrow columns for a terminal)."""
        gap = "\n" if two_lines else " "
        head = ["method", *(f"{k}{gap}({'higher' if self.higher_is_better[k] else 'lower'} is better)"
                            for k in self.metrics)]
        columns = {k: _formatter([v for m in self.methods for v in astuple(self.cell(m, k))]) for k in self.metrics}
        body = []
        for method in self.methods:
            row = [method]
            for metric in self.metrics:
                cell, fmt, winners = self.cell(method, metric), columns[metric], self.winners(metric)
                mark = ("=" if len(winners) > 1 else "*") if method in winners else ""
                interval = f"[{fmt(cell.low)}, {fmt(cell.high)}]"
                row.append(f"{fmt(cell.mean)} {mark}".rstrip() + f"{gap}{interval}" if two_lines
                           else f"{fmt(cell.mean)} {interval} {mark}".rstrip())
            body.append(row)
        return [head, *body]

    def is_best(self, method: str, metric: str) -> bool:
        """Whether a method has the best mean of a metric's column (alone or tied)."""
        return method in self.winners(metric)

    def caption(self) -> str:
        return (f"{self.model} on {len(self.images)} image(s): mean over images [95% bootstrap interval, "
                f"{self.resamples} resamples]; * best of its column, = tied for best")

    def __repr__(self) -> str:
        rows = self.table_text()
        widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
        lines = ["  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip()
                 for row in rows]
        return "\n".join([f"<Evaluation: {self.caption()}>", *lines, *self.notes])

    def _repr_html_(self) -> str:
        head, *body = self.table_text()
        cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        lines = [f"<table><caption>{html.escape(self.caption())}</caption><tr>{cells}</tr>"]
        for method, row in zip(self.methods, body, strict=True):
            best = [False, *(self.is_best(method, k) for k in self.metrics)]
            tds = "".join(f"<td><b>{html.escape(t)}</b></td>" if b else f"<td>{html.escape(t)}</td>"
                          for t, b in zip(row, best, strict=True))
            lines.append(f"<tr>{tds}</tr>")
        notes = "".join(f"<p>{html.escape(n)}</p>" for n in self.notes)
        return "".join(lines) + "</table>" + notes


def astuple(cell: Cell) -> tuple[float, float, float]:
    return cell.mean, cell.low, cell.high


def bootstrap_means(values: np.ndarray, seed: int = 0, resamples: int = RESAMPLES) -> np.ndarray:
    """Means (resamples, ...) of values (n, ...) over resamples of its first axis with replacement, image i of
    resample b being draws[b, i] of draws = np.random.default_rng(seed).integers(0, n, (resamples, n))."""
    values = np.asarray(values, np.float64)
    n = len(values)
    draws = np.random.default_rng(seed).integers(0, n, (resamples, n))
    offsets = (draws + n * np.arange(resamples)[:, None]).ravel()
    counts = np.bincount(offsets, minlength=resamples * n).reshape(resamples, n)
    return (counts @ values.reshape(n, -1) / n).reshape(resamples, *values.shape[1:])


def summarise(values: np.ndarray, seed: int = 0, resamples: int = RESAMPLES) -> Cell:
    """The mean of per-image scores and its 95% percentile-bootstrap interval (Efron 1979): the 2.5th and 97.5th
    percentiles (numpy's linear interpolation) of the means of `resamples` resamples (see bootstrap_means)."""
    values = np.asarray(values, np.float64)
    low, high = np.percentile(bootstrap_means(values, seed, resamples), [50 * (1 - LEVEL), 50 * (1 + LEVEL)])
    return Cell(float(values.mean()), float(low), float(high), len(values))


def curve_arrays(evaluation: Evaluation, method: str, metric: str) -> tuple[dict[str, np.ndarray],
                                                                            dict[str, np.ndarray]]:
    """What a metric measured for a method, over all images in order: the axes (1-D arrays, e.g. 'fraction') and
    the curves (N, T) (each image's mean over its targets) whose last axis runs along one of the axes."""
    results = evaluation.results[method][metric]
    axes = {k: np.asarray(v) for k, v in results[0].curves.items() if np.ndim(v) == 1}
    lengths = {len(v) for v in axes.values()}
    curves: dict[str, np.ndarray] = {}
    for key, value in results[0].curves.items():
        if np.ndim(value) == 3 and np.shape(value)[-1] in lengths:
            parts = [np.asarray(r.curves[key], np.float64).mean(axis=1) for r in results]
            if len({p.shape[-1] for p in parts}) == 1:
                order = np.argsort(np.concatenate(evaluation.groups), kind="stable")
                curves[key] = np.concatenate(parts)[order]
    return axes, curves


def mean_curves(evaluation: Evaluation, method: str, metric: str) -> dict[str, Any]:
    """Per curve of a metric: the mean over images and its 95% bootstrap band per step (same resamples as the
    table), with the axes it runs along."""
    axes, curves = curve_arrays(evaluation, method, metric)
    out: dict[str, Any] = {k: v.tolist() for k, v in axes.items()}
    for key, values in curves.items():
        low, high = np.percentile(bootstrap_means(values, evaluation.seed, evaluation.resamples),
                                  [50 * (1 - LEVEL), 50 * (1 + LEVEL)], axis=0)
        out[key] = {"mean": values.mean(axis=0).tolist(), "low": low.tolist(), "high": high.tolist()}
    return out


def evaluate(
    model: Any,
    images: Any,
    methods: Sequence[str] = ("gradcam",),
    metrics: Sequence[str] = ("deletion", "insertion"),
    target: TargetSpec = "top1",
    regions: Any = None,
    metric_params: dict[str, dict[str, Any]] | None = None,
    method_options: dict[str, dict[str, Any]] | None = None,
    batch_size: int | str = "auto",
    seed: int = 0,
    progress: bool = True,
    names: Sequence[str] | None = None,
) -> Evaluation:
    """Explain the photos once per method (photos of one size together) and score each method's maps with each
    metric: a table of the mean over images with a 95% percentile-bootstrap interval (2000 resamples, seeded).

    metric_params: per metric its own parameters ({'deletion': {'steps': 50}}); method_options: per method its
    options ({'lime': {'num_samples': 500}}); regions: the object's boxes or masks for localisation metrics (one
    entry per image, or a dict by image name); names: the images' names (file names where images are paths)."""
    method_names = _unique([get_method(m).name for m in _sequence(methods, "methods")], "methods")
    infos = metric_infos(metrics, metric_params, regions is not None)
    metric_params = _checked(metric_params, [i.name for i in infos], "metric_params", "metrics")
    method_options = _checked(method_options, method_names, "method_options", "methods")
    network = to_network(model)
    groups = _groups(network, images)
    known = sum(len(positions) for positions, _ in groups) or None
    scores: dict[str, dict[str, list[tuple[list[int], np.ndarray]]]] = {m: {i.name: [] for i in infos}
                                                                        for m in method_names}
    results: dict[str, dict[str, list[MetricResult]]] = {m: {i.name: [] for i in infos} for m in method_names}
    explanations: dict[str, list[Explanation]] = {m: [] for m in method_names}
    params: dict[str, Any] = {"target": _target_label(target), "batch_size": batch_size, "seed": seed,
                              "resamples": RESAMPLES, "methods": {}, "metrics": {}}
    notes: dict[tuple[str, str], list[str]] = {}
    steps = len(method_names) * len(groups)
    for m, method in enumerate(method_names):
        for g, (positions, group_images) in enumerate(groups):
            _say(progress, f"[{m * len(groups) + g + 1}/{steps}] {method} on {len(positions) or 'the'} image(s)")
            aim = target if known is None else _group_target(target, positions, known)
            result = cast(Explanation, explain(network, group_images, method, aim, upsample=False,
                                               **method_options.get(method, {})))
            if not positions:  # one batch: its size is known once explained
                positions = list(range(len(result.maps)))
                groups[g] = (positions, group_images)
            image_names = _names(names, images, sum(len(p) for p, _ in groups), positions)
            result.names = image_names
            explanations[method].append(result)
            params["methods"].setdefault(method, _jsonable_tree(result.params))
            for info in infos:
                run = _run_params(info, metric_params.get(info.name, {}), batch_size, seed, progress)
                if info.needs_region:
                    run["region"] = _group_regions(regions, positions, image_names)
                measured = compute(info.name, network, None, result, **run)
                results[method][info.name].append(measured)
                scores[method][info.name].append((positions, measured.scores.mean(axis=1)))
                params["metrics"].setdefault(info.name, _jsonable_tree(measured.params))
                for note in measured.notes:
                    said = notes.setdefault((info.name, note), [])
                    said += [] if method in said else [method]
    total = sum(len(positions) for positions, _ in groups)
    return Evaluation(
        model=network.name, methods=method_names, metrics=[i.name for i in infos],
        images=_names(names, images, total, list(range(total))),
        scores={m: {k: _in_order(parts, total) for k, parts in per.items()} for m, per in scores.items()},
        results=results, groups=[positions for positions, _ in groups],
        higher_is_better={i.name: i.higher_is_better for i in infos}, explanations=explanations, params=params,
        notes=[*_few(total), *(_note(metric, note, said, method_names) for (metric, note), said in notes.items())],
        seed=seed)


def metric_infos(metrics: Sequence[str], metric_params: dict[str, dict[str, Any]] | None = None,
                 has_regions: bool = False) -> list[MetricInfo]:
    """The metrics asked for, checked before any work: known names (close ones suggested), each once, parameters
    each takes, and regions given where a metric needs them."""
    infos = [get_metric(k) for k in _unique(list(_sequence(metrics, "metrics")), "metrics")]
    per_metric = _checked(metric_params, [i.name for i in infos], "metric_params", "metrics")
    for info in infos:
        _check_params(info, per_metric.get(info.name, {}))
        if info.needs_region and not has_regions:
            raise MethodError(f"metric '{info.name}' needs regions (the object's boxes or masks): pass regions= "
                              "(Python) or --boxes boxes.csv (command line), or leave the metric out")
    return infos


def metric_parameters(info: MetricInfo) -> list[str]:
    """The parameters of a metric that a caller sets (not those evaluate sets for every metric)."""
    return [k for k in inspect.signature(info.fn).parameters
            if k not in {"model", "images", "explanation"} and k not in RUN_PARAMS]


def _sequence(value: Any, what: str) -> Sequence[str]:
    items = [value] if isinstance(value, str) else list(value or [])
    if not items or not all(isinstance(v, str) for v in items):
        raise MethodError(f"{what} must be a name or a list of names, e.g. ['gradcam', 'lime']. Received: {value!r}")
    return items


def _unique(names: list[str], what: str) -> list[str]:
    if len(set(names)) != len(names):
        raise MethodError(f"each of the {what} can be named once. Received: {names}")
    return names


def _checked(per_name: dict[str, dict[str, Any]] | None, known: list[str], argument: str,
             what: str) -> dict[str, dict[str, Any]]:
    """Per-name settings whose names are all among those evaluated."""
    per_name = dict(per_name or {})
    for name, value in per_name.items():
        if name not in known:
            raise MethodError(f"{argument} names {name!r}, which is not among the {what} evaluated ({', '.join(known)})"
                              f".{close_matches(name, known)}")
        if not isinstance(value, dict):
            raise MethodError(f"{argument}[{name!r}] must be a dict of keyword arguments. Received: {value!r}")
    return per_name


def _check_params(info: MetricInfo, given: dict[str, Any]) -> None:
    """Refuse, before any work, a parameter the metric does not take or that evaluate sets itself."""
    own = metric_parameters(info)
    for key in given:
        if key in RUN_PARAMS:
            raise MethodError(f"{key}= is set for every metric by evaluate itself: give it to evaluate "
                              f"(target=, regions=, batch_size=, seed=, method_options=), not in metric_params")
        if key not in own:
            raise MethodError(f"metric '{info.name}' does not take parameter {key!r}.{close_matches(key, own, n=2)} "
                              f"It takes: {', '.join(own) or 'no parameters'}")


def _run_params(info: MetricInfo, given: dict[str, Any], batch_size: int | str, seed: int,
                progress: bool) -> dict[str, Any]:
    taken = inspect.signature(info.fn).parameters
    common = {"batch_size": batch_size, "seed": seed, "progress": progress}
    return {**{k: v for k, v in common.items() if k in taken}, **given}


def _groups(network: Any, images: Any) -> list[tuple[list[int], Any]]:
    """The photos grouped by size, in order of first appearance: (their positions, their photos stacked); one
    group with positions unknown ([]) for anything explain takes as one batch (an array, one photo, floats)."""
    photos = _photo_list(network, images)
    if photos is None:
        return [([], images)]
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, photo in enumerate(photos):
        by_shape.setdefault(photo.shape, []).append(i)
    return [(positions, np.stack([photos[i] for i in positions])) for positions in by_shape.values()]


def _group_target(target: TargetSpec, positions: list[int], count: int) -> TargetSpec:
    """A group's share of a per-image target list (a list of lists); any other target applies to all."""
    if isinstance(target, list | tuple) and target and all(isinstance(t, list | tuple) for t in target):
        _per_image_targets(target, count)  # one entry per image, or its error
        rows = [list(t) for t in target if isinstance(t, list | tuple)]
        return [rows[i] for i in positions]
    return target


def _group_regions(regions: Any, positions: list[int], names: Sequence[str]) -> Any:
    """A group's regions: from a dict by image name, or one entry per image (a list or an array)."""
    if isinstance(regions, dict):
        missing = [n for n in names if n not in regions]
        if missing:
            raise MethodError(f"regions has no entry for image {missing[0]!r}; it has: {', '.join(map(str, regions))}")
        return [regions[n] for n in names]
    if len(regions) < max(positions) + 1:
        raise MethodError(f"regions needs one entry per image: {max(positions) + 1} or more images, {len(regions)} "
                          "entries")
    if isinstance(regions, np.ndarray):
        return regions[positions]
    return [regions[i] for i in positions]


def _names(names: Sequence[str] | None, images: Any, count: int | None, positions: list[int]) -> list[str]:
    """The names of the images at `positions`: given, the file names of paths, else 'image 0', 'image 1', ..."""
    given = list(names) if names is not None else _image_names(images)
    if given is not None and count is not None and len(given) != count:
        raise MethodError(f"names needs one name per image: {count} images, {len(given)} names")
    return [given[i] if given is not None else f"image {i}" for i in positions]


def _in_order(parts: list[tuple[list[int], np.ndarray]], total: int) -> np.ndarray:
    out = np.empty(total, np.float64)
    for positions, values in parts:
        out[positions] = values
    return out


def _target_label(target: TargetSpec) -> Any:
    return target if isinstance(target, str | int) else repr(target)


def _few(count: int) -> list[str]:
    if count == 1:
        return ["one image: each interval is its score alone; evaluate on more images to see how much it varies"]
    return []


def _note(metric: str, note: str, methods: list[str], evaluated: list[str]) -> str:
    """A metric's note, once, naming the methods it is about unless it is about all of them."""
    about = "" if len(methods) == len(evaluated) else f" of {', '.join(methods)}"
    return f"{metric}{about}: {note}"


def _say(progress: bool, line: str) -> None:
    """An overall progress line on stderr (where the metrics draw their bars), when progress is on and seen."""
    log.info(line)
    if progress and (sys.stderr.isatty() or in_notebook()):
        print(line, file=sys.stderr, flush=True)


def _formatter(values: list[float]) -> Any:
    """Numbers of one column to three significant digits of its largest magnitude (scientific beyond 1e4)."""
    largest = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    if largest >= 1e4 or 0 < largest < 1e-4:
        return lambda v: f"{v:.2e}"
    decimals = 3 if largest == 0 else min(6, max(0, 2 - math.floor(math.log10(largest))))
    return lambda v: f"{v:.{decimals}f}"


def _jsonable_tree(value: Any) -> Any:
    """Parameters as JSON values: dicts and lists walked, arrays by their shape, non-finite numbers as text."""
    if isinstance(value, dict):
        return {str(k): _jsonable_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable_tree(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return _jsonable(value)


__all__ = ["Cell", "Evaluation", "bootstrap_means", "evaluate", "metric_infos", "summarise"]
