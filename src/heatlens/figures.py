"""Figures drawn with matplotlib: signed maps as shap's image plot lays them out (photo, then one column per
class over the photo in grey, one symmetric red/blue scale with a labelled colour bar) and LIME's superpixels
outlined by sign. Each returns a matplotlib Figure; `save_figure` writes one as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from . import overlay as ov
from .errors import HeatlensError
from .images import output_folder

if TYPE_CHECKING:
    from .explanation import Explanation

AGAINST = (0.0, 0.42, 0.88)  # blue: values that lower the class's score
FOR = (0.88, 0.05, 0.15)  # red: values that raise it
GREY_ALPHA = 0.15  # the photo in grey under the signed maps, faint so the colours read
MAX_SIDE = 1000  # a longer photo is shown on every n-th pixel: no figure column shows more
PERCENTILE = 99.9  # the colour limit: this percentile of |values|, so a few extreme pixels do not wash out the rest


def signed_colormap() -> ListedColormap:
    """Blue (negative) through transparent (0) to red (positive), opacity growing with |value|."""
    t = np.linspace(-1.0, 1.0, 256)
    colours = np.where(t[:, None] < 0, AGAINST, FOR)
    return ListedColormap(np.column_stack([colours, np.abs(t)]), name="heatlens_signed")


SCORE_UNITS = {
    "shap_partition": "SHAP value (change in the class's {score})",
    "lime": "LIME weight (change in the class's {score} when the superpixel is shown)",
    "occlusion": "occlusion (drop in the class's {score} when the pixel is covered)",
    "rise": "RISE (mean {score} of the class with the pixel shown)",
    "integrated_gradients": "integrated gradients (share of the change in the class's {score} from the baseline)",
    "expected_gradients": "expected gradients (share of the change in the class's {score} from the background)",
    "gradient_x_input": "gradient x input (share of the class's {score})",
}


def score_kind(result: Explanation) -> str:
    """What the explained scores are: a custom score's name (`score_fn`), 'probability' or 'logit' as the `softmax`
    option says, else 'logit' or 'probability' where the notes say so (and only one of them), else 'score'."""
    custom = result.params.get("score_fn")
    if isinstance(custom, str) and custom:
        return f"'{custom}' score"
    if isinstance(result.params.get("softmax"), bool):
        return "probability" if result.params["softmax"] else "logit"
    text = " ".join(result.notes).lower()
    logit, probability = "logit" in text, "probabilit" in text
    if logit != probability:
        return "logit" if logit else "probability"
    return "score"


def value_label(result: Explanation) -> str:
    """The colour bar's label: what the method's values are, in the explained scores' unit."""
    unit = SCORE_UNITS.get(result.method, f"{result.method} value (from the class's {{score}})")
    return unit.format(score=score_kind(result))


def grey(photo: np.ndarray) -> np.ndarray:
    """An (H, W, 3) photo as luma (ITU-R BT.601 weights), in its own value range."""
    return photo[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def symmetric_limit(values: list[np.ndarray]) -> float:
    """The colour scale's +- limit: the PERCENTILE of |values| over all of them; 1 where all are 0."""
    magnitudes = np.concatenate([np.abs(v).ravel() for v in values])
    limit = float(np.nanpercentile(magnitudes, PERCENTILE)) if magnitudes.size else 0.0
    return limit if limit > 0 and np.isfinite(limit) else 1.0


def signed_figure(result: Explanation, vmax: float | None = None, limits: str = "figure", label: str | None = None,
                  width: float = 20.0) -> Figure:
    """Per image a row: the photo, then per target its signed values (`Explanation.signed_map`) in red
    (for) and blue (against), transparent at 0, over the photo in grey, titled with the class name.

    The scale is symmetric, +- `vmax` or the 99.9th percentile of |values|: over the whole figure with one
    colour bar (`limits='figure'`, as shap's image plot does) or per row with a colour bar each ('row').
    `label` overrides the colour bar's label (by default what the method's values are, see value_label).
    Photos longer than MAX_SIDE pixels are shown, and their limits taken, on every n-th pixel."""
    if limits not in ("figure", "row"):
        raise HeatlensError(f"limits must be 'figure' or 'row'. Received: {limits!r}")
    if vmax is not None and not (isinstance(vmax, int | float) and not isinstance(vmax, bool) and 0 < vmax < np.inf):
        raise HeatlensError(f"vmax must be a number > 0 (the colour scale runs from -vmax to vmax). Received: {vmax!r}")
    n, k = result.maps.shape[:2]
    h, w = result.images.shape[1:3]
    step = -(-max(h, w) // MAX_SIDE)
    values = [[result.signed_map(i, j, step) for j in range(k)] for i in range(n)]
    rows_limit = [vmax or symmetric_limit(row) for row in values]
    if limits == "figure":
        rows_limit = [vmax or symmetric_limit([v for row in values for v in row])] * n
    size = np.array([3.0 * (k + 1), (3.0 * h / w + 0.5) * n + 1.0])
    figure = Figure(figsize=tuple(size * min(1.0, width / size[0])), layout="constrained")
    axes = figure.subplots(n, k + 1, squeeze=False)
    cmap, text = signed_colormap(), label if label is not None else value_label(result)
    for i in range(n):
        photo = result.images[i, ::step, ::step]
        axes[i, 0].imshow(photo)
        shade = grey(photo)
        for j in range(k):
            ax = axes[i, j + 1]
            ax.imshow(shade, cmap="gray", vmin=0, vmax=255, alpha=GREY_ALPHA)
            ax.imshow(values[i][j], cmap=cmap, vmin=-rows_limit[i], vmax=rows_limit[i], interpolation="nearest")
            ax.set_title(result.targets.names[i][j])
        for ax in axes[i]:
            ax.set_axis_off()
        if limits == "row":
            _colour_bar(figure, axes[i], cmap, rows_limit[i], text)
    if limits == "figure":
        _colour_bar(figure, axes, cmap, rows_limit[0], text)
    return figure


def _colour_bar(figure: Figure, axes: Any, cmap: ListedColormap, limit: float, label: str) -> None:
    """A horizontal colour bar under `axes` (taking its room from all of them, so columns stay equal)."""
    shown = ScalarMappable(Normalize(-limit, limit), cmap)
    bar = figure.colorbar(shown, ax=np.ravel(axes).tolist(), orientation="horizontal", label=label, shrink=0.8,
                          aspect=40)
    bar.outline.set_visible(False)


def lime_figure(result: Explanation, image: int = 0, num_features: int = 10, min_weight: float = 0.0) -> Figure:
    """One LIME image: the picture with every superpixel outlined, then per target its `num_features`
    strongest superpixels (both signs) outlined and tinted green (for the class) or red (against), titled
    with the class name, and a legend for the two colours."""
    picture, segments, _, _ = result._lime_parts(0, image)
    names = result.targets.names[image]
    figure = Figure(figsize=(3.0 * (len(names) + 1), 3.0 * picture.shape[0] / picture.shape[1] + 1.2),
                    layout="constrained")
    axes = figure.subplots(1, len(names) + 1, squeeze=False)[0]
    everything = picture.copy()
    everything[ov.superpixel_edges(segments, np.unique(segments))] = (255, 255, 0)
    axes[0].imshow(everything)
    axes[0].set_title(f"{int(segments.max()) + 1} superpixels")
    for k, name in enumerate(names):
        axes[k + 1].imshow(result.lime_boundaries(k, image, num_features, min_weight=min_weight))
        axes[k + 1].set_title(name)
    for ax in axes:
        ax.set_axis_off()
    figure.legend(handles=[Patch(color=_unit_rgb(ov.POSITIVE), label="for the class"),
                           Patch(color=_unit_rgb(ov.NEGATIVE), label="against the class")],
                  loc="outside lower center", ncols=2, frameon=False)
    return figure


def save_figure(figure: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Write a figure as a PNG (its folder created if missing); returns the path."""
    path = Path(path)
    output_folder(path.parent)
    figure.savefig(path, dpi=dpi, format="png")
    return path


def save_signed(result: Explanation, path: str | Path, dpi: int = 100, **options: Any) -> Path:
    """`signed_figure(result, **options)` written as a PNG; returns the path."""
    return save_figure(signed_figure(result, **options), path, dpi)


def _unit_rgb(colour: tuple[int, int, int]) -> tuple[float, float, float]:
    """An 8-bit RGB colour as matplotlib's 0..1 floats."""
    red, green, blue = colour
    return red / 255, green / 255, blue / 255
