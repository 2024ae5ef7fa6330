"""The HTML of a heatlens report: one self-contained file (every picture a data: URI, the style and a tiny script
inline, a Content-Security-Policy that lets nothing be fetched), paged so hundreds of photos stay light.

Each photo is a <section>; sections are grouped into pages of which the script shows one at a time (without
the script every page shows). Thumbnails load lazily, and a click opens the full-size picture in a <dialog>.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from .display import percent

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
FORMATS = {"webp": ("WEBP", "image/webp"), "jpeg": ("JPEG", "image/jpeg")}

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1400px;padding:0 16px;color:#222}
header h1{margin:16px 0 4px}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:8px 0}
dl.facts dt{font-weight:600}dl.facts dd{margin:0}
table{border-collapse:collapse}td,th{padding:2px 6px;text-align:left;vertical-align:top}
table.params td,table.params th,table.top td,table.top th{border-bottom:1px solid #ddd}
section.photo{border-top:2px solid #888;padding:8px 0;content-visibility:auto;contain-intrinsic-size:auto 900px}
section.photo h2{font-size:16px;margin:4px 0 8px}
.lead{display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap}
table.grid th{font-weight:600}table.grid td{text-align:center}
figure{margin:0}img[data-full]{cursor:zoom-in;height:auto}img[data-full]:focus-visible{outline:3px solid #06c}
.metric{font-size:12px;color:#444}.note{font-size:12px;color:#666}
nav.pages{margin:12px 0;display:flex;gap:8px;align-items:center}
html:not(.js) nav.pages{display:none}
dialog{padding:8px;border:0;max-width:96vw;max-height:96vh}dialog img{max-width:92vw;max-height:86vh;cursor:zoom-out}
dialog::backdrop{background:rgba(0,0,0,.7)}
"""

SCRIPT = """
document.documentElement.classList.add("js");
addEventListener("DOMContentLoaded", () => {
  const pages = [...document.querySelectorAll("div.page")];
  const labels = document.querySelectorAll("nav.pages .where");
  let current = 0;
  const show = (n) => {
    current = Math.max(0, Math.min(pages.length - 1, n));
    pages.forEach((page, i) => { page.hidden = i !== current; });
    labels.forEach((label) => { label.textContent = `page ${current + 1} of ${pages.length}`; });
  };
  document.querySelectorAll("nav.pages button").forEach((button) => {
    button.addEventListener("click", () => { show(current + Number(button.dataset.step)); scrollTo(0, 0); });
  });
  const reveal = () => {
    const target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
    const page = target && target.closest("div.page");
    if (page) { show(pages.indexOf(page)); target.scrollIntoView(); }
  };
  addEventListener("hashchange", reveal);
  show(0);
  reveal();
  const dialog = document.getElementById("full");
  const big = dialog.querySelector("img"), caption = dialog.querySelector("figcaption");
  const open = (small) => { big.src = small.dataset.full; caption.textContent = small.alt; dialog.showModal(); };
  document.addEventListener("click", (event) => {
    const small = event.target.closest("img[data-full]");
    if (small) { open(small); } else if (event.target.closest("#full")) { dialog.close(); }
  });
  document.addEventListener("keydown", (event) => {
    const small = event.target.closest && event.target.closest("img[data-full]");
    if (small && (event.key === "Enter" || event.key === " ")) { event.preventDefault(); open(small); }
  });
});
"""


@dataclass
class Picture:
    """A picture shown as a thumbnail (data: URI) that opens its full-size version (data: URI) on click."""

    thumb: str
    full: str
    width: int
    height: int
    alt: str


@dataclass
class Cell:
    """One grid cell: a labelled overlay and the metric scores of its map (name, value, higher is better)."""

    picture: Picture
    scores: list[tuple[str, float, bool]] = field(default_factory=list)


@dataclass
class PhotoSection:
    """Everything the report shows of one photo."""

    anchor: str
    name: str
    photo: Picture
    size: tuple[int, int]
    top: list[tuple[int, str, float]]
    columns: list[str]
    rows: list[tuple[str, str | None, list[Cell]]]
    notes: list[str] = field(default_factory=list)


def picture(image: Image.Image, thumb_side: int, alt: str, image_format: str, quality: int) -> Picture:
    """`image` as a full-size data URI and a thumbnail no longer than `thumb_side` (the same pixels shrunk)."""
    small = image.copy()
    small.thumbnail((thumb_side, thumb_side), Image.Resampling.LANCZOS)
    return Picture(data_uri(small, image_format, quality), data_uri(image, image_format, quality), small.width,
                   small.height, alt)


def data_uri(image: Image.Image, image_format: str, quality: int) -> str:
    """A picture encoded as WebP or JPEG in a data: URI."""
    codec, mime = FORMATS[image_format]
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, codec, quality=quality, **({"method": 2} if codec == "WEBP" else {}))
    return f"data:{mime};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def image_tag(shown: Picture) -> str:
    """A lazily decoded thumbnail that opens its full-size picture when clicked."""
    return (f'<img src="{shown.thumb}" data-full="{shown.full}" width="{shown.width}" height="{shown.height}" '
            f'alt="{_e(shown.alt)}" title="click: full size" tabindex="0" loading="lazy" decoding="async">')


def section_html(section: PhotoSection) -> str:
    """One photo's section: the photo, its top predictions, the grid of methods x targets with metric scores."""
    rows = "".join(f"<tr><td>{rank}</td><td>{_e(name)}</td><td>{cid}</td><td>{percent(p)}</td></tr>"
                   for rank, (cid, name, p) in enumerate(section.top, start=1))
    top = (f'<table class="top"><caption>top {len(section.top)} predictions</caption><tr><th>#</th><th>class</th>'
           f"<th>id</th><th>probability</th></tr>{rows}</table>") if section.top else ""
    head = "".join(f"<th>{_e(column)}</th>" for column in section.columns)
    body = []
    for method, layer, cells in section.rows:
        where = f'<br><span class="note">layer {_e(layer)}</span>' if layer else ""
        tiles = "".join(f"<td><figure>{image_tag(c.picture)}{_scores_html(c.scores)}</figure></td>" for c in cells)
        body.append(f"<tr><th>{_e(method)}{where}</th>{tiles}</tr>")
    notes = "".join(f'<p class="note">{_e(note)}</p>' for note in section.notes)
    height, width = section.size
    return (f'<section class="photo" id="{_e(section.anchor)}"><h2>{_e(section.name)}</h2><div class="lead">'
            f'<figure>{image_tag(section.photo)}<figcaption class="note">{width} x {height} px</figcaption>'
            f'</figure>{top}</div><table class="grid"><thead><tr><th>method</th>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>{notes}</section>\n")


def _scores_html(scores: Sequence[tuple[str, float, bool]]) -> str:
    if not scores:
        return ""
    parts = [f"{_e(name)} {value:.3g} ({'higher' if better else 'lower'} is better)" for name, value, better in scores]
    return f'<figcaption class="metric">{"<br>".join(parts)}</figcaption>'


def header_html(title: str, facts: Sequence[tuple[str, str]], params: Sequence[tuple[str, dict[str, Any]]],
                settings: dict[str, Any], index: Sequence[tuple[str, str, str]],
                failed: Sequence[tuple[str, str]]) -> str:
    """The report's head: what was run (facts), every method's and metric's parameters, the whole record as
    JSON, the files that could not be read, and an index of the photos (anchor, name, top class)."""
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    tables = []
    for name, values in params:
        rows = "".join(f"<tr><td>{_e(k)}</td><td><code>{_e(json.dumps(v))}</code></td></tr>" for k, v in values.items())
        tables.append(f'<table class="params"><caption>{_e(name)}</caption>{rows}</table>')
    missing = "".join(f"<li>{_e(name)}: {_e(error)}</li>" for name, error in failed)
    missing = f"<h3>{len(failed)} image(s) could not be read</h3><ul>{missing}</ul>" if failed else ""
    links = "".join(f'<tr><td><a href="#{_e(a)}">{_e(name)}</a></td><td>{_e(best)}</td></tr>'
                    for a, name, best in index)
    return (f'<header><h1>{_e(title)}</h1><dl class="facts">{dl}</dl><div class="lead">{"".join(tables)}</div>'
            f"<details><summary>every setting as JSON</summary><pre>{_e(json.dumps(settings, indent=2))}</pre>"
            f"</details>{missing}<details><summary>index of {len(index)} photo(s)</summary><table>{links}</table>"
            "</details></header>\n")


def page_start(title: str) -> str:
    """The document up to the photos: doctype, CSP, style, script."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{STYLE}</style><script>{SCRIPT}</script></head><body>\n")


NAV = ('<nav class="pages"><button type="button" data-step="-1">&lsaquo; previous</button><span class="where"></span>'
       '<button type="button" data-step="1">next &rsaquo;</button></nav>\n')
PAGE_START = '<div class="page">\n'
PAGE_END = "</div>\n"
PAGE_FINISH = ('<dialog id="full"><figure><img alt="full size"><figcaption class="note"></figcaption></figure></dialog>'
               "\n</body></html>\n")


def best_label(top: Sequence[tuple[int, str, float]]) -> str:
    """The top class and its probability, as the index lists it."""
    return f"{top[0][1]} {percent(top[0][2])}" if top else ""
