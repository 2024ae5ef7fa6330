"""The app's page (gr.Blocks): a photo in, its predictions, the maps of one or two methods side by side for the
chosen classes, their metric scores on demand, and a download. The work is heatlens.app.session's; this module
only lays it out and wires the events. Every result lives in the session's gr.State, never in a global.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict

import gradio as gr

from .. import display, samples
from ..errors import HeatlensError, first_line
from ..methods import METHODS
from ..models import Network
from . import session as work
from .run_page import run_tab

log = logging.getLogger(__name__)

NONE = "none"
AUTO_CMAP = "auto"
CMAPS = (AUTO_CMAP, "jet", "turbo", "viridis", "inferno", "magma", "bwr", "coolwarm", "RdBu_r", "gray")
# not Gradio's "share", which posts to Hugging Face
BUTTONS: tuple[Literal["download", "fullscreen"], ...] = ("download", "fullscreen")
MODEL_QUEUE = "model"  # the events that run the model share one queue
CSS = """
.heatlens-error { color: #b00020; font-weight: 600; }
.heatlens-note { color: #444; }
.heatlens-tiles .fixed-height { max-height: none !important; min-height: 0 !important; }
.heatlens-tiles .thumbnail-item { aspect-ratio: auto !important; height: auto !important; }
.heatlens-tiles .thumbnail-lg > img { height: auto !important; }
.heatlens-tiles .caption-label { position: static !important; max-width: 100% !important;
                                 white-space: normal !important; }
"""  # the tiles are shown whole, each with its colour bar and its title under it (not cropped to squares)
SLOW = ("The CAM family and the gradient methods take seconds; LIME, SHAP partition, occlusion, RISE and Score-CAM "
        "a minute or more on a CPU (the page shows their progress).")


class Queue(TypedDict):
    """The keywords that put an event in a Gradio concurrency queue."""

    concurrency_id: str
    concurrency_limit: int


@dataclass(frozen=True)
class Page:
    """The components the handlers read and update: the session's state and what the page shows of it."""

    state: gr.State
    photo: gr.Image
    predictions: gr.Label
    classes: gr.CheckboxGroup
    status: gr.HTML
    left: gr.Gallery
    right: gr.Gallery
    table: gr.Dataframe
    download: gr.File

    def results(self) -> list[gr.components.Component]:
        """What an explanation updates."""
        return [self.state, self.left, self.right, self.status]

    def everything(self) -> list[gr.components.Component]:
        """What a new photo updates."""
        return [self.state, self.photo, self.predictions, self.classes, self.status, self.left, self.right,
                self.table, self.download]


def build(network: Network, run_folder: str | Path | None = None) -> gr.Blocks:
    """The app for one model: upload a photo or pick a bundled one, see its top classes, explain some of them
    with one or two methods (maps computed on the server by heatlens.explain), score them, download them; and
    in a second tab, open a `heatlens run` output folder (`run_folder`: opened on load, that tab shown first)."""
    layers, default_layer = work.layer_choices(network)
    methods = list(METHODS)
    with gr.Blocks(title=f"heatlens · {network.name}", analytics_enabled=False, delete_cache=(1800, 3600)) as blocks:
        state = gr.State(None)
        gr.Markdown(f"## heatlens: why did {network.name} say that?\nThe maps are computed on this machine by "
                    "`heatlens.explain()`; nothing is sent anywhere.")
        with gr.Tabs(selected="run" if run_folder else "explain"):
            with gr.Tab("Explain a photo", id="explain", elem_id="explain-tab"), gr.Row():
                with gr.Column(scale=1, min_width=300):
                    upload = gr.File(label=f"Upload a photo (JPEG, PNG, WebP, ... up to {work.MAX_UPLOAD_MB} MB)",
                                     file_types=["image"], type="filepath", elem_id="upload")
                    sample = gr.Dropdown(samples.names(), value=None, label="... or pick a bundled photo",
                                         elem_id="sample")
                    photo = gr.Image(label="photo", interactive=False, format="png", elem_id="photo", height=260,
                                     buttons=list(BUTTONS))
                    predictions = gr.Label(label="the model's top classes", num_top_classes=5, elem_id="predictions")
                with gr.Column(scale=2):
                    classes = gr.CheckboxGroup([], label="classes to explain (one or several)", elem_id="classes")
                    with gr.Row():
                        method = gr.Dropdown(methods, value="gradcam", label="method", elem_id="method")
                        other = gr.Dropdown([NONE, *methods], value=NONE, label="side by side with",
                                            elem_id="other")
                        layer = gr.Dropdown(layers, value=default_layer, label="layer (for methods that use one)",
                                            elem_id="layer")
                    gr.Markdown(SLOW)
                    with gr.Row():
                        alpha = gr.Slider(0.0, 1.0, value=0.4, step=0.05, label="opacity of the map", elem_id="alpha")
                        cmap = gr.Dropdown(list(CMAPS), value=AUTO_CMAP, label="colour map (auto: the method's own)",
                                           elem_id="cmap")
                    run = gr.Button("Explain", variant="primary", elem_id="explain")
                    status = gr.HTML(_note("Upload a photo or pick a bundled one."), elem_id="status")
                    with gr.Row():
                        left = gr.Gallery(label="method", columns=2, format="png", object_fit="contain", height="auto",
                                          elem_id="left", elem_classes=["heatlens-tiles"], buttons=list(BUTTONS))
                        right = gr.Gallery(label="side by side", columns=1, format="png", object_fit="contain",
                                           height="auto", visible=False, elem_id="right",
                                           elem_classes=["heatlens-tiles"], buttons=list(BUTTONS))
                    with gr.Accordion("Metric scores of the shown maps", open=False, elem_id="scores-panel"):
                        metrics = gr.CheckboxGroup(list(work.METRICS_SHOWN), value=["deletion", "insertion"],
                                                   label="metrics (heatlens.metrics)", elem_id="metrics")
                        score = gr.Button("Score the shown maps", elem_id="score")
                        table = gr.Dataframe(headers=["method", "metric", "class", "score", "better", "params"],
                                             interactive=False, elem_id="scores")
                    with gr.Row():
                        pack = gr.Button("Download the shown result (PNG + manifest.json, zip)", elem_id="pack")
                        download = gr.File(label="download", interactive=False, elem_id="download", height=110)
            with gr.Tab("Open a run", id="run", elem_id="run-tab"):
                run_tab(blocks, run_folder)

        page = Page(state, photo, predictions, classes, status, left, right, table, download)
        act = Handlers(network, page)
        choices = [state, method, other, classes, layer, alpha, cmap]
        model = Queue(concurrency_id=MODEL_QUEUE, concurrency_limit=1)  # one model call at a time, whoever asks
        upload.upload(act.open_upload, [upload], page.everything(), **model).then(
            act.explain, choices, page.results(), **model)
        sample.input(act.open_sample, [sample], page.everything(), **model).then(
            act.explain, choices, page.results(), **model)
        run.click(act.explain, choices, page.results(), **model)
        alpha.release(act.redraw, [state, alpha, cmap], [left, right, status])
        cmap.input(act.redraw, [state, alpha, cmap], [left, right, status])
        score.click(act.score, [state, metrics], [table, status], **model)
        pack.click(act.pack, [state, alpha, cmap], [download, status])
    return blocks


def serve(network: Network, host: str = "127.0.0.1", port: int = 7860, block: bool = True,
          run_folder: str | Path | None = None) -> gr.Blocks:
    """Launch the app on host:port (with `run_folder` open, if given): never a share link, uploads
    capped at MAX_UPLOAD_MB, no server-side rendering (no Node process), no MCP server; with `block`, serve
    until interrupted. Returns the Blocks."""
    blocks = build(network, run_folder)
    blocks.launch(server_name=host, server_port=port, share=False, max_file_size=f"{work.MAX_UPLOAD_MB}mb",
                  ssr_mode=False, mcp_server=False, pwa=False, enable_monitoring=False, inbrowser=False,
                  prevent_thread_lock=True, quiet=True, theme=gr.themes.Default(), css=CSS,
                  footer_links=["api", "settings"])
    if block:
        blocks.block_thread()
    return blocks


def _note(text: str) -> str:
    return f"<p class='heatlens-note'>{html.escape(text)}</p>"


def _error(text: str) -> str:
    return f"<p class='heatlens-error'>error: {html.escape(text)}</p>"


def _failure(exc: Exception) -> str:
    """The page's line for a failure: the user's (a HeatlensError) as it is, anything else as a bug."""
    if isinstance(exc, HeatlensError):
        return _error(first_line(exc))
    log.exception("heatlens app: unexpected failure")
    return _error(f"internal error, a bug in heatlens: {type(exc).__name__}: {first_line(exc)} (please report it)")


class Handlers:
    """The page's event handlers for one model: each takes the session's state and returns the updates of the
    Page's components (a dict), with a failure said in the status line instead of raised."""

    def __init__(self, network: Network, page: Page) -> None:
        self.network, self.page = network, page

    def open_upload(self, path: str | None) -> dict:
        """A new session for an uploaded file (checked: an image, at most MAX_UPLOAD_MB)."""
        if not path:
            return {self.page.status: gr.skip()}
        return self._open(lambda: work.open_session(self.network, work.read_photo(path), Path(path).name))

    def open_sample(self, name: str | None) -> dict:
        """A new session for a bundled photo."""
        if not name:
            return {self.page.status: gr.skip()}
        return self._open(lambda: work.open_sample(self.network, name))

    def _open(self, opening: Callable[[], work.Session]) -> dict:
        page = self.page
        cleared: dict[gr.components.Component, Any] = {
            page.left: [], page.right: gr.update(value=[], visible=False), page.table: None, page.download: None}
        try:
            opened = opening()
        except Exception as exc:
            return {page.state: None, page.photo: None, page.predictions: None,
                    page.classes: gr.update(choices=[], value=[]), page.status: _failure(exc), **cleared}
        best = work.ranked(opened, self.network)
        choices = [(work.class_label(r, name, p), c) for r, (c, name, p) in enumerate(best, start=1)]
        return {page.state: opened, page.photo: opened.photo, page.predictions: {name: p for _, name, p in best},
                page.classes: gr.update(choices=choices, value=[best[0][0]]),
                page.status: _note(f"{opened.name}: {best[0][1]} ({display.percent(best[0][2])}) on top."),
                **cleared}

    def explain(self, session: work.Session | None, method: str, other: str, chosen: list[int], layer: str,
                alpha: float, cmap: str, progress: gr.Progress = gr.Progress()) -> dict:  # noqa: B008  (Gradio's idiom)
        """Explain the chosen classes with one method, or two side by side, and show their tiles."""
        page = self.page
        if session is None:
            return {page.status: gr.skip()}
        methods = [method] if other in (NONE, None) else [method, other]
        start = time.monotonic()
        try:
            done = work.explain_shown(self.network, session, methods, chosen, layer,
                                      lambda fraction, text: progress(fraction, desc=f"explaining: {text}"))
            pictures = self._galleries(done, alpha, cmap)
        except Exception as exc:
            return {page.status: _failure(exc)}
        names = ", ".join(next(iter(done.results.values())).targets.names[0])
        return {page.state: done, **pictures,
                page.status: _note(f"{' and '.join(done.results)} of {names} in {time.monotonic() - start:.1f} s "
                                   f"(layer {layer} for the methods that use one).")}

    def redraw(self, session: work.Session | None, alpha: float, cmap: str) -> dict:
        """The shown maps again with another opacity or colour map (nothing is computed again)."""
        if session is None or not session.results:
            return {self.page.status: gr.skip()}
        try:
            return self._galleries(session, alpha, cmap)
        except Exception as exc:
            return {self.page.status: _failure(exc)}

    def _galleries(self, session: work.Session, alpha: float, cmap: str) -> dict:
        """Each shown method's labelled tiles in its gallery; the right one hidden when one method is shown."""
        left, right = self.page.left, self.page.right
        shown = [work.tiles(result, alpha, None if cmap == AUTO_CMAP else cmap) for result in session.results.values()]
        names = list(session.results)
        if len(shown) == 1:
            return {left: gr.update(value=shown[0], label=names[0], columns=2),
                    right: gr.update(value=[], visible=False)}
        return {left: gr.update(value=shown[0], label=names[0], columns=1),
                right: gr.update(value=shown[1], label=names[1], visible=True, columns=1)}

    def score(self, session: work.Session | None, metrics: list[str],
              progress: gr.Progress = gr.Progress()) -> dict:  # noqa: B008  (Gradio's idiom)
        """The chosen metrics of the shown maps, as a table."""
        status = self.page.status
        if session is None or not session.results:
            return {status: _error("nothing is shown yet: explain a photo first, then score its maps")}
        if not metrics:
            return {status: _error("no metric chosen: tick at least one to score the shown maps")}
        progress(0, desc="scoring the shown maps")
        try:
            rows = work.scores(self.network, session, metrics)
        except Exception as exc:
            return {status: _failure(exc)}
        return {self.page.table: [[r["method"], r["metric"], r["class"], round(r["score"], 4), r["better"],
                                   r["params"]] for r in rows],
                status: _note(f"{len(rows)} scores of {' and '.join(session.results)}.")}

    def pack(self, session: work.Session | None, alpha: float, cmap: str) -> dict:
        """A zip of what is shown, offered for download."""
        status = self.page.status
        if session is None or not session.results:
            return {status: _error("nothing is shown yet: explain a photo first, then download it")}
        try:
            path = work.bundle(session, alpha, None if cmap == AUTO_CMAP else cmap)
        except Exception as exc:
            return {status: _failure(exc)}
        return {self.page.download: str(path), status: _note(f"{path.name} is ready below.")}


__all__ = ["Handlers", "Page", "build", "serve"]
