"""The HTML report of a run folder: what ran, how it went (images, errors, accuracy on labelled images), and per
method a table of the predicted classes with their mean map, accuracy, map concentration and metric means. One
self-contained file, like heatlens.report's, from the shards alone (no model is loaded)."""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np
from PIL import Image

from .. import report_html as page
from ..errors import HeatlensError
from ..metrics import METRICS
from ..overlay import color_table
from .meter import speed
from .summary import TOP_SHARE, ClassSummary, RunOverview, overview

MAP_SIDE = 96  # the mean maps' side in pixels
SHOWN_ERRORS = 200  # failed images listed in the page (errors.csv has them all)


def report_run(folder: str | os.PathLike, out: str | os.PathLike, title: str | None = None) -> Path:
    """Write the report of the run in `folder` to the HTML file `out` (moved into place whole); its path."""
    summary = overview(Path(folder))
    path = Path(out).expanduser()
    if path.is_dir():
        raise HeatlensError(f"the report's path '{out}' is a folder: give a file name, e.g. "
                            f"{Path(out) / 'report.html'}")
    title = title or f"heatlens run report: {summary.record['settings']['model']}"
    metrics = list(summary.record["settings"]["plan"].get("metrics", ()))
    text = page.page_start(title) + _header(summary, title) + "".join(
        _class_table(method, classes, metrics) for method, classes in summary.classes.items()) + _errors(summary) \
        + "</body></html>\n"
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise HeatlensError(f"cannot write the report to '{path}': {exc.strerror or exc}; free some space or "
                            "choose another --out") from None
    return path.resolve()


def _e(value: object) -> str:
    return html.escape(str(value))


def _header(summary: RunOverview, title: str) -> str:
    record, settings = summary.record, summary.record["settings"]
    session = record.get("last_session", {})
    accuracy = (f"{summary.accuracy:.1%} of {summary.labelled} labelled images (top-1)"
                if summary.accuracy is not None else "no labels (give a manifest with a label column)")
    facts = [("model", settings["model"]), ("source", settings["source"]),
             ("methods", ", ".join(settings["plan"]["methods"])), ("target", settings["plan"]["target"]),
             ("layers", ", ".join(f"{m}: {layer}" for m, layer in record.get("layers", {}).items()) or "-"),
             ("images", f"{summary.rows} explained, {len(summary.errors)} failed, of {record['images']}"
                        + ("" if record.get("complete") else " (the run is not finished: resume it)")),
             ("accuracy", accuracy),
             ("last session", f"{session.get('images', 0)} images in {session.get('seconds', 0)} s, "
                              f"{speed(session.get('images_per_s', 0))}" if session else "-"),
             ("concentration", f"the share of a map's positive mass in its {TOP_SHARE:.0%} highest cells "
                               f"({TOP_SHARE:.1f}: spread evenly, 1: all there)")]
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    return f'<header><h1>{_e(title)}</h1><dl class="facts">{rows}</dl></header>\n'


def _class_table(method: str, classes: list[ClassSummary], metrics: list[str]) -> str:
    """One method's predicted classes, largest first: mean map, images, accuracy, concentration, metric means;
    under it the colour scale of the mean maps."""
    body = []
    for summary in classes:
        accuracy = f"{summary.accuracy:.1%} of {summary.labelled}" if summary.accuracy is not None else "-"
        spread = f"{summary.concentration:.2f}" if summary.concentration is not None else "-"
        picture = page.data_uri(mean_map_picture(summary.mean_map), "webp", 85)
        body.append(f'<tr><td><img src="{picture}" width="{MAP_SIDE}" height="{MAP_SIDE}" alt="mean map of '
                    f'{_e(summary.name)}"></td><td>{_e(summary.name)} (id {summary.id})</td><td>{summary.images}</td>'
                    f"<td>{accuracy}</td><td>{spread}</td>{_metric_cells(summary, metrics)}</tr>")
    head = "<tr><th>mean map</th><th>predicted class</th><th>images</th><th>right (labelled)</th>" \
           "<th>concentration</th>" + "".join(f"<th>{_e(m)} (mean{_direction(m)})</th>" for m in metrics) + "</tr>"
    return (f'<section class="classes"><h2>{_e(method)}: per predicted class</h2><table class="params">{head}'
            f"{''.join(body)}</table>{_scale()}</section>\n")


def _direction(metric: str) -> str:
    info = METRICS.get(metric)
    return "" if info is None else f", {'higher' if info.higher_is_better else 'lower'} is better"


def _metric_cells(summary: ClassSummary, metrics: list[str]) -> str:
    means = [summary.metric(m) for m in metrics]
    return "".join(f"<td>{mean:.4g}</td>" if mean is not None else "<td>-</td>" for mean in means)


def _scale() -> str:
    """The mean maps' colour scale: jet from 0 to each class's own peak."""
    colours = color_table("jet")[np.linspace(0, 255, 9).astype(int)].tolist()
    stops = ", ".join(f"rgb({r},{g},{b})" for r, g, b in colours)
    return (f'<div class="scale"><span>0</span><span class="bar" style="display:inline-block;width:{2 * MAP_SIDE}px;'
            f'height:10px;margin:0 6px;vertical-align:middle;background:linear-gradient(to right, {stops})"></span>'
            "<span>the class's peak</span> <span class='note'>(each map scaled to its own peak before averaging)"
            "</span></div>")


def mean_map_picture(mean_map: np.ndarray, side: int = MAP_SIDE) -> Image.Image:
    """A mean map (values up to 1) in jet, blown up to `side` pixels without smoothing (its cells stay visible);
    the report and the app's run tab draw them alike."""
    peak = float(np.abs(mean_map).max())
    levels = np.clip(np.rint(255 * mean_map / peak if peak > 0 else mean_map * 0), 0, 255).astype(np.uint8)
    picture = Image.fromarray(color_table("jet")[levels])
    return picture.resize((side, side), Image.Resampling.NEAREST)


def _errors(summary: RunOverview) -> str:
    if not summary.errors:
        return ""
    shown = "".join(f"<li>{_e(e['path'])}: {_e(e['error'])}</li>" for e in summary.errors[:SHOWN_ERRORS])
    more = f"<p class='note'>and {len(summary.errors) - SHOWN_ERRORS} more in errors.csv</p>" \
        if len(summary.errors) > SHOWN_ERRORS else ""
    return f"<section><h2>{len(summary.errors)} image(s) could not be explained</h2><ul>{shown}</ul>{more}</section>\n"
