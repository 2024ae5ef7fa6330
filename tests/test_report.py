"""heatlens.report() and `heatlens report`: one self-contained HTML file, checked in headless Chromium (no console
error, nothing fetched, every picture decodes), its size for 20 photos x 3 methods x 3 targets, hundreds of photos
in pages, the labelled tiles of heatlens.display, and one-line errors."""

from __future__ import annotations

import base64
import io
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from browser import open_browser, require_browser
from PIL import Image
from typer.testing import CliRunner

import heatlens
from heatlens import display
from heatlens.cli import app
from heatlens.errors import HeatlensError, ImageError, MethodError
from heatlens.report import report

pytest.importorskip("torch")
runner = CliRunner()
SAMPLES = ("cat", "coffee", "rocket")
FOUR_METHODS = ("gradcam", "gradcam_plusplus", "saliency", "occlusion")
DECODE_ALL = """async () => {
  const pictures = [...document.querySelectorAll("img[src]")];
  const fulls = pictures.filter((i) => i.dataset.full).map((i) => { const f = new Image(); f.src = i.dataset.full;
                                                                   return f; });
  const all = [...pictures, ...fulls];
  await Promise.all(all.map((i) => { i.loading = "eager"; return i.decode().catch(() => null); }));
  return all.map((i) => i.naturalWidth);
}"""


class _Tags(HTMLParser):
    """Every start tag with its attributes, to check what the file would make a browser fetch."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(path: Path) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.tags


def _decoded(uri: str) -> np.ndarray:
    head, _, data = uri.partition(",")
    assert head in ("data:image/webp;base64", "data:image/jpeg;base64"), head
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


@pytest.fixture(scope="module")
def chromium() -> None:
    """Skip (or fail, under HEATLENS_BROWSER=required) before any report is built where no browser can run."""
    require_browser()


@pytest.fixture(scope="module")
def bundled_report(lite0, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    start = time.perf_counter()
    path = report(lite0, [heatlens.samples.path(name) for name in SAMPLES], methods=FOUR_METHODS, target="top3",
                  out=out, options={"occlusion": {"window": 56, "stride": 56, "batch_size": 16}}, progress=False)
    print(f"\nreport of 3 photos x 4 methods x 3 targets: {path.stat().st_size / 1e6:.2f} MB, "
          f"{time.perf_counter() - start:.1f} s")
    return path


def test_the_report_of_three_photos_renders_offline_in_chromium(chromium, bundled_report):
    with open_browser(1400, 1000) as browser:
        browser.page.goto(bundled_report.as_uri(), wait_until="load")
        widths = browser.page.evaluate(DECODE_ALL)
        sections = browser.page.locator("section.photo").count()
        browser.page_screenshot("report/three-photos.png")
        browser.page.locator("table.grid img[data-full]").first.click()
        browser.page.wait_for_function("document.getElementById('full').open")
        big = browser.page.evaluate("document.querySelector('#full img').naturalWidth")
        browser.page_screenshot("report/three-photos-full-size.png")
        browser.page.keyboard.press("Escape")
        browser.page.wait_for_function("!document.getElementById('full').open")
        browser.page.locator("section.photo img[data-full]").nth(2).focus()
        browser.page.keyboard.press("Enter")  # the keyboard opens a full size too
        browser.page.wait_for_function("document.getElementById('full').open")
        keyed = browser.page.evaluate("document.querySelector('#full figcaption').textContent")
        errors, outside, requests = browser.errors(), browser.outside(), list(browser.requests)
    print(f"report size: {bundled_report.stat().st_size / 1e6:.2f} MB; {len(widths)} pictures decoded")
    assert errors == [] and outside == []
    assert requests[0] == bundled_report.as_uri()
    assert sections == 3
    assert len(widths) == 2 * 3 * (1 + 4 * 3) and min(widths) > 0  # thumbnails and full sizes, photo + 12 tiles
    assert big > 320  # the full-size picture, not the thumbnail
    assert keyed == "chelsea.png · gradcam @ head · Egyptian cat 36%"


def test_the_file_fetches_nothing_and_names_what_ran(bundled_report, lite0):
    tags = _tags(bundled_report)
    text = bundled_report.read_text(encoding="utf-8")
    sources = [a["src"] for tag, a in tags if tag == "img" and a.get("src")]
    assert sources and all(s.startswith("data:image/") for s in sources)
    assert not [t for t, a in tags if t in ("link", "iframe", "object", "embed") or (t == "script" and "src" in a)]
    csp = [a["content"] for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", text)
    for fact in ("efficientnet_lite0", "ResizeCrop(resize=256, crop=224", "gradcam: head", "crop", "heatlens 0.1.0",
                 "torch ", "window", "56", "chelsea.png", "coffee.png", "rocket.jpg"):
        assert fact in text, fact
    best = heatlens.explain(lite0, heatlens.samples.load("coffee")).targets.names[0][0]
    assert f"#1 {best} (id" in text


def test_each_tile_is_the_library_labelled_figure(bundled_report, lite0, cat):
    """The full-size tile of gradcam's second class is display.figure's tile (title, colour bar) as pixels."""
    result = heatlens.explain(lite0, cat, "gradcam", "top3")
    figure = display.figure(result, images=[0], targets=[1], photo=False, side=720, title="")
    drawn = np.asarray(Image.open(io.BytesIO(display.figure_png(figure, dpi=720 / max(figure.get_size_inches()))))
                       .convert("RGB")).astype(np.float32)
    fulls = [a["data-full"] for t, a in _tags(bundled_report) if t == "img" and "data-full" in a]
    shown = _decoded(fulls[2]).astype(np.float32)  # the photo, then gradcam's classes 1, 2, 3
    assert shown.shape == drawn.shape
    assert np.abs(shown - drawn).mean() < 3.0  # WebP at quality 80 on the same pixels
    other = _decoded(fulls[1]).astype(np.float32)
    assert other.shape != drawn.shape or np.abs(other - drawn).mean() > 3.0  # the comparison can fail


@pytest.mark.slow  # 180 labelled tiles: about a minute on an idle 2-core machine
def test_twenty_photos_three_methods_three_targets_stay_under_15_mb(lite0, tmp_path):
    photos = {}
    for name in heatlens.samples.names():
        photo = heatlens.samples.load(name)
        h, w = photo.shape[:2]
        photos.update({f"{name}.png": photo, f"{name}-flipped.png": photo[:, ::-1],
                       f"{name}-left.png": photo[:, : w * 2 // 3], f"{name}-top.png": photo[: h * 2 // 3]})
    start = time.perf_counter()
    path = report(lite0, photos, methods=("gradcam", "xgradcam", "saliency"), target="top3",
                  out=tmp_path / "twenty.html", progress=False)
    size = path.stat().st_size
    print(f"\n20 photos x 3 methods x 3 targets: {size / 1e6:.2f} MB in {time.perf_counter() - start:.0f} s")
    assert len(photos) == 20 and path.read_text(encoding="utf-8").count('<section class="photo"') == 20
    assert size < 15e6


@pytest.fixture(scope="module")
def toy():
    return heatlens.load_model("toy_models:tiny_cnn")


def _synthetic(count: int, side: int = 40) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {f"synthetic-{i:03d}.png": rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for i in range(count)}


@pytest.mark.slow  # 200 labelled tiles
def test_hundreds_of_photos_come_in_pages(chromium, toy, tmp_path):
    start = time.perf_counter()
    path = report(toy, _synthetic(200), target="top1", out=tmp_path / "many.html", thumb_size=96, full_size=240,
                  page_size=25, progress=False)
    built = time.perf_counter() - start
    with open_browser() as browser:
        start = time.perf_counter()
        browser.page.goto(path.as_uri(), wait_until="load")
        loaded = time.perf_counter() - start
        shown = browser.page.locator("section.photo:visible").count()
        where = browser.page.locator("nav.pages .where").first.inner_text()
        browser.page.locator("nav.pages button[data-step='1']").first.click()
        second = browser.page.locator("section.photo:visible").first.get_attribute("id")
        browser.page.goto(path.as_uri() + "#photo-150")
        browser.page.wait_for_function("!document.getElementById('photo-150').closest('div.page').hidden")
        heap = browser.page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : 0")
        browser.page_screenshot("report/two-hundred-photos.png")
        errors, outside = browser.errors(), browser.outside()
    print(f"\n200 photos: built in {built:.0f} s, {path.stat().st_size / 1e6:.1f} MB, loaded in {loaded:.2f} s, "
          f"JS heap {heap / 1e6:.0f} MB")
    assert errors == [] and outside == []
    assert shown == 25 and where == "page 1 of 8" and second == "photo-26"


def test_folders_mappings_and_arrays_are_named_and_bad_files_listed(toy, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, photo in list(_synthetic(2).items()):
        Image.fromarray(photo).save(folder / name)
    (folder / "broken.jpg").write_text("not a picture")
    skipped = []
    path = report(toy, [folder, np.zeros((2, 32, 32, 3), np.uint8)], target=0, out=tmp_path / "out" / "r.html",
                  progress=False, on_skip=lambda name, reason: skipped.append(name))
    text = path.read_text(encoding="utf-8")
    assert skipped == ["broken.jpg"] and "1 image(s) could not be read" in text
    for name in ("synthetic-000.png", "synthetic-001.png", "image 0", "image 1"):
        assert f"<h2>{name}</h2>" in text
    named = report(toy, {"left": np.zeros((32, 32, 3), np.uint8)}, target=0, out=tmp_path / "n.html", progress=False)
    assert "<h2>left</h2>" in named.read_text(encoding="utf-8")
    (tmp_path / "plain.html").write_text("")
    assert named.stat().st_mode == (tmp_path / "plain.html").stat().st_mode  # readable as any file written here
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n.html", "out", "photos", "plain.html"]


def test_metric_scores_are_shown_per_map(toy, tmp_path):
    photos = _synthetic(1, 32)
    path = report(toy, photos, target=[0, 1], metrics=["deletion"], metric_options={"deletion": {"steps": 4}},
                  out=tmp_path / "m.html", progress=False)
    text = path.read_text(encoding="utf-8")
    found = [float(v) for v in re.findall(r"deletion (-?[0-9.e+-]+) \(lower is better\)", text)]
    assert len(found) == 2 and all(0.0 <= v <= 1.0 for v in found)  # an AUC of probabilities over [0, 1]
    assert "metric deletion: parameters" in text and "<td>steps</td><td><code>4</code>" in text


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"methods": ()}, MethodError, "needs at least one method"),
    ({"methods": "gradcam,gradcam"}, MethodError, "names a method twice"),
    ({"metrics": ["delation"]}, MethodError, "unknown metric"),
    ({"metric_options": {"deletion": {}}}, MethodError, "names metrics that are not measured"),
    ({"thumb_size": 8}, HeatlensError, "thumb_size must be a whole number >= 32"),
    ({"quality": 0}, HeatlensError, "quality must be a whole number from 1 to 100"),
    ({"image_format": "gif"}, HeatlensError, "image_format must be 'webp' or 'jpeg'"),
    ({"cmap": "jett"}, HeatlensError, "jet"),
])
def test_bad_settings_are_refused_before_any_work(toy, tmp_path, kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        report(toy, np.zeros((32, 32, 3), np.uint8), out=tmp_path / "r.html", progress=False, **kwargs)
    assert not (tmp_path / "r.html").exists()


def test_a_folder_as_out_and_no_readable_image_are_refused(toy, tmp_path):
    with pytest.raises(HeatlensError, match="is a folder: give a file name"):
        report(toy, np.zeros((32, 32, 3), np.uint8), out=tmp_path, progress=False)
    (tmp_path / "bad.png").write_text("no")
    with pytest.raises(HeatlensError, match="cannot write the report to"):
        report(toy, np.zeros((32, 32, 3), np.uint8), out=tmp_path / "bad.png" / "r.html", progress=False)
    with pytest.raises(ImageError, match="none of the 1 images could be read"):
        report(toy, tmp_path / "bad.png", out=tmp_path / "r.html", progress=False)
    assert not (tmp_path / "r.html").exists() and not list(tmp_path.glob(".r.html*"))


def test_the_command_writes_a_report(tmp_path):
    photo = tmp_path / "a.png"
    Image.fromarray(_synthetic(1)["synthetic-000.png"]).save(photo)
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", str(photo), "--model", "toy_models:tiny_cnn", "--method",
                                 "gradcam,saliency", "--target", "0,1", "--format", "jpeg", "--metric", "deletion",
                                 "--metric-option", "steps=3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "report of 1 photo(s) written to" in result.output
    text = out.read_text(encoding="utf-8")
    assert text.count("data:image/jpeg;base64,") == 2 * (1 + 2 * 2) and "data:image/webp" not in text
    assert text.count("(lower is better)") == 4 and "<td>steps</td><td><code>3</code>" in text


def test_the_command_warns_of_the_images_it_leaves_out(tmp_path):
    Image.fromarray(_synthetic(1)["synthetic-000.png"]).save(tmp_path / "a.png")
    (tmp_path / "b.jpg").write_text("not a picture")
    result = runner.invoke(app, ["report", str(tmp_path), "--model", "toy_models:tiny_cnn", "--target", "0",
                                 "--out", str(tmp_path / "out" / "r.html")])
    assert result.exit_code == 0, result.output
    assert "warning: skipped 'b.jpg'" in result.output
    assert "report of 1 photo(s) written to" in result.output and "1 left out (listed in the report)" in result.output


def test_browser_tests_skip_without_chromium_unless_required(monkeypatch):
    monkeypatch.setenv("HEATLENS_CHROMIUM", "/nowhere/chromium")
    monkeypatch.delenv("HEATLENS_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no Chromium found"):
        require_browser()
    monkeypatch.setenv("HEATLENS_BROWSER", "required")
    with pytest.raises(pytest.fail.Exception, match="HEATLENS_BROWSER=required but no Chromium found"):
        require_browser()


@pytest.mark.parametrize(("args", "message"), [
    (["--sample", "cat", "--method", "gradcamm"], "unknown method 'gradcamm'"),
    (["--sample", "cat", "--format", "gif"], "--format takes webp or jpeg"),
    (["--sample", "cat", "--metric", "delation"], "unknown metric"),
    (["--sample", "cat", "--metric-option", "steps=3"], "--metric-option needs --metric"),
    (["--sample", "cat", "--metric", "deletion", "--metric-option", "stepz=3"], "is not a parameter of deletion"),
    (["--sample", "cat", "--fit", "squash"], "--fit takes"),
    (["missing.jpg"], "no image file at"),
])
def test_command_errors_are_one_line_with_exit_code_2(tmp_path, args, message):
    result = runner.invoke(app, ["report", *args, "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.output
