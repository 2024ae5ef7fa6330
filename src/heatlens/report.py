"""report(): one self-contained HTML file to mail or attach to a model card: per photo its top predictions and a
grid of methods x target classes of labelled overlays (heatlens.display's own tiles, colour bars included), the
metric scores when asked, and a header with the model, layer, preprocessing, fit, versions and every parameter.

Photos are explained one at a time and their sections streamed to disk, so a folder of hundreds stays in memory
as one photo; the page shows them in pages with lazily decoded thumbnails (see heatlens.report_html).
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import display
from . import report_html as page
from .compare import compare
from .errors import HeatlensError, ImageError, MethodError
from .explanation import Explanation, _jsonable
from .image_files import find_images, unique_names
from .images import ImageLike, load_image
from .methods import get_method
from .models import Network, to_network
from .models import fitted as with_fit
from .progress import progress_bar
from .targets import TargetSpec
from .version import __version__

log = logging.getLogger(__name__)
PHOTO_SIDE = 1024  # the photo's full-size picture: its long side at most this many pixels
VERSIONED = ("numpy", "pillow", "matplotlib", "torch", "keras", "tensorflow", "onnxruntime")


def report(
    model: Any,
    images: ImageLike | Sequence[ImageLike] | Mapping[str, ImageLike],
    methods: str | Sequence[str] = ("gradcam",),
    target: TargetSpec = "top3",
    metrics: str | Sequence[str] | None = None,
    out: str | os.PathLike = "report.html",
    layer: str | list[str] | None = None,
    fit: str | None = None,
    options: dict[str, dict[str, Any]] | None = None,
    metric_options: dict[str, dict[str, Any]] | None = None,
    alpha: float = 0.4,
    cmap: str | None = None,
    top: int = 5,
    thumb_size: int = 320,
    full_size: int = 720,
    image_format: str = "webp",
    quality: int = 80,
    page_size: int = 20,
    title: str | None = None,
    recursive: bool = False,
    progress: bool = True,
    on_skip: Callable[[str, str], None] | None = None,
) -> Path:
    """Write a self-contained HTML report of `model` explaining `images` with each of `methods` (a list or
    'gradcam,lime') for `target`, and return its path.

    images: photo files, folders of photos (`recursive`: with their sub-folders), PIL images or uint8 arrays
    (H, W, 3) / (N, H, W, 3), a list of those, or a mapping {name: photo}. An unreadable file is left out and
    listed in the report.
    metrics: names from heatlens.metrics.METRICS, scored per map (`metric_options`: {name: its parameters}).
    options: per-method options ({'lime': {'num_samples': 500}}); layer, fit: as in explain() and load_model().
    Pictures: thumbnails no longer than `thumb_size` px open their `full_size` version on click, encoded as
    `image_format` ('webp' or 'jpeg') at `quality`; `page_size` photos a page. `on_skip(name, reason)` hears of
    each image left out (default: a logged warning)."""
    plan = Plan(_method_names(methods), target, _metric_names(metrics, metric_options), layer, options or {},
                metric_options or {}, alpha, cmap, top, thumb_size, full_size, image_format, quality, page_size)
    _check_sizes(plan)
    if cmap is not None:  # an unknown colour map is refused before any work
        from .overlay import color_table

        color_table(cmap)
    path = _report_path(out)
    named = _named_photos(images, recursive)
    network = with_fit(to_network(model), fit)
    facts: dict[str, Any] = {}
    failed: list[tuple[str, str]] = []
    index: list[tuple[str, str, str]] = []
    try:  # the photos' sections wait in a temporary file next to the report
        with tempfile.TemporaryFile("w+", encoding="utf-8", dir=path.parent) as body, \
                progress_bar(len(named), "report", progress) as advance:
            for number, (name, source) in enumerate(named):
                try:
                    section, record = _photo_section(network, load_image(source), name, f"photo-{number + 1}", plan)
                except ImageError as exc:
                    failed.append((name, " ".join(str(exc).split())))
                    (on_skip or _log_skip)(name, failed[-1][1])
                    advance(1)
                    continue
                facts = facts or record
                if len(index) % page_size == 0:
                    body.write((page.PAGE_END if index else "") + page.PAGE_START)
                body.write(page.section_html(section))
                index.append((section.anchor, name, page.best_label(section.top)))
                advance(1)
            if not index:
                first = f": {failed[0][0]}: {failed[0][1]}" if failed else ""
                raise ImageError(f"none of the {len(named)} images could be read, so no report was written{first}")
            body.write(page.PAGE_END)
            body.seek(0)
            _write(path, network, title, plan, facts, failed, index, body)
    except OSError as exc:
        raise HeatlensError(f"cannot write the report to '{path}': {exc.strerror or exc}; free some space or "
                            "choose another out=") from None
    return path


@dataclass(frozen=True)
class Plan:
    """What a report runs and how it draws it: the settings of report(), checked."""

    methods: list[str]
    target: TargetSpec
    metrics: list[str]
    layer: str | list[str] | None
    options: dict[str, dict[str, Any]]
    metric_options: dict[str, dict[str, Any]]
    alpha: float
    cmap: str | None
    top: int
    thumb_size: int
    full_size: int
    image_format: str
    quality: int
    page_size: int

    def shown(self) -> dict[str, Any]:
        """The drawing settings, as the report's JSON record lists them."""
        return {key: getattr(self, key) for key in ("alpha", "cmap", "top", "thumb_size", "full_size",
                                                    "image_format", "quality", "page_size")}


def _log_skip(name: str, reason: str) -> None:
    log.warning("report: left out %s: %s", name, reason)


def _photo_section(network: Network, photo: np.ndarray, name: str, anchor: str,
                   plan: Plan) -> tuple[page.PhotoSection, dict[str, Any]]:
    """One photo explained by every method for the same targets, drawn as labelled tiles, with metric scores;
    and the record of what ran (per method its manifest header, per metric its parameters)."""
    comparison = compare(network, photo, methods=plan.methods, target=plan.target, layer=plan.layer,
                         options={m: o for m, o in plan.options.items() if o},
                         upsample=False)  # maps stay on the model's grid: tiles upsample onto their small copies
    first = comparison.results[plan.methods[0]]
    columns = [f"#{k + 1} {first.targets.names[0][k]} (id {int(first.targets.ids[0][k])})"
               for k in range(first.maps.shape[1])]
    rows: list[Any] = []
    record: dict[str, dict[str, Any]] = {"methods": {}, "metrics": {}}
    for method, result in comparison.results.items():
        result.names = [name]
        scores = _scores(network, result, plan, record["metrics"])
        cells = []
        for k in range(result.maps.shape[1]):
            alt = f"{name} · {display.method_line(result)} · {display.target_title(result, 0, k)}"
            tile = page.picture(labelled_tile(result, k, plan.alpha, plan.cmap, plan.full_size), plan.thumb_size,
                                alt, plan.image_format, plan.quality)
            cells.append(page.Cell(tile, [(metric, float(values[0, k]), better)
                                          for metric, (values, better) in scores.items()]))
        rows.append((method, result.layer, cells))
        record["methods"][method] = _drawn(result, result.manifest_header(plan.alpha, plan.cmap))
    shown = Image.fromarray(photo)
    shown.thumbnail((PHOTO_SIDE, PHOTO_SIDE), Image.Resampling.LANCZOS)
    notes = list(dict.fromkeys(note for result in comparison.results.values() for note in result.notes))
    picture = page.picture(shown, plan.thumb_size, f"{name} (photo)", plan.image_format, plan.quality)
    section = page.PhotoSection(anchor, name, picture, photo.shape[:2], first.top(plan.top)[0] if plan.top else [],
                                columns, rows, notes)
    return section, record


def _drawn(result: Explanation, header: dict[str, Any]) -> dict[str, Any]:
    """The manifest header with what the tiles show (the labelled figures' view: the overlay, or for pixel methods
    the attributions in grey) in place of the overlay's colouring."""
    shown = dict(header["display"])
    labelled = shown.pop("labelled")
    if labelled["view"] == "attributions":
        shown["signed"] = False
    return {**header, "display": {**shown, **labelled}}


def _scores(network: Network, result: Explanation, plan: Plan,
            record: dict[str, Any]) -> dict[str, tuple[np.ndarray, bool]]:
    """Each metric's scores (1, K) of the result's maps and whether higher is better; their parameters recorded."""
    if not plan.metrics:
        return {}
    from . import metrics

    scores = {}
    for name in plan.metrics:
        outcome = metrics.compute(name, network, None, result,
                                  **{"progress": False, **plan.metric_options.get(name, {})})
        scores[name] = (np.asarray(outcome.scores, np.float64), bool(outcome.higher_is_better))
        record.setdefault(name, {k: _jsonable(v) for k, v in outcome.params.items()})
    return scores


def labelled_tile(result: Explanation, k: int, alpha: float, cmap: str | None, side: int) -> Image.Image:
    """Target k's labelled overlay of the result's one photo as heatlens.display draws it (class, probability,
    colour bar), rasterised with its long side `side` pixels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    figure = display.figure(result, images=[0], targets=[k], alpha=alpha, cmap=cmap, photo=False, side=side, title="")
    figure.set_dpi(side / max(figure.get_size_inches()))
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy())


def _write(path: Path, network: Network, title: str | None, plan: Plan, facts: dict[str, Any],
           failed: list[tuple[str, str]], index: list[tuple[str, str, str]], body: Any) -> None:
    """The whole file, written next to `path` and moved into place (a reader never sees half a report)."""
    title = title or f"heatlens report: {network.name}"
    preprocess = network.preprocess
    methods = plan.methods
    layers = {m: facts["methods"][m]["layer"] for m in methods if facts["methods"][m]["layer"]}
    versions = _versions()
    rows = [
        ("model", network.name),
        ("preprocessing", repr(preprocess) if preprocess is not None else "none (inputs as given)"),
        ("fit", getattr(preprocess, "fit", "n/a (the model prepares its own inputs)")),
        ("layer", ", ".join(f"{m}: {name}" for m, name in layers.items()) or "none of the methods uses a layer"),
        ("methods", ", ".join(methods)),
        ("target", str(plan.target) + (f" (resolved once per photo, by {methods[0]}: every method explains the "
                                       "same classes)" if len(methods) > 1 else "")),
        ("metrics", ", ".join(plan.metrics) or "none (pass metrics=, or --metric)"),
        ("photos", f"{len(index)} shown" + (f", {len(failed)} could not be read" if failed else "")),
        ("generated", datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions.items())),
    ]
    params = [(f"{m}: parameters", {"layer": h["layer"], **{k: v for k, v in h["params"].items() if k != "target"},
                                    **{f"display {k}": v for k, v in h["display"].items()}})
              for m, h in facts["methods"].items()]
    params += [(f"metric {m}: parameters", values) for m, values in facts["metrics"].items()]
    settings = {"model": network.name, "preprocess": repr(preprocess), "fit": getattr(preprocess, "fit", None),
                "target": _jsonable(plan.target), **facts, **plan.shown(), "versions": versions,
                "photos": [name for _, name, _ in index], "failed": [{"image": n, "error": e} for n, e in failed]}
    nav = page.NAV if len(index) > plan.page_size else ""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")  # opened like any new file: the umask's mode
    try:
        with open(partial, "w", encoding="utf-8") as file:
            file.write(page.page_start(title))
            file.write(page.header_html(title, rows, params, settings, index, failed))
            file.write(nav)
            for chunk in iter(lambda: body.read(1 << 20), ""):
                file.write(chunk)
            file.write(nav)
            file.write(page.PAGE_FINISH)
        os.replace(partial, path)
    except OSError:
        partial.unlink(missing_ok=True)
        raise


def _versions() -> dict[str, str]:
    """heatlens', Python's and the installed versions of the libraries the report's pictures went through (the
    frameworks only where this process imported them: none is imported to ask)."""

    found = {"heatlens": __version__, "python": platform.python_version()}
    for name in VERSIONED:
        if name in ("torch", "keras", "tensorflow", "onnxruntime") and name not in sys.modules:
            continue
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _method_names(methods: str | Sequence[str]) -> list[str]:
    """The methods as registered names, each once; 'gradcam,lime' is two."""
    items = methods.split(",") if isinstance(methods, str) else list(methods)
    names = [get_method(str(m).strip()).name for m in items if str(m).strip()]
    if not names:
        raise MethodError(f"report() needs at least one method, e.g. methods=('gradcam', 'lime'). "
                          f"Received: {methods!r}")
    if len(set(names)) != len(names):
        raise MethodError(f"report() names a method twice: {list(items)}; give each once")
    return names


def _metric_names(metrics: str | Sequence[str] | None, options: dict[str, dict[str, Any]] | None) -> list[str]:
    """The metrics as registered names (checked before any work); their options must name chosen metrics."""
    items = [] if metrics is None else metrics.split(",") if isinstance(metrics, str) else list(metrics)
    names = [str(m).strip() for m in items if str(m).strip()]
    if names:
        from .metrics import get_metric

        names = [get_metric(name).name for name in names]
    unknown = sorted(set(options or {}) - set(names))
    if unknown:
        raise MethodError(f"metric_options= names metrics that are not measured: {unknown}; measured: {names}")
    return list(dict.fromkeys(names))


def _check_sizes(plan: Plan) -> None:
    """Refuse picture settings that cannot make a readable report, before any work."""
    for label, low in (("thumb_size", 32), ("full_size", 64), ("page_size", 1), ("top", 0)):
        value = getattr(plan, label)
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise HeatlensError(f"{label} must be a whole number >= {low}. Received: {value!r}")
    quality = plan.quality
    if isinstance(quality, bool) or not isinstance(quality, int | np.integer) or not 1 <= quality <= 100:
        raise HeatlensError(f"quality must be a whole number from 1 to 100 (the WebP/JPEG quality). Received: "
                            f"{quality!r}")
    if plan.image_format not in page.FORMATS:
        raise HeatlensError(f"image_format must be 'webp' or 'jpeg'. Received: {plan.image_format!r}")
    alpha = plan.alpha
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 <= alpha <= 1:
        raise HeatlensError(f"alpha must be between 0 and 1. Received: {alpha!r}")


def _report_path(out: str | os.PathLike) -> Path:
    """The report's file path; its folder is created, and a path that is a folder is refused."""
    path = Path(out).expanduser()
    if path.is_dir():
        raise HeatlensError(f"the report's path '{out}' is a folder: give a file name, e.g. "
                            f"{Path(out) / 'report.html'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HeatlensError(f"cannot write the report to '{path}': {exc.strerror or exc}; "
                            "choose another out=") from None
    return path.resolve()


def _named_photos(images: Any, recursive: bool) -> list[tuple[str, Any]]:
    """(unique name, file path or picture) per photo: a mapping's by its keys, files by their name, folders'
    photos by their path in the folder, arrays and PIL images as 'image i'. Files are read one at a time, later."""
    if isinstance(images, Mapping):
        named = [(str(name), image) for name, image in images.items()]
    else:
        named = list(_items(images if isinstance(images, list | tuple) else [images], recursive))
    if not named:
        raise ImageError("report() got no images: pass photo files, a folder of photos, or arrays")
    names = unique_names([name for name, _ in named])
    return [(name, source) for name, (_, source) in zip(names, named, strict=True)]


def _items(images: Sequence[Any], recursive: bool) -> Iterator[tuple[str, Any]]:
    count = 0
    for item in images:
        if isinstance(item, str | os.PathLike):
            found = find_images([Path(item)], recursive)
            yield from found.files
        elif isinstance(item, np.ndarray) and item.ndim == 4:
            for photo in item:
                yield f"image {count}", photo
                count += 1
        else:
            yield f"image {count}", item
            count += 1

