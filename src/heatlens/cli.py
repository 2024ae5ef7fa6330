"""The `heatlens` command: explain images, list layers, models and methods.

Every failure a user can cause ends with a one-line error on stderr and exit code 2; anything else is a
bug in heatlens and says so in one line with exit code 1 (HEATLENS_DEBUG=1 shows its traceback).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import samples
from .allocator import tune_allocator
from .api import explain as run_explain
from .classes import class_names, imagenet_wnids, is_imagenet
from .errors import HeatlensError, ImageError, first_line
from .explanation import Explanation, write_manifest
from .image_files import find_images, unique_names
from .images import load_image, output_folder
from .imports import import_object
from .methods import METHODS, inside
from .models import DEFAULT_MODEL, ZOO, Network, load_model, names_keras_model
from .models.base import layer_position
from .models.quiet import preload_tensorflow

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the CLI's own process: keep TensorFlow's start-up chatter out

app = typer.Typer(help="heatlens: see why an image classifier predicted what it did.", no_args_is_help=True,
                  add_completion=False)


@app.callback()
def _start() -> None:
    """heatlens: see why an image classifier predicted what it did."""
    tune_allocator()
out_console = Console()
err_console = Console(stderr=True)

ModelOption = Annotated[
    str, typer.Option("--model", "-m", help="Zoo name, keras:NAME, a .keras/.h5 file, package.module:factory, "
                      "or a .pt2/TorchScript file (with --trust-model-file)")
]
PreprocessOption = Annotated[
    str, typer.Option(help="'auto' (the model's own), 'imagenet', 'efficientnet_lite' or 'none' (inputs as they are)")
]
WeightsOption = Annotated[str | None, typer.Option(help="Weights file for keras:NAME models, or 'random'")]
FrameworkOption = Annotated[str | None, typer.Option(help="Framework of the zoo model: torch (default) or keras")]
ClassesOption = Annotated[str | None, typer.Option(help="For user models: 'imagenet' or a text file, one name a line")]
TrustOption = Annotated[int, typer.Option(
    "--trust-model-file", count=True,
    help="allow model files that run code when loaded (.pt2, TorchScript); twice: also pickled objects inside .pt2",
)]


def _user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """HeatlensError (and running out of memory) -> one `error:` line, exit code 2; any other exception is
    a bug in heatlens -> one line that says so, exit code 1, and its traceback only with HEATLENS_DEBUG=1."""

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HeatlensError as exc:
            _error(str(exc))
            raise typer.Exit(2) from None
        except (typer.Exit, typer.Abort):
            raise
        except MemoryError:
            _error("out of memory: try smaller or fewer images, fewer targets, or a method with fewer samples")
            raise typer.Exit(2) from None
        except Exception as exc:
            if os.environ.get("HEATLENS_DEBUG", "") not in ("", "0"):
                raise
            _error(f"internal error, a bug in heatlens: {type(exc).__name__}: {first_line(exc)} "
                   "(please report it; rerun with HEATLENS_DEBUG=1 to see the traceback)")
            raise typer.Exit(1) from None

    return run


def _error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(_one_line(message))}", highlight=False, soft_wrap=True)


def _warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {escape(_one_line(message))}", highlight=False, soft_wrap=True)


def _one_line(message: object) -> str:
    return " ".join(line.strip() for line in str(message).splitlines() if line.strip())


@app.command()
@_user_errors
def explain(
    images: Annotated[list[Path] | None, typer.Argument(help="Image files, or folders of images, to explain")] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Also explain images in sub-folders")] = False,
    strict: Annotated[bool, typer.Option(help="Stop at the first unreadable image (default: skip it)")] = False,
    sample: Annotated[list[str] | None, typer.Option(help=f"A bundled photo: {', '.join(samples.names())}")] = None,
    model: ModelOption = DEFAULT_MODEL,
    method: Annotated[str, typer.Option(help="See `heatlens methods`")] = "gradcam",
    target: Annotated[str, typer.Option(help="top1, top3, a class id or name, or a comma-separated list")] = "top1",
    layer: Annotated[str | None, typer.Option(
        help="Layer name (see `heatlens layers`) or position as in Keras' model.layers (layers[7].input: what "
             "feeds the 8th top-level layer, layers[-2].output), or several comma-separated (CAM methods fuse "
             "them); default: auto"
    )] = None,
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("heatlens-out"),
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="Heatmap opacity")] = 0.4,
    cmap: Annotated[str, typer.Option(help="matplotlib colormap")] = "jet",
    top: Annotated[int, typer.Option(min=0, help="How many predictions to print per image")] = 5,
    wnid: Annotated[bool, typer.Option("--wnid", help="Show ImageNet classes' WordNet ids (n02123159) in the table, "
                                       "as Keras' decode_predictions prints them")] = False,
    preprocess: PreprocessOption = "auto",
    classes: ClassesOption = None,
    device: Annotated[str, typer.Option(help="Where the model runs: cpu, cuda, cuda:1, ...")] = "cpu",
    weights: WeightsOption = None,
    framework: FrameworkOption = None,
    trust_model_file: TrustOption = 0,
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o", help="Method option KEY=VALUE, e.g. -o steps=64 -o baseline=blurred -o background=a.jpg,b.jpg"
    )] = None,
) -> None:
    """Explain images (files or bundled samples) and write overlays, raw maps and manifest.json.

    An image that cannot be read is skipped with a warning and listed under 'failed' in the manifest
    (with --strict, or when it is the only image, it stops the run)."""
    named = _named_inputs(images or [], sample or [], recursive)
    folder = _output_folder(out)
    network = _network(model, preprocess, classes, device=device, weights=weights, framework=framework,
                       trust=trust_model_file)
    options = _options(option or [])
    targets, layers = _target(target), _layer(layer)
    if wnid and not is_imagenet(network.classes):
        raise HeatlensError(f"--wnid shows the WordNet ids of ImageNet classes, and {network.name} has other "
                            "classes; drop --wnid (or pass --classes imagenet for an ImageNet model)")
    entries: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    header: dict[str, Any] = {}
    try:
        for name, source in named:
            try:
                photo = load_image(source) if isinstance(source, Path) else source
                layers = _resolved(network, layers, photo)
                result = run_explain(network, photo, method=method, target=targets, layer=layers, upsample=False,
                                     **options)  # maps go onto the photo band by band as they are written
            except ImageError as exc:
                where = str(source) if isinstance(source, Path) else f"--sample {name}"
                failed.append({"image": name, "file": where, "error": _one_line(exc)})
                if strict or len(named) == 1:
                    raise
                _warn(f"skipped '{where}': {exc}")
                continue
            _print_predictions(name, result.top(top), result.layer, wnid)
            entries.append(_write_explanation(result, folder, name, source, alpha, cmap))
            header = result.manifest_header(alpha, cmap)
            for record in entries[-1]["targets"]:
                out_console.print(f"  {escape(record['name'])}: overlay written to "
                                  f"[bold]{escape(str(folder / record['overlay']))}[/]")
    finally:  # a run stopped by a bad image still records the images it finished
        if entries:
            with _writing(folder):
                manifest = write_manifest(folder, {**header, "failed": failed}, entries)
            out_console.print(f"manifest: {escape(str(manifest))}")
    if not entries:
        raise HeatlensError(f"none of the {len(named)} images could be explained (see the warnings above); "
                            "nothing was written")
    if failed:
        _warn(f"{len(failed)} of {len(named)} images were skipped; manifest.json lists them under 'failed'")


def _named_inputs(images: list[Path], sample_names: list[str], recursive: bool) -> list[tuple[str, Any]]:
    """(output name, file path or sample photo) per input; names are unique, so no outputs overwrite others."""
    found = find_images(images, recursive)
    for path, count in found.skipped_folders.items():
        err_console.print(f"note: left out {count} sub-folder(s) of '{escape(str(path))}'; add --recursive "
                          "to explain the images in them", highlight=False, soft_wrap=True)
    named: list[tuple[str, Any]] = list(found.files)
    named += [(name, samples.load(name)) for name in sample_names]
    if not named:
        raise HeatlensError("no images given: pass image files, a folder of images, or --sample cat")
    names = unique_names([name for name, _ in named])
    return [(name, source) for name, (_, source) in zip(names, named, strict=True)]


def _write_explanation(result: Explanation, folder: Path, name: str, source: Any, alpha: float,
                       cmap: str) -> dict[str, Any]:
    """One image's overlays and maps (in a sub-folder where its name has one); its manifest entry."""
    with _writing(folder):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (entry,) = result.write_images(folder, alpha=alpha, cmap=cmap, stems=[name], photo_maps=True)
    return {"image": name, "file": str(source), **entry} if isinstance(source, Path) else entry


def _output_folder(out: Path) -> Path:
    """The output folder, created if missing and checked for writing before any work starts."""
    folder = output_folder(out)
    try:
        handle, probe = tempfile.mkstemp(prefix=".heatlens-probe-", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise HeatlensError(f"cannot write into the output folder '{out}': {exc.strerror or exc}; "
                            "choose another --out") from None
    return folder


@contextmanager
def _writing(folder: Path) -> Iterator[None]:
    """Failures to write results (disk full, a folder where a file should go) as one-line errors."""
    try:
        yield
    except OSError as exc:
        where = f" ('{exc.filename}')" if exc.filename else ""
        raise HeatlensError(f"cannot write results into '{folder}': {exc.strerror or exc}{where}; "
                            "free some space or choose another --out") from None


@app.command()
@_user_errors
def activations(
    image: Annotated[Path | None, typer.Argument(help="Image file")] = None,
    sample: Annotated[str | None, typer.Option(help="A bundled photo instead of a file")] = None,
    layer: Annotated[list[str] | None, typer.Option(help="Layer(s); default: every spatial layer")] = None,
    model: ModelOption = DEFAULT_MODEL,
    strongest_first: Annotated[bool, typer.Option(help="Order channels by mean activation")] = False,
    max_channels: Annotated[int, typer.Option(min=1)] = 64,
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("heatlens-activations"),
    trust_model_file: TrustOption = 0,
) -> None:
    """Write each layer's channels for one image as a grid (PNG per layer, a summary and manifest.json)."""
    photo = _one_image(image, sample)
    folder = _output_folder(out)
    network = _network(model, "auto", None, trust=trust_model_file)
    result = inside.activations(network, photo, layers=_resolved(network, layer, photo),
                                strongest_first=strongest_first, max_channels=max_channels)
    with _writing(folder):
        manifest = result.save(folder)
    out_console.print(f"activations of {len(result.pictures) - 1} layers: {escape(str(manifest))}")


@app.command()
@_user_errors
def filters(
    layer: Annotated[str, typer.Option(help="Layer whose channels to visualise")],
    channels: Annotated[str, typer.Option(help="Channels: 0-15 or 1,5,9")] = "0-15",
    model: ModelOption = DEFAULT_MODEL,
    steps: Annotated[int, typer.Option(min=1)] = 128,
    size: Annotated[int | None, typer.Option(help="Input side in pixels; default: the model's")] = None,
    seed: int = 0,
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("heatlens-filters"),
    trust_model_file: TrustOption = 0,
) -> None:
    """Grow an input from noise that maximises each channel (one tile per channel, a summary, manifest.json)."""
    channel_list = _channel_list(channels)
    folder = _output_folder(out)
    network = _network(model, "auto", None, trust=trust_model_file)
    shape = (size, size, 3) if size else None
    result = inside.filters(network, _resolved(network, layer, shape=shape), channels=channel_list, steps=steps,
                            size=size, seed=seed)
    for name, start, end in zip(result.pictures, result.details["start_activation"],
                                result.details["end_activation"], strict=False):
        out_console.print(f"  {escape(name)}: mean activation {start:.3g} -> {end:.3g}")
    with _writing(folder):
        manifest = result.save(folder)
    out_console.print(f"filters written: {escape(str(manifest))}")


@app.command()
@_user_errors
def deconv(
    image: Annotated[Path | None, typer.Argument(help="Image file")] = None,
    layer: Annotated[str, typer.Option(help="Layer whose strongest units to project")] = "",
    sample: Annotated[str | None, typer.Option(help="A bundled photo instead of a file")] = None,
    model: ModelOption = DEFAULT_MODEL,
    top_k: Annotated[int, typer.Option(min=1, help="How many channels (the strongest)")] = 9,
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("heatlens-deconv"),
    trust_model_file: TrustOption = 0,
) -> None:
    """Project the strongest activations of a layer back to pixels with deconvnet rules."""
    if not layer:
        raise HeatlensError("--layer is required: see `heatlens layers` for names")
    photo = _one_image(image, sample)
    folder = _output_folder(out)
    network = _network(model, "auto", None, trust=trust_model_file)
    result = inside.deconv(network, photo, _resolved(network, layer, photo), top_k=top_k)
    with _writing(folder):
        manifest = result.save(folder)
    out_console.print(f"deconvnet projections of channels {result.details['channels']}: {escape(str(manifest))}")


def _one_image(image: Path | None, sample: str | None) -> np.ndarray:
    if (image is None) == (sample is None):
        raise HeatlensError("give one image: a file, or --sample cat")
    return load_image(image) if image is not None else samples.load(sample)


def _channel_list(text: str) -> list[int]:
    try:
        if "-" in text:
            low, high = (int(v) for v in text.split("-", 1))
            return list(range(low, high + 1))
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise HeatlensError(f"--channels expects 0-15 or 1,5,9. Received: {text!r}") from None


@app.command()
@_user_errors
def layers(
    model: ModelOption = DEFAULT_MODEL,
    input_size: Annotated[int | None, typer.Option(help="Square input size for user models without one")] = None,
    preprocess: PreprocessOption = "auto",
    weights: WeightsOption = None,
    framework: FrameworkOption = None,
    trust_model_file: TrustOption = 0,
) -> None:
    """List a model's layers with output shapes (channels-last); the default CAM layer is marked."""
    network = _network(model, preprocess, None, input_size, weights=weights, framework=framework,
                       trust=trust_model_file)
    default = network.default_layer()
    table = Table(title=escape(f"{network.name}: layers"))
    for col in ("layer", "kind", "output (h, w, C)", "default"):
        table.add_column(col)
    for info in network.layers():
        shape = "x".join(map(str, info.output_shape)) if info.output_shape else "-"
        table.add_row(escape(info.name), escape(info.kind), shape, "<- default" if info.name == default else "")
    out_console.print(table)


@app.command()
@_user_errors
def models() -> None:
    """List the offline models (weights come from pip packages; nothing is downloaded)."""
    table = Table(title="offline models (--framework torch or keras)")
    for col in ("name", "description", "weights package"):
        table.add_column(col)
    for entry in ZOO.values():
        table.add_row(entry.name, entry.description, entry.weights_package)
    table.add_row("keras:NAME", "any keras.applications class, e.g. keras:Xception", "--weights FILE or ~/.keras")
    out_console.print(table)


@app.command()
@_user_errors
def methods() -> None:
    """List the explanation methods."""
    table = Table(title="methods")
    for col in ("name", "what it computes", "gradients", "layer", "paper"):
        table.add_column(col)
    for info in METHODS.values():
        table.add_row(info.name, info.summary, _yes(info.needs_gradients), _yes(info.uses_layer), info.paper)
    out_console.print(table)


def _network(model: str, preprocess: str, classes: str | None, input_size: int | None = None,
             device: str = "cpu", weights: str | None = None, framework: str | None = None,
             trust: int = 0) -> Network:
    """The model the options name; options that do not apply to it are refused by load_model.
    trust: how often --trust-model-file was given (1: files that run code, 2: also pickles in .pt2)."""
    if framework == "keras" or names_keras_model(model):
        preload_tensorflow()
    options: dict[str, Any] = {"device": device, "framework": framework}
    if preprocess != "auto":
        options["preprocess"] = None if preprocess == "none" else preprocess
    if classes is not None:
        options["classes"] = class_names(classes)
    if weights is not None:
        options["weights"] = weights
    if input_size:
        options["input_size"] = (input_size, input_size)
    if trust:
        options["trust"] = True if trust == 1 else "pickle"
    return load_model(model, **options)


def _layer(text: str | None) -> str | list[str] | None:
    """One layer name, or a list for comma-separated names."""
    if text is None or "," not in text:
        return text
    return [name.strip() for name in text.split(",") if name.strip()]


def _resolved(network: Network, layer: Any, photo: np.ndarray | None = None,
              shape: tuple[int, ...] | None = None) -> Any:
    """Layer positions ('layers[7].input') replaced by the names they resolve to, each said once on stderr;
    `photo` or `shape` gives the input size for models that have none of their own."""
    wanted = [layer] if isinstance(layer, str) else list(layer or [])
    if not any(layer_position(name) is not None for name in wanted):
        return layer
    if shape is None and photo is not None:
        shape = network.prepare(photo[None]).shape[1:]
    resolved = network.resolve_layer(layer, shape)
    for given, name in zip(wanted, [resolved] if isinstance(resolved, str) else resolved, strict=True):
        if given != name:
            err_console.print(f"note: layer {escape(given)} is '{escape(name)}'", highlight=False, soft_wrap=True)
    return resolved


def _target(text: str) -> str | int | list[str | int]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise HeatlensError("--target is empty: give top1, top3, a class id or name, or a comma-separated list")
    parsed: list[str | int] = [int(i) if re.fullmatch(r"-?[0-9]+", i) else i for i in items]
    return parsed[0] if len(parsed) == 1 else parsed


def _options(pairs: list[str]) -> dict[str, Any]:
    """KEY=VALUE method options: numbers and true/false become values; 'background' is a list of files."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise HeatlensError(f"--option expects KEY=VALUE. Received: {pair!r}")
        key = key.strip()
        if key in {"layer", "target", "method", "model"}:
            raise HeatlensError(f"use --{key} rather than --option {key}=...")
        if key == "background":
            options[key] = [load_image(Path(p.strip())) for p in text.split(",") if p.strip()]
        elif key == "score" and ":" in text:
            options[key] = _score_function(text.strip())
        else:
            options[key] = _value(text.strip())
    return options


def _score_function(spec: str) -> Any:
    """-o score=package.module:function: a custom score function of the model's raw output."""
    function = import_object(spec)
    if not callable(function):
        raise HeatlensError(f"-o score={spec} names a {type(function).__name__}, not a function")
    return function


def _value(text: str) -> Any:
    if text.lower() in {"true", "false"}:
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _print_predictions(stem: str, top: list[list[tuple[int, str, float]]], layer: str | None,
                       wnid: bool = False) -> None:
    """The top predictions of one image; with `wnid`, a column of WordNet ids (ImageNet classes)."""
    if not top or not top[0]:
        return
    table = Table(title=escape(f"{stem}: top predictions" + (f" (layer {layer})" if layer else "")))
    for col in ("rank", "class", "id", *(["wnid"] if wnid else []), "probability"):
        table.add_column(col)
    for rank, (cid, name, prob) in enumerate(top[0], start=1):
        table.add_row(str(rank), escape(name), str(cid), *([imagenet_wnids()[cid]] if wnid else []), f"{prob:.3f}")
    out_console.print(table)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
