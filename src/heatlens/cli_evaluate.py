"""The `heatlens evaluate` command: score methods' maps with metrics on images, print the table (method x metric:
mean [95% bootstrap interval], the winner of each column marked) and write evaluation.csv, evaluation-images.csv,
evaluation.json and the curves as PNG plots."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from .cli import (
    ClassesOption,
    DeviceOption,
    FitOption,
    FrameworkOption,
    ModelOption,
    PreprocessOption,
    RecursiveOption,
    SamplesOption,
    TrustOption,
    WeightsOption,
    _absolute,
    _methods,
    _named_inputs,
    _network,
    _one_line,
    _option_values,
    _options,
    _output_folder,
    _target,
    _user_errors,
    _versions,
    _warn,
    _writing,
    err_console,
    out_console,
)
from .errors import HeatlensError, ImageError, MethodError, close_matches
from .evaluate import Evaluation, metric_infos, metric_parameters
from .evaluate import evaluate as run_evaluate
from .evaluate_plots import save_plots
from .images import load_image
from .metrics import MetricInfo, get_metric
from .models import DEFAULT_MODEL
from .preprocess import FITS


@_user_errors
def evaluate(
    images: Annotated[list[Path] | None, typer.Argument(help="Image files, or folders of images")] = None,
    recursive: RecursiveOption = False,
    sample: SamplesOption = None,
    method: Annotated[str, typer.Option(help="Methods to compare, comma-separated (see `heatlens methods`)")] = (
        "gradcam"),
    metric: Annotated[str, typer.Option(
        help="Metrics, comma-separated: deletion, insertion and the others of heatlens.metrics.METRICS")] = (
        "deletion,insertion"),
    boxes: Annotated[Path | None, typer.Option(
        help="CSV of the objects' boxes (image,x_min,y_min,x_max,y_max) for localisation metrics")] = None,
    target: Annotated[str, typer.Option(help="top1, top3, a class id or name, or a comma-separated list")] = "top1",
    model: ModelOption = DEFAULT_MODEL,
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("heatlens-evaluation"),
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o", help="Method option KEY=VALUE for the methods that take it, e.g. -o num_samples=500")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-p", help="Metric parameter KEY=VALUE for the metrics that take it (-p steps=50), or "
                              "METRIC.KEY=VALUE for one (-p deletion.baseline=blur)")] = None,
    batch_size: Annotated[str, typer.Option(help="Inputs per forward pass: a number or auto (timed)")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap and of metrics that draw at random")] = 0,
    fit: FitOption = "crop",
    preprocess: PreprocessOption = "auto",
    classes: ClassesOption = None,
    device: DeviceOption = "cpu",
    weights: WeightsOption = None,
    framework: FrameworkOption = None,
    trust_model_file: TrustOption = 0,
) -> None:
    """Score methods' maps with metrics: a table of method x metric (mean over images [95% bootstrap interval],
    the best of each column marked), evaluation.csv, evaluation-images.csv, evaluation.json and curve plots.

    Everything that can be checked without the model (methods, metrics and their parameters, boxes, output
    folder, images) is checked before it loads. An unreadable image is skipped with a warning."""
    chosen = _methods(method)
    if fit not in FITS:
        raise HeatlensError(f"--fit takes {', '.join(FITS)}. Received: {fit!r}{close_matches(fit, FITS)}")
    infos = _metrics(metric)
    params = _metric_params(param or [], infos)
    metric_infos([i.name for i in infos], params, boxes is not None)
    options = {m: o for m, o in _options(option or [], chosen).items() if o}
    targets = _target(target)
    size = _batch_size(batch_size)
    named = _named_inputs(images or [], sample or [], recursive)
    table = _read_boxes(boxes) if boxes is not None else None
    folder = _output_folder(out)
    photos, names, failed = _photos(named)
    regions = _boxes_for(table, names) if table is not None else None
    network = _network(model, preprocess, classes, device=device, weights=weights, framework=framework,
                       trust=trust_model_file, fit=fit)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluation = run_evaluate(network, photos, methods=chosen, metrics=[i.name for i in infos],
                                  target=targets, regions=regions, metric_params=params, method_options=options,
                                  batch_size=size, seed=seed, names=names)
    for message in dict.fromkeys(str(w.message) for w in caught):
        if not any(message in note for note in evaluation.notes):  # the notes say it already
            _warn(message)
    print_table(evaluation)
    sources = {name: _absolute(source) if isinstance(source, Path) else f"sample:{name}" for name, source in named}
    header = {"command": "evaluate", "versions": _versions(), "fit": fit, "boxes": _absolute(boxes) if boxes else None,
              "sources": {name: sources[name] for name in names}, "failed": failed}
    with _writing(folder):
        written = [evaluation.to_csv(folder / "evaluation.csv"),
                   evaluation.to_csv(folder / "evaluation-images.csv", per_image=True),
                   evaluation.to_json(folder / "evaluation.json", header), *save_plots(evaluation, folder)]
    for path in written:
        out_console.print(f"written: {escape(str(path))}", highlight=False)
    if failed:
        _warn(f"{len(failed)} of {len(named)} images were skipped; evaluation.json lists them under 'failed'")


def print_table(evaluation: Evaluation) -> None:
    """The table on stdout: a row per method, a column per metric ('mean' over '[low, high]'), the best of each
    column in bold with '*' ('=' where methods tie), and the notes the metrics made on stderr."""
    head, *body = evaluation.table_text(two_lines=True)
    table = Table(title=escape(evaluation.caption()))
    for name in head:
        table.add_column(escape(name))
    for method, row in zip(evaluation.methods, body, strict=True):
        best = [False, *(evaluation.is_best(method, k) for k in evaluation.metrics)]
        table.add_row(*(f"[bold green]{escape(t)}[/]" if b else escape(t) for t, b in zip(row, best, strict=True)))
    out_console.print(table)
    for note in evaluation.notes:
        err_console.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)


def _metrics(text: str) -> list[MetricInfo]:
    """The metrics of --metric (comma-separated), checked, each once."""
    names = [item.strip() for item in text.split(",") if item.strip()]
    if not names:
        raise MethodError("--metric is empty: give a metric name (deletion, insertion, ...), or several "
                          "comma-separated")
    if len(set(names)) != len(names):
        raise MethodError(f"--metric names a metric twice: {text}; give each once")
    return [get_metric(name) for name in names]


def _metric_params(pairs: list[str], infos: list[MetricInfo]) -> dict[str, dict[str, Any]]:
    """-p KEY=VALUE to every metric that takes KEY, -p METRIC.KEY=VALUE to that metric; a KEY no metric takes
    is refused with the close names."""
    taken = {info.name: metric_parameters(info) for info in infos}
    params: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, sep, _ = pair.partition("=")
        name, dot, own = key.strip().rpartition(".")
        if not sep or not own:
            raise HeatlensError(f"--param expects KEY=VALUE or METRIC.KEY=VALUE. Received: {pair!r}")
        value = _option_values([f"{own}={pair.partition('=')[2]}"])[own]
        if dot and name not in taken:
            raise MethodError(f"--param names a metric that is not evaluated: {key}=... (--metric "
                              f"{','.join(taken)}).{close_matches(name, taken)}")
        aimed = [name] if dot else [m for m, keys in taken.items() if own in keys]
        if not aimed:
            known = sorted({k for keys in taken.values() for k in keys})
            raise MethodError(f"--param {own}=... is not a parameter of {' or '.join(taken)}."
                              f"{close_matches(own, known)} See docs/metrics.md for each metric's parameters")
        for target in aimed:
            params.setdefault(target, {})[own] = value
    return params


def _batch_size(text: str) -> int | str:
    if text == "auto":
        return text
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise HeatlensError(f"--batch-size takes a positive number or auto. Received: {text!r}")


def _read_boxes(path: Path) -> dict[str, Any]:
    """The boxes CSV (image,x_min,y_min,x_max,y_max): image name -> its boxes in photo pixels."""
    from .metrics.regions import read_boxes

    return read_boxes(path)


def _boxes_for(table: dict[str, Any], names: list[str]) -> list[Any]:
    """Each image's boxes, found by its name or its file name."""
    from .metrics.regions import boxes_for

    return boxes_for(table, names)


def _photos(named: list[tuple[str, Any]]) -> tuple[list[Any], list[str], list[dict[str, str]]]:
    """The photos that could be read with their names, and the ones that could not (skipped with a warning; the
    run stops where none is left)."""
    photos, names, failed = [], [], []
    for name, source in named:
        try:
            photos.append(load_image(source) if isinstance(source, Path) else source)
            names.append(name)
        except ImageError as exc:
            if len(named) == 1:
                raise
            failed.append({"image": name, "file": _absolute(source), "error": _one_line(exc)})
            _warn(f"skipped '{source}': {exc}")
    if not photos:
        raise HeatlensError(f"none of the {len(named)} images could be read (see the warnings above); nothing was "
                            "evaluated")
    return photos, names, failed
