"""The `heatlens` command: explain images, list layers, models and methods.

Every failure a user can cause ends with a one-line error on stderr and exit code 2; anything else is a
bug in heatlens and says so in one line with exit code 1 (HEATLENS_DEBUG=1 shows its traceback).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import pictures, samples
from .allocator import tune_allocator
from .api import explain as run_explain
from .classes import class_names, imagenet_wnids, is_imagenet
from .cli_help import FLAGS, formula, option_names, options_help
from .cli_tasks import TaskRequest, check_mask_size, check_task_model, score_rows, task_request, task_score
from .compare import compare
from .errors import HeatlensError, ImageError, MethodError, close_matches, first_line
from .explanation import MANIFEST_SCHEMA, Explanation, write_manifest
from .image_files import find_images, unique_names
from .images import load_image, output_folder
from .methods import METHODS, MethodInfo, get_method
from .models import DEFAULT_MODEL, ZOO, Network, load_model, names_keras_model
from .models.base import layer_position
from .models.loading.quiet import preload_tensorflow
from .models.zoo import installed_framework
from .preprocess import FITS
from .user_imports import import_user_object
from .version import __version__

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the CLI's own process: keep TensorFlow's start-up chatter out

# Plain (click) help: it wraps whole option texts at any width, where rich panels cut them off at 80 columns.
app = typer.Typer(help="heatlens: see why an image classifier predicted what it did.", no_args_is_help=True,
                  add_completion=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]})
FRAMEWORK_PACKAGES = {"torch": ("torch",), "keras": ("keras",), "tensorflow": ("tensorflow", "tensorflow-cpu")}


def _print_version(value: bool) -> None:
    if value:
        print(f"heatlens {__version__}")
        raise typer.Exit()


@app.callback()
def _start(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print heatlens' version and exit")] = False,
) -> None:
    """heatlens: see why an image classifier predicted what it did."""
    tune_allocator()


# Lines that hold file paths are printed unwrapped (soft_wrap), so piped output keeps one path per line and
# terminals fold them as they like; tables keep their columns' names whole (no_wrap).
out_console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

ModelOption = Annotated[
    str, typer.Option("--model", "-m", help="Zoo name, keras:NAME, torchvision:NAME, timm:NAME, hf:FOLDER, an "
                      ".onnx/.keras/.h5 file, package.module:factory, or a .pt2/TorchScript file "
                      "(with --trust-model-file)")
]
PreprocessOption = Annotated[
    str, typer.Option(help="'auto' (the model's own), 'imagenet', 'efficientnet_lite' or 'none' (inputs as they are)")
]
WeightsOption = Annotated[str | None, typer.Option(
    help="Weights file for keras:NAME, torchvision:NAME, timm:NAME and factory models (a state dict as "
         ".safetensors or .pth), or 'random'")]
FrameworkOption = Annotated[str | None, typer.Option(
    help="Framework of the zoo model: torch or keras (default: the one installed, torch where both are)")]
ClassesOption = Annotated[str | None, typer.Option(help="For user models: 'imagenet' or a text file, one name a line")]
DeviceOption = Annotated[str, typer.Option(help="Where the model runs: cpu, cuda, cuda:1, ...")]
SamplesOption = Annotated[list[str] | None, typer.Option(help=f"A bundled photo: {', '.join(samples.names())}")]
RecursiveOption = Annotated[bool, typer.Option("--recursive", "-r", help="Also take images in sub-folders")]
FitOption = Annotated[str, typer.Option(help="How a photo meets the model's square input: crop, resize or pad")]
LayersOption = Annotated[str | None, typer.Option(
    help="Layer name or position (see `heatlens explain --help`), or several comma-separated; default: auto")]
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
    recursive: RecursiveOption = False,
    strict: Annotated[bool, typer.Option(help="Stop at the first unreadable image (default: skip it)")] = False,
    sample: SamplesOption = None,
    model: ModelOption = DEFAULT_MODEL,
    method: Annotated[str, typer.Option(
        help="See `heatlens methods`; several comma-separated (gradcam,lime) write one comparison per image"
    )] = "gradcam",
    target: Annotated[str | None, typer.Option(
        help="top1, top3, a class id or name, or a comma-separated list; default: top1")] = None,
    task: Annotated[str | None, typer.Option(
        metavar="TASK",
        help="Explain a detection or segmentation model: 'detection' (with --box and --label) or 'segmentation' "
             "(with --class, optionally --mask); the task's score picks the targets, one map per box or class"
    )] = None,
    box: Annotated[list[str] | None, typer.Option(
        metavar="X0,Y0,X1,Y1",
        help="--task detection: a box in the photo's pixels (mapped through the model's crop and resize); "
             "repeatable, one map per box")] = None,
    label: Annotated[list[str] | None, typer.Option(
        metavar="ID", help="--task detection: the class id or name of the detection in each --box (one, or one "
                           "per box)")] = None,
    class_ids: Annotated[list[str] | None, typer.Option(
        "--class", metavar="ID", help="--task segmentation: the class id or name whose pixels are explained; "
                                      "repeatable")] = None,
    mask: Annotated[Path | None, typer.Option(
        metavar="MASK.png", help="--task segmentation: a mask image at the photo's size whose nonzero pixels are "
                                 "the region (default: the pixels the model predicts as the class)")] = None,
    layer: Annotated[str | None, typer.Option(
        help="Layer name (see `heatlens layers`) or position as in Keras' model.layers (layers[7].input: what "
             "feeds the 8th top-level layer, layers[-2].output), or several comma-separated (CAM methods fuse "
             "them); default: auto"
    )] = None,
    out: Annotated[Path, typer.Option(help="Output folder")] = Path("heatlens-out"),
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="Heatmap opacity")] = 0.4,
    cmap: Annotated[str | None, typer.Option(
        help="matplotlib colormap; default: jet for maps >= 0 (the CAM family), a diverging map for signed ones")
    ] = None,
    fit: Annotated[str, typer.Option(
        help="How a photo meets the model's square input: crop (the centre, as the model was trained), resize "
             "(the whole photo squeezed, as the Keras tutorials do) or pad (the whole photo, bordered)")] = "crop",
    top: Annotated[int, typer.Option(min=0, help="How many predictions to print per image")] = 5,
    max_size: Annotated[int, typer.Option(
        min=0, help="The overlay PNGs' long side at most this many pixels (0: the photo's own size)")] = 1600,
    full_size_maps: Annotated[bool, typer.Option(
        "--full-size-maps", help="Write the raw maps (.npy) at the photo's resolution; by default they stay on the "
                                 "model's grid (7x7 for Grad-CAM), with the input box in the manifest")] = False,
    wnid: Annotated[bool, typer.Option("--wnid", help="Show ImageNet classes' WordNet ids (n02123159) in the table, "
                                       "as Keras' decode_predictions prints them")] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the results as JSON on stdout (nothing else goes there): per image its targets, the "
                       "files written, layer and method")] = False,
    preprocess: PreprocessOption = "auto",
    classes: ClassesOption = None,
    device: DeviceOption = "cpu",
    weights: WeightsOption = None,
    framework: FrameworkOption = None,
    trust_model_file: TrustOption = 0,
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o", help="Method option KEY=VALUE, e.g. -o steps=64 -o baseline=blurred "
                               "-o background=a.jpg,b.jpg (`heatlens methods NAME` lists a method's options)"
    )] = None,
) -> None:
    """Explain images (files or bundled samples) and write overlays, raw maps and manifest.json.

    Everything that can be checked without the model (methods, options, colour map, output folder, images) is
    checked before it loads. An image that cannot be read is skipped with a warning and listed under 'failed'
    in the manifest (with --strict, or when it is the only image, it stops the run)."""
    chosen = _methods(method)
    _check_cmap(cmap)
    if fit not in FITS:
        raise HeatlensError(f"--fit takes {', '.join(FITS)}. Received: {fit!r}{close_matches(fit, FITS)}")
    options = _options(option or [], chosen)
    request = task_request(task, box or [], label or [], class_ids or [], mask, target,
                           any("score_fn" in own for own in options.values()))
    targets, layers = _target(target or "top1"), _layer(layer)
    named = _named_inputs(images or [], sample or [], recursive)
    folder = _output_folder(out)
    network = _network(model, preprocess, classes, device=device, weights=weights, framework=framework,
                       trust=trust_model_file, fit=fit)
    check_task_model(request, network, model)
    if wnid and not is_imagenet(network.classes):
        raise HeatlensError(f"--wnid shows the WordNet ids of ImageNet classes, and {network.name} has other "
                            "classes; drop --wnid (or pass --classes imagenet for an ImageNet model)")
    say = _Output(as_json)
    shown: dict[str, Any] = {"alpha": alpha, **({"cmap": cmap} if cmap else {})}
    entries: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    header: dict[str, Any] = {}
    try:
        for name, source in named:
            try:
                photo = load_image(source) if isinstance(source, Path) else source
                layers = _resolved(network, layers, photo)
                aims, own, scored = _aims(request, network, photo, targets, options)
                if len(chosen) == 1:
                    result = run_explain(network, photo, method=chosen[0], target=aims, layer=layers,
                                         upsample=False, **own[chosen[0]])  # maps go onto the photo band by band
                    header = result.manifest_header(**shown)
                    entry = _write_explanation(result, folder, name, source, shown,
                                               {"photo_maps": full_size_maps, "max_size": max_size or None})
                else:
                    result, entry = _write_comparison(network, photo, chosen, aims, layers, own, folder,
                                                      name, source, shown)
                    header = {"schema_version": MANIFEST_SCHEMA, "model": result.model, "methods": chosen}
                if scored is not None:
                    entry["task"] = scored
                    header["task"] = scored["task"]
            except ImageError as exc:
                where = str(source) if isinstance(source, Path) else f"--sample {name}"
                failed.append({"image": name, "file": _absolute(source) if isinstance(source, Path) else where,
                               "error": _one_line(exc)})
                if strict or len(named) == 1:
                    raise
                _warn(f"skipped '{where}': {exc}")
                continue
            entries.append(entry)
            if request is None:
                say.predictions(name, result.top(top), result.layer, wnid)
            else:
                say.scores(name, score_rows(result), result.layer)
            say.written(folder, entry)
    finally:  # a run stopped by a bad image still records the images it finished
        if entries:
            maps = {"grid": "photo" if full_size_maps else "model", "dtype": "float32"}
            header = {**header, "fit": fit, "maps": maps, "versions": _versions(), "failed": failed}
            with _writing(folder):
                manifest = write_manifest(folder, header, entries)
            say.line(f"manifest: {escape(str(manifest))}")
    if not entries:
        raise HeatlensError(f"none of the {len(named)} images could be explained (see the warnings above); "
                            "nothing was written")
    if failed:
        _warn(f"{len(failed)} of {len(named)} images were skipped; manifest.json lists them under 'failed'")
    if as_json:
        print(json.dumps(_json_results(folder, header, entries), indent=2))


class _Output:
    """What explain prints on stdout for people: prediction tables and the files written; nothing with --json
    (stdout then holds the JSON alone; warnings and notes stay on stderr)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def line(self, text: str) -> None:
        if not self.quiet:
            out_console.print(text, highlight=False)

    def predictions(self, stem: str, top: list[list[tuple[int, str, float]]], layer: str | None,
                    wnid: bool) -> None:
        if not self.quiet:
            _print_predictions(stem, top, layer, wnid)

    def scores(self, stem: str, rows: list[tuple[str, float]], layer: str | None) -> None:
        """The scores a --task run explains (one per box or class), as the model gives them."""
        if self.quiet:
            return
        table = Table(title=escape(f"{stem}: scores explained" + (f" (layer {layer})" if layer else "")))
        for col in ("target", "score"):
            table.add_column(col)
        for name, value in rows:
            table.add_row(escape(name), f"{value:.4g}")
        out_console.print(table)

    def written(self, folder: Path, entry: dict[str, Any]) -> None:
        if "comparison" in entry:
            self.line(f"  comparison of {', '.join(r['method'] for r in entry['results'])} written to "
                      f"[bold]{escape(str(folder / entry['comparison']))}[/]")
            return
        for record in entry["targets"]:
            path = escape(str(folder / record["overlay"]))
            self.line(f"  {escape(record['name'])}: overlay written to [bold]{path}[/]")


def _aims(request: TaskRequest | None, network: Network, photo: np.ndarray, targets: Any,
          options: dict[str, dict[str, Any]]) -> tuple[Any, dict[str, dict[str, Any]], dict[str, Any] | None]:
    """The targets and per-method options for one photo, and what the manifest records of its task: with
    --task, the task's score for this photo (boxes and mask mapped into its model input) and one target per
    box or class; without, the --target given."""
    if request is None:
        return targets, options, None
    check_mask_size(request, photo)
    score, aims, record = task_score(request, network, photo)
    return aims, {method: {**own, "score_fn": score} for method, own in options.items()}, record


def _methods(text: str) -> list[str]:
    """The method names of --method (one, or several comma-separated), checked, each once."""
    names = [get_method(item).name for item in text.split(",") if item.strip()]
    if not names:
        raise MethodError("--method is empty: give a method name (see `heatlens methods`), or several "
                          "comma-separated")
    if len(set(names)) != len(names):
        raise MethodError(f"--method names a method twice: {text}; give each once")
    return names


def _check_cmap(cmap: str | None) -> None:
    """Refuse an unknown colour map before any work, with the close names (only the close ones: matplotlib
    has some 200, many of them alike)."""
    from matplotlib import colormaps

    if cmap is not None and cmap not in colormaps:
        near = difflib.get_close_matches(cmap, [name for name in colormaps if not name.endswith("_r")], 3, 0.7)
        raise HeatlensError(f"unknown colormap '{cmap}'.{close_matches(cmap, near)} Any matplotlib colormap name "
                            "works, e.g. jet, viridis, inferno, bwr")


def _write_explanation(result: Explanation, folder: Path, name: str, source: Any,
                       shown: dict[str, Any], sizes: dict[str, Any]) -> dict[str, Any]:
    """One image's overlays and maps (in a sub-folder where its name has one); its manifest entry. `sizes`:
    photo_maps and max_size for Explanation.write_images."""
    with _writing(folder):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (entry,) = result.write_images(folder, stems=[name], **sizes, **shown)
    return {**entry, **_origin(source, result), "method": result.method, "layer": result.layer}


def _write_comparison(network: Network, photo: np.ndarray, methods: list[str], targets: Any, layers: Any,
                      options: dict[str, dict[str, Any]], folder: Path, name: str, source: Any,
                      shown: dict[str, Any]) -> tuple[Explanation, dict[str, Any]]:
    """One image explained by each method for the same targets: its folder (comparison.png, a sub-folder per
    method) and its manifest entry, which lists every method's targets and files."""
    comparison = compare(network, photo, methods=methods, target=targets, layer=layers,
                         options={m: o for m, o in options.items() if o})
    with _writing(folder):
        manifest = comparison.save(folder / name, **shown)
    results = []
    for method, result in comparison.results.items():
        own = json.loads((folder / name / method / "manifest.json").read_text(encoding="utf-8"))["images"][0]
        files = [{key: f"{name}/{method}/{value}" if key in _FILE_KEYS else value for key, value in record.items()}
                 for record in own["targets"]]
        results.append({"method": method, "layer": result.layer, "targets": files})
    first = comparison.results[methods[0]]
    entry = {"image": name, **_origin(source, first), "comparison": f"{name}/comparison.png",
             "manifest": str(manifest.relative_to(folder)), "results": results}
    return first, entry


_FILE_KEYS = ("overlay", "labelled", "map", "attributions", "attributions_image")


def _origin(source: Any, result: Explanation) -> dict[str, Any]:
    """Where an image came from (absolute path, or the bundled sample) and which part of it the model saw."""
    where = {"file": _absolute(source)} if isinstance(source, Path) else {"sample": True}
    box = [float(v) for v in result.input_box] if result.input_box is not None else None
    return {**where, "input_box": box}


def _absolute(path: Path) -> str:
    return os.path.abspath(path)


def _versions() -> dict[str, str]:
    """heatlens' version and those of the frameworks this run imported (none is imported to ask)."""
    found = {"heatlens": __version__}
    for module, distributions in FRAMEWORK_PACKAGES.items():
        if module in sys.modules:
            for distribution in distributions:
                try:
                    found[module] = metadata.version(distribution)
                    break
                except metadata.PackageNotFoundError:
                    continue
    return found


def _json_results(folder: Path, header: dict[str, Any], entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The --json document: the run's header and per image its targets (id, name, probability, wnid where
    known), the files written (absolute paths), layer and method."""
    def files(record: dict[str, Any]) -> dict[str, Any]:
        return {key: str(folder / value) if key in _FILE_KEYS else value for key, value in record.items()}

    images = []
    for entry in entries:
        item: dict[str, Any] = {key: entry[key] for key in ("image", "file", "sample", "input_box", "task")
                                if key in entry}
        if "results" in entry:
            item["comparison"] = str(folder / entry["comparison"])
            item["results"] = [{**r, "targets": [files(t) for t in r["targets"]]} for r in entry["results"]]
        else:
            item.update(method=entry["method"], layer=entry["layer"], targets=[files(t) for t in entry["targets"]])
        images.append(item)
    keep = ("model", "method", "methods", "layer", "fit", "task", "versions", "failed")
    return {**{key: header[key] for key in keep if key in header}, "output": str(folder),
            "manifest": str(folder / "manifest.json"), "images": images}


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
    result = pictures.activations(network, photo, layers=_resolved(network, layer, photo),
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
    result = pictures.filters(network, _resolved(network, layer, shape=shape), channels=channel_list, steps=steps,
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
    result = pictures.deconv(network, photo, _resolved(network, layer, photo), top_k=top_k)
    with _writing(folder):
        manifest = result.save(folder)
    out_console.print(f"deconvnet projections of channels {result.details['channels']}: {escape(str(manifest))}")


def _one_image(image: Path | None, sample: str | None) -> np.ndarray:
    if (image is None) == (sample is None):
        raise HeatlensError("give one image: a file, or --sample cat")
    return load_image(image) if image is not None else samples.load(str(sample))


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


# The models people bring, as --model takes them: (name, what it loads, where its weights come from).
BROUGHT_MODELS = (
    ("keras:NAME", "any keras.applications class, e.g. keras:Xception", "--weights FILE or ~/.keras"),
    ("torchvision:NAME", "a torchvision architecture with its weights entry's preprocessing and classes, e.g. "
     "torchvision:resnet50; detectors and segmenters too (explain them with --task)",
     "--weights FILE (.safetensors or .pth state dict) or --weights random"),
    ("timm:NAME", "a timm architecture with its pretrained config's preprocessing, e.g. timm:convnext_tiny",
     "--weights FILE (.safetensors or .pth state dict) or --weights random"),
    ("hf:FOLDER", "a Hugging Face image-classification folder (save_pretrained): its image processor and "
     "id2label", "inside the folder"),
    ("FILE.onnx", "an ONNX export through onnxruntime (black-box methods); input layout, size and dtype read from "
     "the graph", "inside the file"),
    ("package.module:factory", "your own torch model: a function returning an nn.Module, e.g. mynet:build",
     "--weights FILE (.safetensors or .pth state dict, read with weights_only=True)"),
    ("FILE.keras / FILE.h5", "a saved Keras model", "inside the file"),
    ("FILE.pt2 / TorchScript", "a torch.export program or a TorchScript file (they can run code: "
     "--trust-model-file)", "inside the file"),
)


@app.command()
@_user_errors
def models() -> None:
    """List the offline zoo models and the other models --model loads (nothing is downloaded)."""
    table = Table(title="offline models (--framework torch or keras)")
    table.add_column("name", no_wrap=True)
    table.add_column("description")
    table.add_column("weights package", overflow="fold")
    for entry in ZOO.values():
        table.add_row(entry.name, escape(entry.description), entry.weights_package)
    out_console.print(table)
    brought = Table(title="your own models (--model NAME; a .safetensors or .pth file alone holds no network: "
                          "give it as --weights)")
    brought.add_column("--model", no_wrap=True)
    brought.add_column("what it loads")
    brought.add_column("weights from", overflow="fold")
    for name, what, weights in BROUGHT_MODELS:
        brought.add_row(escape(name), escape(what), escape(weights))
    out_console.print(brought)


WIDE = 120  # columns from which the methods table also shows each paper


@app.command()
@_user_errors
def methods(
    name: Annotated[str | None, typer.Argument(help="A method: print its options, defaults and what they mean")] = None,
) -> None:
    """List the explanation methods, or one method's options (heatlens methods lime)."""
    if name is not None:
        _describe(get_method(name))
        return
    table = Table(title="methods (heatlens methods NAME: its options)")
    table.add_column("name", no_wrap=True)
    table.add_column("what it computes")
    table.add_column("gradients", no_wrap=True)
    table.add_column("layer", no_wrap=True)
    wide = out_console.width >= WIDE
    if wide:
        table.add_column("paper")
    for info in METHODS.values():
        table.add_row(info.name, escape(info.summary), _yes(info.needs_gradients), _yes(info.uses_layer),
                      *([escape(info.paper)] if wide else []))
    out_console.print(table)


def _describe(info: MethodInfo) -> None:
    """One method: what it computes, its paper, what it needs, and a table of its options."""
    needs = "gradients (torch or Keras models)" if info.needs_gradients else "only predictions (any model)"
    for line in (f"[bold]{info.name}[/]: {escape(info.summary)}", f"paper: {escape(info.paper)}",
                 f"needs: {needs}; layer: {'yes (--layer)' if info.uses_layer else 'no'}",
                 f"computes: {escape(formula(info))}"):
        out_console.print(line, highlight=False, soft_wrap=False)  # prose: folded at the width
    table = Table(title="options: -o KEY=VALUE")
    table.add_column("option", no_wrap=True)
    table.add_column("default", no_wrap=True)
    table.add_column("meaning")
    for row in options_help(info):
        table.add_row(escape(FLAGS.get(row.name, row.name)), escape(row.default), escape(row.meaning))
    out_console.print(table)


def _network(model: str, preprocess: str, classes: str | None, input_size: int | None = None,
             device: str = "cpu", weights: str | None = None, framework: str | None = None,
             trust: int = 0, fit: str = "crop") -> Network:
    """The model the options name; options that do not apply to it are refused by load_model. The zoo's
    framework is left to load_model (the installed one) unless --framework names it.
    trust: how often --trust-model-file was given (1: files that run code, 2: also pickles in .pt2)."""
    zoo_keras = model in ZOO and (framework or installed_framework()) == "keras"
    if framework == "keras" or zoo_keras or names_keras_model(model):
        preload_tensorflow()
    options: dict[str, Any] = {"device": device, "framework": framework}
    if fit != "crop":
        options["fit"] = fit
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


def _options(pairs: list[str], methods: list[str]) -> dict[str, dict[str, Any]]:
    """KEY=VALUE method options, per method: each goes to the methods that take it, and one that none of
    them takes is refused with the close names. Numbers and true/false become values; 'background' is a list
    of image files; score_fn=module:function a function (any method takes it)."""
    taken = {m: {*option_names(get_method(m)), "score_fn"} - set(FLAGS) for m in methods}
    parsed = _option_values(pairs)
    for key in parsed:
        if not any(key in names for names in taken.values()):
            known = sorted(set().union(*taken.values()))
            raise MethodError(f"-o {key}=... is not an option of {' or '.join(methods)}."
                              f"{close_matches(key, known)} See `heatlens methods {methods[0]}` for its options")
    return {m: {k: v for k, v in parsed.items() if k in taken[m]} for m in methods}


def _option_values(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise HeatlensError(f"--option expects KEY=VALUE. Received: {pair!r}")
        key = key.strip()
        if key in {"layer", "target", "method", "model", "fit", "cmap"}:
            raise HeatlensError(f"use --{key} rather than --option {key}=...")
        if key == "score":
            raise MethodError("-o score=... is no option: use -o score_fn=module:function for a custom score "
                              "function, or -o softmax=true (CAM methods) for the class probabilities")
        if key == "background":
            options[key] = [load_image(Path(p.strip())) for p in text.split(",") if p.strip()]
        elif key == "score_fn":
            options[key] = _score_function(text.strip())
        else:
            options[key] = _value(text.strip())
    return options


def _score_function(spec: str) -> Any:
    """-o score_fn=package.module:function: a custom score function of the model's raw output."""
    function = import_user_object(spec)
    if not callable(function):
        raise HeatlensError(f"-o score_fn={spec} names a {type(function).__name__}, not a function")
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


from .cli_evaluate import evaluate as _evaluate  # noqa: E402

app.command(name="evaluate")(_evaluate)
from .cli_app import app_command as _app_command  # noqa: E402

app.command(name="app")(_app_command)
from .cli_report import report as _report  # noqa: E402

app.command(name="report")(_report)
from . import cli_run as _cli_run  # noqa: E402, F401 - its @app.command registers `heatlens run`
