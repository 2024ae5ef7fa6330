"""The app's 'Open a run' tab: a `heatlens run` output folder's rows in a table filtered by predicted class and by
right or wrong, the selected row's stored maps over its photo, the per-class summary and the failed images. The
work is heatlens.app.runs'; this module lays it out and wires its events. The opened run lives in a gr.State.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import gradio as gr

from ..errors import HeatlensError, first_line
from . import runs

BUTTONS: tuple[Literal["download", "fullscreen"], ...] = ("download", "fullscreen")  # no "share"

ALPHA = 0.4  # the opacity of a row's maps over its photo, as in the explain tab's default


@dataclass(frozen=True)
class RunPage:
    """The tab's components the handlers read and update."""

    state: gr.State
    folder: gr.Textbox
    status: gr.HTML
    facts: gr.HTML
    classes: gr.Dropdown
    outcome: gr.Radio
    rows: gr.Dataframe
    tiles: gr.Gallery
    summary: gr.Dataframe
    means: gr.Gallery
    errors: gr.Dataframe

    def everything(self) -> list[gr.components.Component]:
        """What opening a run updates."""
        return [self.state, self.status, self.facts, self.classes, self.outcome, self.rows, self.tiles,
                self.summary, self.means, self.errors]


def run_tab(blocks: gr.Blocks, run: str | Path | None = None) -> RunPage:
    """Lay the tab out (inside the caller's gr.Tab) and wire it; `run` is opened whenever the page loads."""
    state = gr.State(None)
    gr.Markdown("Open the output folder of `heatlens run` (its `--out`): its rows, each row's stored maps over its "
                "photo, and the per-class summary `heatlens report` shows. No model runs for this.")
    with gr.Row():
        folder = gr.Textbox(str(run) if run else "", label="run folder on this machine", scale=4,
                            placeholder="e.g. runs/audit (the folder that holds run.json and shards/)",
                            elem_id="run-folder")
        opening = gr.Button("Open the run", variant="primary", scale=1, elem_id="open-run")
    status = gr.HTML(_note("Type a run folder and open it."), elem_id="run-status")
    facts = gr.HTML("", elem_id="run-facts")
    with gr.Row():
        classes = gr.Dropdown([], label="predicted class", elem_id="run-class", interactive=True)
        outcome = gr.Radio(list(runs.OUTCOMES), value="all", label="right or wrong (needs labels)",
                           elem_id="run-outcome", interactive=False)
    with gr.Row():
        rows = gr.Dataframe(headers=["id", "path", "predicted", "target", "score"], interactive=False, wrap=True,
                            max_height=520, elem_id="run-rows", label="rows (click one to see its maps)", scale=3)
        tiles = gr.Gallery(label="the selected row's stored maps", columns=1, format="png", object_fit="contain",
                           height="auto", elem_id="run-tiles", elem_classes=["heatlens-tiles"], scale=2,
                           buttons=list(BUTTONS))
    with gr.Accordion("Per predicted class (as heatlens report shows it)", open=True, elem_id="run-summary-panel"):
        summary = gr.Dataframe(headers=runs.CLASS_HEADINGS, interactive=False, elem_id="run-summary")
        means = gr.Gallery(label="mean map per predicted class", columns=8, format="png", object_fit="contain",
                           height="auto", elem_id="run-means", buttons=list(BUTTONS))
    with gr.Accordion("Images the run could not explain", open=False, elem_id="run-errors-panel"):
        errors = gr.Dataframe(headers=["id", "path", "reason"], interactive=False, wrap=True, elem_id="run-errors")
    page = RunPage(state, folder, status, facts, classes, outcome, rows, tiles, summary, means, errors)
    act = RunHandlers(page)
    opening.click(act.open, [folder], page.everything())
    folder.submit(act.open, [folder], page.everything())
    classes.input(act.filter, [state, classes, outcome], [rows, status])
    outcome.input(act.filter, [state, classes, outcome], [rows, status])
    rows.select(act.show, [state], [tiles, status])
    if run:
        blocks.load(act.open, [folder], page.everything())
    return page


def _note(text: str) -> str:
    return f"<p class='heatlens-note'>{html.escape(text)}</p>"


def _error(exc: Exception) -> str:
    """A failure's line: the user's (a HeatlensError) as it is, anything else named as a bug of heatlens."""
    text = first_line(exc) if isinstance(exc, HeatlensError) else \
        f"internal error, a bug in heatlens: {type(exc).__name__}: {first_line(exc)} (please report it)"
    return f"<p class='heatlens-error'>error: {html.escape(text)}</p>"


def _facts(opened: runs.OpenedRun) -> str:
    items = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in runs.facts(opened))
    return f"<ul class='heatlens-note'>{items}</ul>"


class RunHandlers:
    """The tab's event handlers: each returns the updates of the RunPage's components (a dict), with a failure
    said in the tab's status line instead of raised."""

    def __init__(self, page: RunPage) -> None:
        self.page = page

    def open(self, folder: str | None) -> dict:
        """Open the run in `folder`: its facts, rows, per-class summary and failed images; nothing selected."""
        page = self.page
        try:
            opened = runs.open_run(folder or "")
            listed, matching = runs.table(opened)
        except Exception as exc:
            return {page.state: None, page.status: _error(exc), page.facts: "",
                    page.classes: gr.update(choices=[], value=None), page.outcome: gr.update(value="all",
                                                                                             interactive=False),
                    page.rows: {"headers": ["id", "path", "predicted", "target", "score"], "data": []},
                    page.tiles: [], page.summary: None, page.means: [], page.errors: None}
        return {page.state: opened, page.status: _note(self._count(opened, matching, len(listed))),
                page.facts: _facts(opened),
                page.classes: gr.update(choices=runs.class_choices(opened), value=runs.ALL_CLASSES),
                page.outcome: gr.update(value="all", interactive=opened.labelled),
                page.rows: {"headers": runs.headings(opened), "data": listed}, page.tiles: [],
                page.summary: {"headers": runs.CLASS_HEADINGS, "data": runs.class_rows(opened)},
                page.means: runs.mean_maps(opened),
                page.errors: {"headers": ["id", "path", "reason"], "data": runs.errors(opened)}}

    def filter(self, opened: runs.OpenedRun | None, class_id: int | None, outcome: str) -> dict:
        """The rows of one predicted class and outcome."""
        page = self.page
        if opened is None:
            return {page.status: gr.skip()}
        try:
            listed, matching = runs.table(opened, runs.ALL_CLASSES if class_id is None else int(class_id),
                                          outcome or "all")
        except Exception as exc:
            return {page.status: _error(exc)}
        return {page.rows: {"headers": runs.headings(opened), "data": listed},
                page.status: _note(self._count(opened, matching, len(listed)))}

    def show(self, opened: runs.OpenedRun | None, event: gr.SelectData) -> dict:
        """The clicked row's stored maps over its photo, one labelled tile per method and target."""
        page = self.page
        if opened is None or not event.row_value:
            return {page.status: gr.skip()}
        try:
            row_id = int(event.row_value[0])
            tiles = runs.row_tiles(opened, row_id, ALPHA)
        except Exception as exc:
            return {page.tiles: [], page.status: _error(exc)}
        path = next((r["path"] for r in opened.rows if r["id"] == row_id), "")
        return {page.tiles: tiles, page.status: _note(f"row {row_id}: {Path(path).name}, the maps the run stored "
                                                      f"({', '.join(opened.methods)}).")}

    @staticmethod
    def _count(opened: runs.OpenedRun, matching: int, listed: int) -> str:
        shown = f"{matching} rows" if listed == matching else f"the first {listed} of {matching} rows (filter to " \
                                                                "narrow them)"
        return f"run {opened.folder.name}: {shown}; click one to see its maps."

