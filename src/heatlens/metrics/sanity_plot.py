"""The picture of a model-randomisation result that a reader understands without the paper: the map over the photo
at a few randomisation steps ('original', '+ classifier randomised', ...) beside the similarity curve (Spearman and
SSIM to the original map against the layers randomised, top down)."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import display
from ..errors import HeatlensError
from ..explanation import Explanation
from .core import MetricResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SHOWN_STEPS = 6
COLUMNS = 4
CAPTION = ("A trustworthy method's map falls apart as the model's weights are randomised (its similarity to the "
           "original drops towards 0); a map that stays the same does not depend on what the model learnt.")
LABELS = {"spearman": "Spearman rank correlation", "ssim": "SSIM"}


def figure(result: MetricResult, explanation: Explanation, image: int = 0, target: int = 0,
           steps: list[int] | None = None, tile: float = 2.4) -> Figure:
    """Image `image`'s map for target `target` over the photo at `steps` (by default up to six: the original, the
    first step, then evenly to the last), each titled with what was randomised and its Spearman correlation, beside the
    Spearman and SSIM curves over all steps; `explanation` is the one the result measured (its photos)."""
    from matplotlib.figure import Figure

    curves = _checked(result, explanation, image, target)
    names = [str(name) for name in curves["layers"]]
    chosen = _chosen_steps(len(names), steps)
    shown = _step_maps(explanation, curves["maps"][image, target, chosen], image)
    style = display.style(shown)
    tiles: list[tuple[np.ndarray, str, display.Key | None]] = [
        (explanation.images[image], display.image_name(explanation, image), None)]
    for slot, step in enumerate(chosen):
        picture, key = display.overlay_tile(shown, 0, slot, style)
        title = "original" if step == 0 else f"+ {names[step]} randomised"
        title = f"{textwrap.fill(title, 24)}\nSpearman {curves['spearman'][image, target, step]:.2f}"
        tiles.append((picture, title, dataclasses.replace(key, label="map / its peak")))
    rows = -(-len(tiles) // COLUMNS)
    columns = min(COLUMNS, len(tiles))
    high = tile * min(1.5, shown.images.shape[1] / shown.images.shape[2])
    figure_ = Figure(figsize=(tile * columns + 5.5, max((high + 1.0) * rows, 4.5) + 0.9), layout="constrained")
    outer = figure_.add_gridspec(1, 2, width_ratios=[tile * columns, 5.0])
    grid = outer[0, 0].subgridspec(2 * rows, columns, height_ratios=[high, 0.1] * rows)
    for n, (picture, title, bar) in enumerate(tiles):
        r, c = divmod(n, COLUMNS)
        ax, bar_ax = figure_.add_subplot(grid[2 * r, c]), figure_.add_subplot(grid[2 * r + 1, c])
        ax.set_axis_off()
        ax.set_anchor("S")  # the picture sits on its colour bar
        ax.imshow(picture, interpolation="antialiased")
        ax.set_title(title, fontsize=9)
        if bar is None:
            bar_ax.set_axis_off()
        else:
            display.colour_bar(figure_, bar_ax, bar)
    _curve(figure_.add_subplot(outer[0, 1]), curves, names, image, target, chosen)
    target_name = explanation.targets.names[image][target]
    figure_.suptitle(f"Model randomisation (Adebayo et al. 2018): {display.method_line(explanation)} on "
                     f"{explanation.model}, {display.image_name(explanation, image)}, class {target_name}",
                     fontsize=11)
    figure_.supxlabel(textwrap.fill(CAPTION, int(9 * figure_.get_size_inches()[0])), fontsize=9)
    return figure_


def save(result: MetricResult, explanation: Explanation, path: str | Path, dpi: int = 100, **options: Any) -> Path:
    """Write `figure(result, explanation, **options)` as a PNG; returns the path."""
    return display.save(figure(result, explanation, **options), path, dpi=dpi)


def _curve(ax: Axes, curves: dict, names: list[str], image: int, target: int, chosen: list[int]) -> None:
    """Spearman and SSIM against the steps, the steps shown as tiles marked, a dashed line at 0."""
    steps = np.arange(len(names))
    for name, style in (("spearman", "-o"), ("ssim", "-s")):
        values = curves[name][image, target]
        line = ax.plot(steps, values, style, markersize=3, label=LABELS[name])[0]
        ax.plot(steps[chosen], values[chosen], "o", markersize=8, fillstyle="none", color=line.get_color())
    ax.axhline(0.0, color="grey", linestyle="--", linewidth=1)
    ax.set_ylim(-1.05, 1.05)
    every = max(1, -(-len(names) // 24))
    ax.set_xticks(steps[::every], [names[s] for s in steps[::every]], rotation=60, ha="right", fontsize=7)
    ax.set_xlabel("layers randomised, one more per step, from the output down")
    ax.set_ylabel("similarity to the original map")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3)


def _checked(result: MetricResult, explanation: Explanation, image: int, target: int) -> dict:
    if result.metric != "model_randomisation":
        raise HeatlensError(f"sanity_plot draws model_randomisation results. Received: {result.metric}")
    if result.method != explanation.method or len(explanation.maps) != result.scores.shape[0]:
        raise HeatlensError(f"this explanation is not the one the result measured: {explanation.method} of "
                            f"{len(explanation.maps)} image(s), the result {result.method} of {result.scores.shape[0]}")
    n, k = result.scores.shape
    if not (0 <= image < n and 0 <= target < k):
        raise HeatlensError(f"image and target must be in 0..{n - 1} and 0..{k - 1}. Received: {image}, {target}")
    if image >= len(result.curves["maps"]):
        raise HeatlensError(f"the result keeps the maps of its first {len(result.curves['maps'])} images only; "
                            f"measure image {image} on its own to draw it")
    return result.curves


def _chosen_steps(count: int, steps: list[int] | None) -> list[int]:
    if steps is None:  # the original, the first step (the classifier, where most maps change) and then evenly
        later = np.round(np.linspace(1, count - 1, max(1, min(count, SHOWN_STEPS) - 1))) if count > 1 else ()
        return sorted({0, *(int(s) for s in later)})
    if not steps or any(not 0 <= s < count for s in steps):
        raise HeatlensError(f"steps must be step numbers in 0..{count - 1}. Received: {steps!r}")
    return list(steps)


def _step_maps(explanation: Explanation, maps: np.ndarray, image: int) -> Explanation:
    """An Explanation of one photo whose 'targets' are the steps' maps (on the model's grid, over its box)."""
    return dataclasses.replace(explanation, maps=np.asarray(maps, np.float32)[None], attributions=None,
                               _images=explanation.images[image : image + 1], _inputs=None)
