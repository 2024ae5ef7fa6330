"""Plots of what an Evaluation's metrics measured: per metric with curves (deletion, insertion, ...) one axis with
each method's mean curve over the images, its 95% bootstrap band, and its score in the legend."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .evaluate import Evaluation, curve_arrays, mean_curves
from .images import output_folder
from .metrics import get_metric

if TYPE_CHECKING:
    from matplotlib.typing import LineStyleType

AXIS_LABELS = {
    "deletion": "fraction of pixels removed, most relevant first",
    "insertion": "fraction of pixels put back into the baseline, most relevant first",
    "morf": "fraction of pixels imputed, most relevant first",
    "lerf": "fraction of pixels imputed, least relevant first",
    "road": "fraction of pixels imputed (morf: most relevant first, lerf: least relevant first)",
    "model_randomisation": "layers randomised so far, from the output down",
}
SCORE_LABELS = {"probability": "target class's probability", "logit": "target class's logit"}
SIMILARITY_LABEL = "similarity to the original map"
TITLE_WIDTH = 90  # characters per title line at the figure's width
MAX_TICKS = 30  # a text axis (layer names) labels at most this many of its points
RANDOMISED_IMAGES = 3  # model_randomisation pictures: per method, of this many images at most
LINESTYLES: tuple[LineStyleType, ...] = ("-", "--", ":", "-.")


def curve_metrics(evaluation: Evaluation) -> list[str]:
    """The metrics of an evaluation that measured curves (arrays along an axis) for every method."""
    return [k for k in evaluation.metrics if all(curve_arrays(evaluation, m, k)[1] for m in evaluation.methods)]


def curve_figure(evaluation: Evaluation, metric: str) -> Any:
    """A matplotlib Figure: each method's mean curve of `metric` over the images on one axis (one colour per
    method; one line style per curve where the metric measures several, e.g. ROAD's morf and lerf), with its 95%
    bootstrap band (the table's resamples) and its mean score (the AUC for deletion and insertion) in the legend."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    info = get_metric(metric)
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.subplots()
    score = "AUC" if "AUC" in info.summary else metric
    axis_key, keys, handles = None, [], []
    for method, colour in zip(evaluation.methods, _colours(len(evaluation.methods)), strict=True):
        curves = mean_curves(evaluation, method, metric)
        axes, measured = curve_arrays(evaluation, method, metric)
        keys = list(measured)
        for i, key in enumerate(keys):
            axis_key = _axis_for(axes, measured[key].shape[-1])
            x, shown = _positions(ax, np.asarray(axes[axis_key])), curves[key]
            ax.plot(x, shown["mean"], LINESTYLES[i % len(LINESTYLES)], color=colour, linewidth=1.8)
            ax.fill_between(x, shown["low"], shown["high"], color=colour, alpha=0.18, linewidth=0)
        mean = evaluation.cell(method, metric).mean
        handles.append(Line2D([], [], color=colour, linewidth=1.8, label=f"{method} ({score} {mean:.3f})"))
    if len(keys) > 1:
        handles += [Line2D([], [], color="0.35", linestyle=LINESTYLES[i % len(LINESTYLES)], label=key)
                    for i, key in enumerate(keys)]
    better = "higher" if info.higher_is_better else "lower"
    lines = [f"{metric}: {info.summary}; {better} {score} is better",
             f"{evaluation.model}, mean over {len(evaluation.images)} image(s); band: 95% bootstrap interval"]
    ax.set_title("\n".join(part for line in lines for part in textwrap.wrap(line, TITLE_WIDTH)), fontsize=10)
    ax.set_xlabel(AXIS_LABELS.get(metric, axis_key or ""))
    ax.set_ylabel(SIMILARITY_LABEL if info.family == "sanity" else
                  SCORE_LABELS.get(_score_kind(evaluation, metric), "score"))
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, fontsize=9, loc="best")
    return fig


def save_plots(evaluation: Evaluation, directory: str | Path, randomised_images: int = RANDOMISED_IMAGES) -> list[Path]:
    """One PNG per metric with curves (curves-deletion.png, ...) in `directory` and, where model_randomisation was
    measured, per method the maps at its randomisation steps beside their similarity curve for the first
    `randomised_images` images (randomisation-gradcam-cat.png, ...); returns their paths."""
    folder = output_folder(directory)
    paths = []
    for metric in curve_metrics(evaluation):
        path = folder / f"curves-{metric}.png"
        curve_figure(evaluation, metric).savefig(path, dpi=100)
        paths.append(path)
    if "model_randomisation" in evaluation.metrics:
        from .metrics import sanity_plot

        for method in evaluation.methods:
            for image in range(min(randomised_images, len(evaluation.images))):
                group, position = evaluation.located(image)
                path = folder / f"randomisation-{method}-{_slug(evaluation.images[image])}.png"
                paths.append(sanity_plot.save(evaluation.results[method]["model_randomisation"][group],
                                              evaluation.explanations[method][group], path, image=position))
    return paths


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in Path(name).stem) or "image"


def _positions(ax: Any, axis: np.ndarray) -> np.ndarray:
    """Where an axis's points go: at their values, or for text (layer names) at 0, 1, ... with the names as tick
    labels (every n-th where there are many)."""
    if axis.dtype.kind in "biuf":
        return axis
    every = max(1, -(-len(axis) // MAX_TICKS))
    places = np.arange(len(axis))
    ax.set_xticks(places[::every], [str(v) for v in axis[::every]], rotation=90, fontsize=7)
    return places


def _axis_for(axes: dict[str, np.ndarray], length: int) -> str:
    return next(k for k, v in axes.items() if len(v) == length)


def _score_kind(evaluation: Evaluation, metric: str) -> str:
    return str(evaluation.params.get("metrics", {}).get(metric, {}).get("score", ""))


def _colours(count: int) -> list[Any]:
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return [palette(i % 10) for i in range(count)]
