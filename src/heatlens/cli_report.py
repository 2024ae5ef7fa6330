"""`heatlens report`: photos (files, folders, bundled samples) -> one self-contained HTML report (heatlens.report),
with the model, preprocessing, class, layer and fit options `heatlens explain` has."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from .cli import (
    ClassesOption,
    DeviceOption,
    FitOption,
    FrameworkOption,
    LayersOption,
    ModelOption,
    PreprocessOption,
    RecursiveOption,
    SamplesOption,
    TrustOption,
    WeightsOption,
    _check_cmap,
    _layer,
    _methods,
    _named_inputs,
    _network,
    _option_values,
    _options,
    _resolved,
    _target,
    _user_errors,
    _warn,
    out_console,
)
from .errors import HeatlensError, MethodError, close_matches
from .images import load_image
from .models import DEFAULT_MODEL
from .models.base import layer_position
from .preprocess import FITS
from .report import report as write_report
from .run.report import report_run
from .run.summary import is_run

MetricsOption = Annotated[str | None, typer.Option(
    help="Metrics scored per map, comma-separated (e.g. deletion,insertion; see heatlens.metrics.METRICS)")]
MetricOptionsOption = Annotated[list[str] | None, typer.Option(
    "--metric-option", help="Metric parameter KEY=VALUE, given to each chosen metric that takes it "
                            "(e.g. --metric-option steps=20)")]


@_user_errors
def report(
    images: Annotated[list[Path] | None, typer.Argument(help="Image files, or folders of images, to report on")] = None,
    recursive: RecursiveOption = False,
    sample: SamplesOption = None,
    model: ModelOption = DEFAULT_MODEL,
    method: Annotated[str, typer.Option(help="Methods, comma-separated (gradcam,scorecam,lime): one grid row "
                                             "each; see `heatlens methods`")] = "gradcam",
    target: Annotated[str, typer.Option(help="top1, top3, a class id or name, or a comma-separated list: one "
                                             "grid column each")] = "top3",
    metric: MetricsOption = None,
    metric_option: MetricOptionsOption = None,
    layer: LayersOption = None,
    out: Annotated[Path, typer.Option(help="The report's HTML file")] = Path("report.html"),
    title: Annotated[str | None, typer.Option(help="The report's title; default: 'heatlens report: MODEL'")] = None,
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="Heatmap opacity")] = 0.4,
    cmap: Annotated[str | None, typer.Option(
        help="matplotlib colormap; default: jet for maps >= 0 (the CAM family), a diverging map for signed ones")
    ] = None,
    fit: FitOption = "crop",
    top: Annotated[int, typer.Option(min=0, help="How many predictions to list per photo")] = 5,
    thumb_size: Annotated[int, typer.Option(min=32, help="Thumbnails' long side in pixels")] = 320,
    full_size: Annotated[int, typer.Option(min=64, help="Full-size pictures' long side in pixels (on click)")] = 720,
    image_format: Annotated[str, typer.Option("--format", help="Picture encoding: webp or jpeg")] = "webp",
    quality: Annotated[int, typer.Option(min=1, max=100, help="WebP/JPEG quality")] = 80,
    page_size: Annotated[int, typer.Option(min=1, help="Photos per page of the report")] = 20,
    preprocess: PreprocessOption = "auto",
    classes: ClassesOption = None,
    device: DeviceOption = "cpu",
    weights: WeightsOption = None,
    framework: FrameworkOption = None,
    trust_model_file: TrustOption = 0,
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o", help="Method option KEY=VALUE, e.g. -o num_samples=500 (`heatlens methods NAME` lists "
                               "a method's options)")] = None,
) -> None:
    """Write one self-contained HTML report: per photo its top predictions and a grid of labelled overlays
    (methods x target classes), metric scores when asked, and every setting in its header.

    Everything that can be checked without the model is checked before it loads. An image that cannot be
    read is left out with a warning and listed in the report. The --out folder of a `heatlens run` gives the run's
    report instead: per predicted class its mean map, accuracy on labelled images and map concentration."""
    if images and len(images) == 1 and is_run(images[0]):
        written = report_run(images[0], out, title)
        out_console.print(f"report of the run in {escape(str(images[0]))} written to [bold]{escape(str(written))}[/]",
                          highlight=False)
        return
    chosen = _methods(method)
    _check_cmap(cmap)
    if fit not in FITS:
        raise HeatlensError(f"--fit takes {', '.join(FITS)}. Received: {fit!r}{close_matches(fit, FITS)}")
    if image_format not in ("webp", "jpeg"):
        raise HeatlensError(f"--format takes webp or jpeg. Received: {image_format!r}")
    options = _options(option or [], chosen)
    measured = _metric_list(metric)
    metric_options = _metric_options(metric_option or [], measured)
    targets, layers = _target(target), _layer(layer)
    named = dict(_named_inputs(images or [], sample or [], recursive))
    if out.is_dir():
        raise HeatlensError(f"--out '{out}' is a folder: give the report's file name, e.g. {out / 'report.html'}")
    skipped: list[str] = []

    def skip(name: str, reason: str) -> None:
        _warn(f"skipped '{name}': {reason}")
        skipped.append(name)

    network = _network(model, preprocess, classes, device=device, weights=weights, framework=framework,
                       trust=trust_model_file, fit=fit)
    if _has_position(layers):
        layers = _resolved(network, layers, load_image(next(iter(named.values()))))
    path = write_report(network, named, methods=chosen, target=targets, metrics=measured, out=out, layer=layers,
                        options=options, metric_options=metric_options, alpha=alpha, cmap=cmap, top=top,
                        thumb_size=thumb_size, full_size=full_size, image_format=image_format, quality=quality,
                        page_size=page_size, title=title, on_skip=skip)
    left_out = f", {len(skipped)} left out (listed in the report)" if skipped else ""
    out_console.print(f"report of {len(named) - len(skipped)} photo(s) written to [bold]{escape(str(path))}[/] "
                      f"({path.stat().st_size / 1e6:.1f} MB{left_out})", highlight=False)


def _has_position(layers: Any) -> bool:
    """Whether --layer names a layer by position (layers[7].input), which needs a photo's size to resolve."""
    return any(layer_position(name) is not None for name in ([layers] if isinstance(layers, str) else layers or []))


def _metric_list(text: str | None) -> list[str]:
    """The --metric names, checked against heatlens.metrics before the model loads."""
    if text is None:
        return []
    from .metrics import get_metric

    names = [get_metric(item.strip()).name for item in text.split(",") if item.strip()]
    if not names:
        raise MethodError("--metric is empty: give a metric name (see heatlens.metrics.METRICS), or several "
                          "comma-separated")
    return list(dict.fromkeys(names))


def _metric_options(pairs: list[str], measured: list[str]) -> dict[str, dict[str, Any]]:
    """--metric-option KEY=VALUE per chosen metric that takes KEY; a KEY none of them takes is refused."""
    if not pairs:
        return {}
    if not measured:
        raise MethodError("--metric-option needs --metric: name the metrics it is for")
    from .metrics import get_metric

    taken = {m: set(inspect.signature(get_metric(m).fn).parameters) - {"model", "images", "explanation"}
             for m in measured}
    parsed = _option_values(pairs)
    for key in parsed:
        if not any(key in names for names in taken.values()):
            known = sorted(set().union(*taken.values()))
            raise MethodError(f"--metric-option {key}=... is not a parameter of {' or '.join(measured)}."
                              f"{close_matches(key, known)} They take: {', '.join(known)}")
    chosen = {m: {k: v for k, v in parsed.items() if k in taken[m]} for m in measured}
    for m, values in chosen.items():
        if not values:
            _warn(f"no --metric-option applies to {m}; it runs with its defaults")
    return {m: values for m, values in chosen.items() if values}
