"""`heatlens run`: a whole dataset (a folder, a glob, a CSV/Parquet manifest) explained into resumable Parquet
shards by heatlens.run, on this machine or on a Ray cluster (--engine ray)."""

from __future__ import annotations

import functools
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
    TrustOption,
    WeightsOption,
    _check_cmap,
    _layer,
    _methods,
    _network,
    _options,
    _target,
    _user_errors,
    _warn,
    app,
    err_console,
    out_console,
)
from .cli_report import MetricOptionsOption, MetricsOption, _metric_list, _metric_options
from .errors import HeatlensError, close_matches
from .models import DEFAULT_MODEL, Network
from .preprocess import FITS
from .run import Plan, run
from .run.pipeline import ENGINES, ERRORS_FILE, MANIFEST


def model_label(model: str, changed: dict[str, Any]) -> str:
    """The model as a run's record names it: its name, plus the loading choices that differ from the defaults."""
    return f"{model} ({', '.join(f'{k} {v}' for k, v in changed.items())})" if changed else model


@app.command(name="run")
@_user_errors
def run_command(
    source: Annotated[str, typer.Argument(help="A folder of images (sub-folders included), a glob pattern ('data/*"
                                               "*/*.jpg', quoted) or a CSV/Parquet manifest with a path column")],
    out: Annotated[Path, typer.Option(help="The run's folder: shards/*.parquet, items.parquet, errors.csv, "
                                           "run.json")] = Path("heatlens-run"),
    method: Annotated[str, typer.Option(help="Methods, comma-separated (gradcam,scorecam): one map column "
                                             "each; see `heatlens methods`")] = "gradcam",
    target: Annotated[str, typer.Option(help="top1, top3, a class id or name, a comma-separated list, or 'label' "
                                             "(each image's label from the manifest)")] = "top1",
    metric: MetricsOption = None,
    metric_option: MetricOptionsOption = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out where it stopped (same "
                                                          "settings); finished shards are not redone")] = False,
    engine: Annotated[str, typer.Option(help="local (this machine) or ray (Ray Data model actors; extra "
                                             "'scale')")] = "local",
    address: Annotated[str | None, typer.Option(help="--engine ray: the address of an existing Ray cluster "
                                                     "(default: a local one)")] = None,
    actors: Annotated[int | None, typer.Option(min=1, help="--engine ray: model actors (default: one per GPU, "
                                                           "else CPUs - 1)")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per model batch")] = 32,
    shard_size: Annotated[int, typer.Option(min=1, help="Images per Parquet shard (the unit of resuming)")] = 1024,
    threads: Annotated[int | None, typer.Option(min=1, help="Decoder threads (default: half the cores)")] = None,
    overlays: Annotated[bool, typer.Option("--overlays", help="Also write an overlay JPEG per image and target "
                                                              "(overlays/METHOD/)")] = False,
    top: Annotated[int, typer.Option(min=1, help="Predictions kept per image")] = 5,
    layer: LayersOption = None,
    path_column: Annotated[str, typer.Option(help="The manifest's column of image paths")] = "path",
    label_column: Annotated[str, typer.Option(help="The manifest's column of labels (class ids or names)")] = "label",
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="--overlays: heatmap opacity")] = 0.4,
    cmap: Annotated[str, typer.Option(help="--overlays: matplotlib colormap")] = "jet",
    fit: FitOption = "crop",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines")] = False,
    model: ModelOption = DEFAULT_MODEL,
    preprocess: PreprocessOption = "auto",
    classes: ClassesOption = None,
    device: DeviceOption = "cpu",
    precise: Annotated[bool, typer.Option("--precise/--fast", help=(
        "Torch on CUDA: full float32 (TF32 off, maps as the CPU's; the default) or TF32 allowed (faster, "
        "gradients off by up to ~10% of their peak)"))] = True,
    weights: WeightsOption = None,
    framework: FrameworkOption = None,
    trust_model_file: TrustOption = 0,
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o", help="Method option KEY=VALUE (`heatlens methods NAME` lists a method's options)")] = None,
) -> None:
    """Explain every image of a dataset into Parquet shards (per image: predictions, targets, maps as float16 at
    the layer's grid with the crop box, optional overlays and metric scores), with progress, rate and time left.

    Images that cannot be read are listed in errors.csv with the reason; the run goes on. An interrupted run (Ctrl-C,
    a crash, a killed process) continues with the same command and --resume, redoing no finished shard."""
    chosen = _methods(method)
    _check_cmap(cmap)
    if fit not in FITS:
        raise HeatlensError(f"--fit takes {', '.join(FITS)}. Received: {fit!r}{close_matches(fit, FITS)}")
    if engine not in ENGINES:
        raise HeatlensError(f"--engine takes {' or '.join(ENGINES)}. Received: {engine!r}")
    if address is not None and engine != "ray":
        raise HeatlensError("--address is the Ray cluster's: add --engine ray, or drop --address")
    measured = _metric_list(metric)
    plan = Plan(tuple(chosen), "label" if target.strip() == "label" else _target(target), _layer(layer),
                _options(option or [], chosen), tuple(measured), _metric_options(metric_option or [], measured),
                top, overlays, alpha, cmap)
    load: dict[str, Any] = {"device": device, "weights": weights, "framework": framework, "trust": trust_model_file,
                            "fit": fit}
    network = _precision_network(precise, model, preprocess, classes, **load)
    _say_precision(network, precise, quiet)
    chosen_load = {"preprocess": preprocess, "classes": classes, "weights": weights, "fit": fit}
    defaults = inspect.signature(run_command).parameters
    label = model_label(model, {k: v for k, v in chosen_load.items() if v != defaults[k].default})
    try:
        summary = run(network, source, out, plan, batch_size=batch_size, shard_size=shard_size, resume=resume,
                      threads=threads, engine=engine, address=address, actors=actors,
                      model_factory=functools.partial(_precision_network, precise, model, preprocess, classes, **load),
                      model_label=label, path_column=path_column, label_column=label_column, progress=not quiet)
    except KeyboardInterrupt:
        err_console.print(f"interrupted: the finished shards are kept in '{escape(str(out))}'; run the same command "
                          "with --resume to continue", highlight=False)
        raise typer.Exit(130) from None
    out_console.print(summary.line(), highlight=False)
    if summary.errors:
        _warn(f"{summary.errors} image(s) could not be explained; {out / ERRORS_FILE} lists them with the reason")
    out_console.print(f"run written to [bold]{escape(str(out))}[/] ({MANIFEST}, shards/); open it with "
                      f"`heatlens report {escape(str(out))}`", highlight=False)


def _precision_network(precise: bool, *args: Any, **load: Any) -> Network:
    """The model the options name (cli._network), with the torch adapter's `precise` switch set as asked."""
    network = _network(*args, **load)
    if not precise and not hasattr(network, "precise"):
        raise HeatlensError(f"--fast allows TF32 on CUDA for torch models; {network.name} is no torch model: "
                            "drop --fast")
    if hasattr(network, "precise"):
        network.precise = precise
    return network


def _say_precision(network: Network, precise: bool, quiet: bool) -> None:
    """On a GPU, one line saying which precision the run uses and that its CAM and gradient work stays there."""
    device = getattr(network, "device", None)
    if quiet or getattr(device, "type", None) != "cuda":
        return
    chosen = ("precise: float32, TF32 off (--fast allows it)" if precise
              else "fast: TF32 allowed (--precise turns it off)")
    err_console.print(f"on {device}, {chosen}; activations and gradients stay on the GPU, only the maps come back",
                      highlight=False)
