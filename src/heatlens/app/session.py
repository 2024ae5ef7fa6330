"""What one browser session computes, without Gradio: the photo it loaded, the model's predictions on it, the
Explanations of the methods it shows, their labelled tiles, metric scores and a download of it all.

Everything here is per session (the app keeps a `Session` in gr.State): nothing about a result is global.
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .. import __version__, display, samples
from ..api import explain
from ..errors import HeatlensError, ImageError, MethodError, TargetError, first_line
from ..explanation import Explanation
from ..images import load_image
from ..methods import get_method
from ..models import Network
from ..targets import class_name, probabilities

MAX_UPLOAD_MB = 20
TOP_CLASSES = 10  # the predictions offered as classes to explain
BAR_INCHES = 0.85  # the colour bar drawn under each tile: its height with ticks and label
BAR_WIDTH = 320  # pixels: the least width a colour bar's label fits in (narrower tiles are centred on white)
METRICS_SHOWN = ("deletion", "insertion", "average_drop", "increase_in_confidence")
"""The metrics offered in the page: each needs only the model and the shown maps (no regions, no re-runs)."""
METRIC_PARAMS = {"deletion": {"steps": 20}, "insertion": {"steps": 20}}
"""The page's curves take 20 steps (the papers' 100 in `heatlens evaluate`), so a score comes in seconds."""

Step = Callable[[float, str], None]


@dataclass
class Session:
    """One browser session's photo (H, W, 3) uint8 and name, the model's probabilities on it (classes,), and
    the Explanations shown, by method in the order they are shown (left, right)."""

    photo: np.ndarray
    name: str
    probabilities: np.ndarray
    results: dict[str, Explanation] = field(default_factory=dict)


def read_photo(path: str | Path, limit_mb: int = MAX_UPLOAD_MB) -> np.ndarray:
    """An uploaded file as an (H, W, 3) uint8 photo; anything larger than `limit_mb` or not an image is refused
    with an ImageError saying what was received, naming the file as it was uploaded (not the server's copy)."""
    path = Path(path)
    size = path.stat().st_size
    if size > limit_mb * 1024 * 1024:
        raise ImageError(f"uploads are limited to {limit_mb} MB. Received: {path.name} of "
                         f"{size / 1024 / 1024:.1f} MB; shrink the photo first")
    try:
        return load_image(path)
    except ImageError as exc:
        raise ImageError(first_line(exc).replace(str(path), path.name)) from None


def open_session(network: Network, photo: np.ndarray, name: str) -> Session:
    """A new session for a photo: the model's class probabilities on it, nothing explained yet."""
    logits = network.predict(network.prepare(photo[None]))
    return Session(photo, name, probabilities(np.asarray(logits, dtype=np.float64))[0])


def open_sample(network: Network, sample: str) -> Session:
    """A new session for one of heatlens' bundled photos (heatlens.samples)."""
    return open_session(network, samples.load(sample), sample)


def ranked(session: Session, network: Network, count: int = TOP_CLASSES) -> list[tuple[int, str, float]]:
    """The model's `count` most probable classes on the session's photo as (id, name, probability)."""
    order = np.argsort(-session.probabilities, kind="stable")[:count]
    return [(int(c), class_name(int(c), network.classes), float(session.probabilities[c])) for c in order]


def class_label(rank: int, name: str, probability: float) -> str:
    """How a class is offered in the page: '2. tiger cat 31%'."""
    return f"{rank}. {name} {display.percent(probability)}"


def layer_choices(network: Network) -> tuple[list[tuple[str, str]], str]:
    """The model's spatial layers as (label, name), the default one labelled '(default)' and listed first, and
    the default's name: the layers a CAM method can use."""
    default = network.default_layer()
    names = [info.name for info in network.layers() if info.spatial]
    ordered = [default, *(n for n in reversed(names) if n != default)]
    return [(f"{n} (default)" if n == default else n, n) for n in ordered], default


def explain_shown(network: Network, session: Session, methods: Sequence[str], class_ids: Sequence[int],
                  layer: str | None, step: Step | None = None) -> Session:
    """The session with one Explanation per method (computed by heatlens.explain, as a script would) of the
    chosen classes; `layer` goes to the methods that use one. `step(fraction, text)` is told before each."""
    if not class_ids:
        raise TargetError("no class chosen: tick at least one of the predictions to explain it")
    if len(set(methods)) != len(methods):
        raise MethodError(f"the two sides show the same method ({methods[0]}): pick another one to compare")
    results = {}
    for n, method in enumerate(methods):
        info = get_method(method)
        if step is not None:
            step(n / len(methods), f"{info.name} ({n + 1} of {len(methods)})")
        result = explain(network, session.photo, info.name, target=[int(c) for c in class_ids],
                         layer=layer if info.uses_layer else None)
        result.names = [session.name]
        results[info.name] = result
    return Session(session.photo, session.name, session.probabilities, results)


def tiles(result: Explanation, alpha: float, cmap: str | None) -> list[tuple[np.ndarray, str]]:
    """Per explained class, the labelled tile the library draws (heatlens.display): the overlay (or the pixel
    attributions, for methods that have them) with its colour bar under it, and its title."""
    shown = display.style(result, cmap)
    pixels = display.has_attributions(result)
    out = []
    for k in range(result.maps.shape[1]):
        picture, key = display.attribution_tile(result, 0, k) if pixels else \
            display.overlay_tile(result, 0, k, shown, alpha)
        title = display.target_title(result, 0, k, method=True).replace("\n", " · ")
        width = max(picture.shape[1], BAR_WIDTH)
        out.append((np.concatenate([_centred(picture, width), colour_bar(key, width)]), title))
    return out


def _centred(picture: np.ndarray, width: int) -> np.ndarray:
    """A picture centred on a white strip `width` pixels wide (itself where it is that wide already)."""
    left = (width - picture.shape[1]) // 2
    return np.pad(picture, ((0, 0), (left, width - picture.shape[1] - left), (0, 0)), constant_values=255)


def colour_bar(key: display.Key, width: int, dpi: int = 100) -> np.ndarray:
    """The colour bar of a tile (display.colour_bar: its colour map, values and label) as an RGB strip
    `width` pixels wide, to sit under the tile."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width / dpi, BAR_INCHES), dpi=dpi)
    axes = figure.add_axes((0.06, 0.72, 0.88, 0.2))
    display.colour_bar(figure, axes, key)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    strip = np.asarray(Image.open(buffer).convert("RGB"))
    return strip[:, :width] if strip.shape[1] >= width else np.pad(
        strip, ((0, 0), (0, width - strip.shape[1]), (0, 0)), constant_values=255)


def scores(network: Network, session: Session, metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Each chosen metric (heatlens.metrics) of each shown method's maps, one row per method, metric and
    class: the score, which way is better and the parameters given (METRIC_PARAMS)."""
    from ..metrics import compute, get_metric

    if not session.results:
        raise HeatlensError("nothing is shown yet: explain a photo first, then score its maps")
    rows = []
    for method, result in session.results.items():
        for name in metrics:
            info = get_metric(name)
            params = METRIC_PARAMS.get(info.name, {})
            measured = compute(info.name, network, None, result, progress=False, **params)
            for k, value in enumerate(measured.scores[0]):
                rows.append({"method": method, "metric": info.name, "class": result.targets.names[0][k],
                             "score": float(value), "better": "higher" if info.higher_is_better else "lower",
                             "params": ", ".join(f"{key}={v}" for key, v in params.items())})
    return rows


def bundle(session: Session, alpha: float, cmap: str | None, folder: str | Path | None = None) -> Path:
    """A zip of what is shown: the labelled figure of all shown methods (shown.png), each method's folder as
    Explanation.save writes it (overlays, labelled PNGs, raw maps, manifest.json) and a manifest.json naming
    them; returns the zip's path (in a new temporary folder unless `folder` is given)."""
    if not session.results:
        raise HeatlensError("nothing is shown yet: explain a photo first, then download it")
    folder = Path(folder or tempfile.mkdtemp(prefix="heatlens-app-"))
    stem = Path(session.name).stem or "photo"
    path = folder / f"{stem}_heatlens.zip"
    with tempfile.TemporaryDirectory() as work, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        root = Path(work)
        results = list(session.results.values())
        display.save(display.figure(results, alpha=alpha, cmap=cmap), root / "shown.png")
        for result in results:
            result.save(root / result.method, alpha, cmap, stems=[stem])
        manifest = {"schema_version": 1, "source": "heatlens app", "heatlens": __version__, "photo": session.name,
                    "size": list(session.photo.shape[:2]), "shown": "shown.png", "alpha": alpha,
                    "cmap": cmap or "auto", "methods": {r.method: f"{r.method}/manifest.json" for r in results}}
        (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        for file in sorted(root.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(root).as_posix())
    return path
