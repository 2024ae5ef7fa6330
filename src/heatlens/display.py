"""One display for every picture heatlens draws: `overlay()`, `plot()`, the notebook, `save()`, the CLI and the
README gallery all colour a method's maps the same way and label them the same way.

Colours. Maps that are >= 0 by construction (the CAM family, saliency, guided backprop, SmoothGrad) go on a
sequential map, jet by default as in the Grad-CAM tutorials, 0 at the bottom; RISE's (expected scores, with an
offset) are stretched min..max. Signed maps (SIGNED_METHODS, or any map with negative values) go on a
diverging map ('bwr') centred on 0: white is no effect, red speaks for the class, blue against it.

Clipping. A few extreme values would wash a map out, so each map is divided by a clipping value and clipped
there: for signed region maps (LIME, SHAP partition, occlusion, CAM) the 99.9th percentile of |values|
(SIGNED_PERCENTILE, shap's image plot), for pixel-level maps (methods with pixel attributions, whose tails
are heavy) captum's rule: the value at which the sorted |values| reach 98% of their total (2% outliers,
ATTRIBUTION_PERCENTILE). Grad-CAM-style maps keep the tutorials' division by the peak. `percentile=` sets the
number (None: the peak).

Pixel attributions (N, K, h, w, C) are shown as captum's visualize_image_attr shows them by default: |the
channel sum|, clipped by the 2% rule, grey (`view='attributions'`, the default for methods that have them).
"""

from __future__ import annotations

import base64
import html
import io
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

from . import overlay as ov
from .errors import HeatlensError
from .images import output_folder
from .preprocess import scaled_box

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .explanation import Explanation

SIGNED_METHODS = frozenset({"cam", "lime", "shap_partition", "occlusion", "gradient_x_input",
                            "integrated_gradients", "expected_gradients"})
UNSIGNED_CMAP = "jet"  # the Grad-CAM tutorials' map
SIGNED_CMAP = "bwr"  # blue (against) - white (0) - red (for)
ATTRIBUTION_CMAP = "gray"  # pixel attributions: black = none, white = the strongest
SIGNED_PERCENTILE = 99.9
ATTRIBUTION_PERCENTILE = ov.ATTRIBUTION_PERCENTILE
TILE_SIDE = 512  # tiles of a figure are drawn on copies of the photo no longer than this
SAVED_SIDE = 1024  # the labelled PNG of one image and target
THUMBNAIL_SIDE = 256  # the notebook's HTML thumbnails
NOTEBOOK_SIDE = 512  # the notebook's PNG

Percentile = float | None | Literal["auto"]


@dataclass(frozen=True)
class Style:
    """How one result's maps are coloured: `signed` (diverging, 0 in the middle) or not, the colour map, the
    clipping percentile of |values| (None: the peak) and `minmax` (RISE: stretched between its extremes)."""

    signed: bool
    cmap: str
    percentile: float | None
    minmax: bool = False
    mass: bool = False


def has_attributions(result: Explanation) -> bool:
    """Whether the result holds pixel attributions (N, K, h, w, C)."""
    return result.attributions is not None and result.attributions.ndim == 5


def style(result: Explanation, cmap: str | None = None, percentile: Percentile = "auto") -> Style:
    """The display of a result's maps: signed for SIGNED_METHODS or maps with negative values; `cmap` None
    picks jet (unsigned) or bwr (signed); `percentile` 'auto' picks the module's documented default."""
    if percentile != "auto" and percentile is not None and not (
            isinstance(percentile, int | float) and not isinstance(percentile, bool) and 0 < percentile <= 100):
        raise HeatlensError(f"percentile must be a number in (0, 100], None (the peak) or 'auto'. Received: "
                            f"{percentile!r}")
    signed = result.method in SIGNED_METHODS or bool(np.nanmin(result.maps, initial=0.0) < 0)
    if cmap is not None:
        ov.color_table(cmap)  # an unknown name is refused here, before anything is drawn
    pixel_level = has_attributions(result)
    if percentile == "auto":
        percentile = ATTRIBUTION_PERCENTILE if pixel_level else SIGNED_PERCENTILE if signed else None
    minmax = not signed and result.extras.get("display_scale") == "minmax"
    return Style(signed, cmap or (SIGNED_CMAP if signed else UNSIGNED_CMAP), percentile, minmax, pixel_level)


def scaling(result: Explanation, i: int, k: int, shown: Style) -> ov.Scaling:
    """Image i's map for target k scaled for display, once for the photo and any downscaled copy of it. The
    peak and min..max are those of the map on the photo (where the model saw it, as before); a percentile
    is taken on the map's own grid (a photo-sized map on an even subsample), not on its upsampled copy."""
    if shown.minmax or shown.percentile is None:
        whole = result._photo_map(i, k).scaling("minmax" if shown.minmax else "peak",
                                                ov.seen_slices(result.images.shape[1:3], result._box()))
        return whole if shown.minmax else ov.Scaling(0.0, whole.span, centred=shown.signed)
    m = result.maps[i, k]
    if m.shape == result.images.shape[1:3] and result.input_box is not None:
        m = m[ov.seen_slices(m.shape, result.input_box)]
    return ov.clipped_scaling(m, shown.percentile, centred=shown.signed, mass=shown.mass)


@dataclass(frozen=True)
class Key:
    """What a tile's colours mean: the colour map, the values at its two ends, whether the ends are clipped,
    and the label of its colour bar."""

    cmap: str
    low: float
    high: float
    label: str
    clipped: bool = False


def map_key(result: Explanation, shown: Style, scaled: ov.Scaling) -> Key:
    """The colour bar of a map tile, in the map's own units."""
    from .figures import SCORE_UNITS, value_label

    label = value_label(result) if shown.signed or result.method in SCORE_UNITS else \
        f"{result.method}: evidence for the class (0 = none)"
    span = scaled.span or 1.0
    low, high = (-span, span) if shown.signed else (scaled.low, scaled.low + span)
    return Key(shown.cmap, low, high, label, clipped=shown.percentile not in (None, 100) and not shown.minmax)


def overlay_tile(result: Explanation, i: int, k: int, shown: Style, alpha: float = 0.4,
                 side: int = TILE_SIDE) -> tuple[np.ndarray, Key]:
    """Image i's overlay for target k on a copy of the photo no longer than `side` (H', W', 3) uint8, and
    its colour key. The map is upsampled straight onto the small copy: no photo-sized map is made."""
    photo = result.images[i]
    size, factor = shrunk_size(photo.shape[:2], side)
    small = photo if factor == 1 else np.asarray(Image.fromarray(photo).resize(size[::-1], Image.Resampling.BOX))
    box = scaled_box(result._box(), factor)
    m = result.maps[i, k]
    if m.shape == photo.shape[:2] and factor != 1:
        m = np.asarray(Image.fromarray(np.ascontiguousarray(m, np.float32), "F").resize(size[::-1],
                                                                                     Image.Resampling.BOX))
    scaled = scaling(result, i, k, shown)
    out = np.empty_like(small)
    bands = ov.overlay_bands(small, ov.PhotoMap(m, size, box), alpha, shown.cmap, scaled,
                             box if result.input_box is not None else None)
    for start, band in bands:
        out[start : start + len(band)] = band
    return out, map_key(result, shown, scaled)


def attribution_tile(result: Explanation, i: int, k: int, percentile: Percentile = "auto") -> tuple[np.ndarray, Key]:
    """Image i's pixel attributions for target k on the model's input as captum shows them by default: |the
    channel sum|, clipped where 98% (`percentile`) of its total is reached, grey; and its colour key."""
    chosen = ATTRIBUTION_PERCENTILE if percentile in ("auto", None) else float(percentile)
    if result.attributions is None:
        raise HeatlensError(f"method '{result.method}' has no pixel attributions to show; use view='overlay'")
    a = result.attributions[i, k].astype(np.float32)
    span = ov.clipped_scaling(np.abs(a.sum(axis=-1)), chosen, mass=True).span or 1.0
    key = Key(ATTRIBUTION_CMAP, 0.0, span, f"|{result.method}|, summed over the colour channels", clipped=True)
    return ov.attribution_rgb(a, "abs", chosen), key


def shrunk_size(size: tuple[int, int], side: int) -> tuple[tuple[int, int], float]:
    """(H', W') no longer than `side` on the long side, keeping the aspect, and the factor applied (<= 1)."""
    factor = min(1.0, side / max(size))
    return (max(1, round(size[0] * factor)), max(1, round(size[1] * factor))), factor


def percent(p: float) -> str:
    """A probability as the figures print it: 87%, 4.2%, 0.31%."""
    return f"{p:.0%}" if p >= 0.095 else f"{p:.1%}" if p >= 0.0095 else f"{p:.2%}"


def target_title(result: Explanation, i: int, k: int, method: bool = False) -> str:
    """A tile's title: the class name and its probability (for custom scores, score_fn=, the score itself: a
    softmax over a detection's or a region's scores means nothing), and with `method` the method and layer above."""
    name = result.targets.names[i][k]
    if "score_fn" in result.params:
        line = f"{name} {float(result.targets.scores[i][k]):.4g}"
        return f"{method_line(result)}\n{line}" if method else line
    probability = result.targets.probabilities[i][k] if result.targets.probabilities is not None else None
    line = name if probability is None or not np.isfinite(probability) else f"{name} {percent(float(probability))}"
    return f"{method_line(result)}\n{line}" if method else line


def method_line(result: Explanation) -> str:
    """The method and, where one was used, the layer: 'gradcam @ head'."""
    return f"{result.method} @ {result.layer}" if result.layer else result.method


def image_name(result: Explanation, i: int, names: Sequence[str] | None = None) -> str:
    """The name of image i: given, recorded on the result (result.names), or 'image i'."""
    known = names or result.names
    return str(known[i]) if known is not None and i < len(known) else f"image {i}"


@dataclass
class _Tile:
    picture: np.ndarray
    title: str
    key: Key | None = None


def _tiles(results: Sequence[Explanation], images: Sequence[int] | None, targets: Sequence[int] | None,
           alpha: float, cmap: str | None, percentile: Percentile, view: str, photo: bool,
           names: Sequence[str] | None, side: int) -> tuple[list[list[_Tile]], bool]:
    if view not in ("auto", "overlay", "attributions"):
        raise HeatlensError(f"view must be 'auto', 'overlay' or 'attributions'. Received: {view!r}")
    several_methods = len({method_line(r) for r in results}) > 1
    rows = []
    for r in results:
        shown = style(r, cmap, percentile)
        pixels = view == "attributions" or (view == "auto" and has_attributions(r))
        if pixels and not has_attributions(r):
            raise HeatlensError(f"method '{r.method}' has no pixel attributions to show; use view='overlay'")
        for i in images if images is not None else range(len(r.images)):
            row = []
            if photo:
                picture = r.images[i]
                size, factor = shrunk_size(picture.shape[:2], side)
                if factor != 1:
                    picture = np.asarray(Image.fromarray(picture).resize(size[::-1], Image.Resampling.BOX))
                row.append(_Tile(picture, image_name(r, i, names)))
            for k in targets if targets is not None else range(r.maps.shape[1]):
                picture, key = attribution_tile(r, i, k, percentile) if pixels else \
                    overlay_tile(r, i, k, shown, alpha, side)
                row.append(_Tile(picture, target_title(r, i, k, several_methods), key))
            rows.append(row)
    return rows, several_methods


def figure(results: Explanation | Sequence[Explanation], images: Sequence[int] | None = None,
           targets: Sequence[int] | None = None, alpha: float = 0.4, cmap: str | None = None,
           percentile: Percentile = "auto", view: str = "auto", photo: bool = True, columns: int | None = None,
           names: Sequence[str] | None = None, tile: float = 3.0, side: int = TILE_SIDE,
           title: str | None = None) -> Figure:
    """A labelled matplotlib Figure (not managed by pyplot, so a notebook shows it once): per image of each
    result a row with the photo (titled with its name) and one tile per target, titled with the class name
    and probability, each with a colour bar saying what its colours mean. Several methods: each tile also
    names its method and layer; one method: the figure's title does. `columns` lays all tiles out in rows of
    that many instead. `view`: 'overlay' (the map over the photo), 'attributions' (pixel attributions, see
    attribution_tile) or 'auto' (attributions where the method has them)."""
    from matplotlib.figure import Figure  # here, not at import: matplotlib's figure machinery is slow to load

    results = [results] if not isinstance(results, Sequence) else list(results)
    if not results:
        raise HeatlensError("figure() needs at least one Explanation")
    rows, several_methods = _tiles(results, images, targets, alpha, cmap, percentile, view, photo, names, side)
    if columns is not None:
        flat = [t for row in rows for t in row]
        rows = [flat[s : s + columns] for s in range(0, len(flat), columns)]
    count = max(len(row) for row in rows)
    aspect = max(t.picture.shape[0] / t.picture.shape[1] for row in rows for t in row)
    bar = 0.12  # inches: the colour bars' height, their ticks and label take about 0.7 more
    high = tile * min(aspect, 1.5)  # a tall photo's tiles get no taller than 1.5 tiles, and narrower
    wide = tile if aspect <= 1.5 else max(high / aspect, min(tile, 3.0))
    figure_ = Figure(figsize=(wide * count, (high + 1.05) * len(rows) + 0.35), layout="constrained")
    grid = figure_.add_gridspec(2 * len(rows), count, height_ratios=[high, bar] * len(rows))
    for r, row in enumerate(rows):
        for c in range(count):
            ax, bar_ax = figure_.add_subplot(grid[2 * r, c]), figure_.add_subplot(grid[2 * r + 1, c])
            ax.set_axis_off()
            if c >= len(row) or row[c].key is None:
                bar_ax.set_axis_off()
            if c >= len(row):
                continue
            ax.imshow(row[c].picture, interpolation="antialiased")
            ax.set_title(row[c].title, fontsize=10)
            key = row[c].key
            if key is not None:
                colour_bar(figure_, bar_ax, key)
    if title is None and not several_methods:
        title = f"{method_line(results[0])}  ·  {results[0].model}"
    if title:  # wrapped to the figure's width (about 9 characters an inch at this size)
        figure_.suptitle(textwrap.fill(title, max(20, int(9 * figure_.get_size_inches()[0]))), fontsize=11)
    return figure_


def colour_bar(figure_: Figure, ax: Any, key: Key) -> None:
    """A horizontal colour bar in `ax`: the key's colour map from its low to its high value, the ends marked
    as clipped where they are, labelled with what the values are."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    shown = ScalarMappable(Normalize(key.low, key.high), colormaps[key.cmap])
    bar = figure_.colorbar(shown, cax=ax, orientation="horizontal")
    signed = key.low < 0 < key.high
    ticks = [key.low, 0.0, key.high] if signed else [key.low, key.high]
    marks = [f"{v:.3g}" for v in ticks]
    if key.clipped:
        marks[0] = f"≤{marks[0]}" if signed else marks[0]
        marks[-1] = f"≥{marks[-1]}"
    bar.set_ticks(ticks, labels=marks, fontsize=7)
    label = key.label + ("\nblue: against the class, red: for it" if signed and key.cmap == SIGNED_CMAP else "")
    bar.set_label("\n".join(textwrap.fill(part, 48) for part in label.split("\n")), fontsize=7)
    bar.outline.set_visible(False)


def figure_png(figure_: Figure, max_side: int | None = None, dpi: int = 100) -> bytes:
    """A figure as PNG bytes; with `max_side`, drawn at a resolution whose long side is at most that."""
    if max_side is not None:
        dpi = min(dpi, max(20, int(max_side / max(figure_.get_size_inches()))))
    buffer = io.BytesIO()
    figure_.savefig(buffer, format="png", dpi=dpi)
    if max_side is not None:
        picture = Image.open(io.BytesIO(buffer.getvalue()))
        if max(picture.size) > max_side:
            picture.thumbnail((max_side, max_side))
            buffer = io.BytesIO()
            picture.save(buffer, format="PNG")
    return buffer.getvalue()


def save(figure_: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write a figure as a PNG (its folder created if missing); returns the path."""
    path = Path(path)
    output_folder(path.parent)
    figure_.savefig(path, dpi=dpi, format="png")
    return path


def labelled(result: Explanation, i: int, k: int, name: str | None = None, alpha: float = 0.4,
             cmap: str | None = None, percentile: Percentile = "auto", view: str = "overlay") -> Figure:
    """One image and target as a labelled figure: the overlay (drawn on a copy no longer than SAVED_SIDE),
    titled with the image's name, the method and layer, the class and its probability, and a colour bar."""
    figure_ = figure(result, images=[i], targets=[k], alpha=alpha, cmap=cmap, percentile=percentile, view=view,
                     photo=False, tile=6.0, side=SAVED_SIDE,
                     title=f"{name or image_name(result, i)}  ·  {method_line(result)}  ·  {result.model}")
    return figure_


def save_labelled(result: Explanation, i: int, k: int, path: str | Path, name: str | None = None,
                  alpha: float = 0.4, cmap: str | None = None, percentile: Percentile = "auto",
                  view: str = "overlay") -> Path:
    """Write `labelled(result, i, k, ...)` as a PNG at `path` (what the CLI writes per image and target)."""
    return save(labelled(result, i, k, name, alpha, cmap, percentile, view), path)


def _png_data(picture: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _bar_strip(key: Key) -> np.ndarray:
    return np.repeat(ov.color_table(key.cmap)[None], 8, axis=0)


def notebook_html(result: Explanation, alpha: float = 0.4, cmap: str | None = None,
                  percentile: Percentile = "auto", top: int = 5) -> str:
    """The notebook's HTML view: the short repr, then per image its thumbnails (long side <= THUMBNAIL_SIDE,
    PNG base64) with the class, probability and colour scale under each, and the model's top classes."""
    rows, _ = _tiles([result], None, None, alpha, cmap, percentile, "auto", True, None, THUMBNAIL_SIDE)
    best = result.top(top)
    parts = [f"<div><p><code>{html.escape(repr(result))}</code></p>"]
    for i, row in enumerate(rows):
        cells = []
        for t in row:
            caption = html.escape(t.title).replace("\n", "<br>")
            if t.key is not None:
                low, high = (f"{v:.3g}" for v in (t.key.low, t.key.high))
                caption += (f"<br><img src='{_png_data(_bar_strip(t.key))}' style='width:100%;height:8px' "
                            f"alt='colour scale'><br><small>{low} … {high}: {html.escape(t.key.label)}</small>")
            cells.append(f"<figure style='display:inline-block;margin:4px;vertical-align:top;"
                         f"max-width:{t.picture.shape[1]}px'><img src='{_png_data(t.picture)}' "
                         f"alt='{html.escape(t.title)}'><figcaption>{caption}</figcaption></figure>")
        parts.append("<div>" + "".join(cells) + "</div>")
        if i < len(best):
            lines = "".join(f"<tr><td>{c}</td><td>{html.escape(n)}</td><td>{percent(p)}</td></tr>"
                            for c, n, p in best[i])
            parts.append(f"<table><tr><th>id</th><th>class</th><th>probability</th></tr>{lines}</table>")
    return "".join(parts) + "</div>"
