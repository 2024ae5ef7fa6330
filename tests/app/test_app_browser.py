"""The app end to end in headless Chromium: served on 127.0.0.1 in this process, driven like a person would, its
pictures read back from the page and compared with heatlens.explain's maps; nothing leaves this machine, from
the browser or from the server. Screenshots land in test-artifacts/app/."""

from __future__ import annotations

import io
import ipaddress
import json
import re
import socket
import zipfile
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pytest
from browser import BrowserSession, open_browser, require_browser
from overlay_check import check_overlay
from PIL import Image

import heatlens
from heatlens.app import session as work

pytest.importorskip("gradio")

WAIT_MS = 90_000  # a loaded CI machine takes a while for the first model call
LOCAL_NAMES = {None, "", "localhost", "127.0.0.1", "::1", "0.0.0.0"}


class Outbound:
    """Every connection and name lookup the server's process makes that is not for this machine."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def connect(self, original):
        def connect(sock, address):
            if isinstance(address, tuple) and not ipaddress.ip_address(address[0]).is_loopback:
                self.seen.append(f"connect {address}")
            return original(sock, address)
        return connect

    def lookup(self, original):
        def getaddrinfo(host, *args, **kwargs):
            if host not in LOCAL_NAMES:
                self.seen.append(f"lookup {host}")
            return original(host, *args, **kwargs)
        return getaddrinfo


@pytest.fixture(scope="module")
def outbound() -> Iterator[Outbound]:
    recorder = Outbound()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", recorder.connect(socket.socket.connect))
        patch.setattr(socket.socket, "connect_ex", recorder.connect(socket.socket.connect_ex))
        patch.setattr(socket, "getaddrinfo", recorder.lookup(socket.getaddrinfo))
        yield recorder


@pytest.fixture(scope="module")
def url(lite0, outbound) -> Iterator[str]:
    require_browser()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    blocks = heatlens.app.serve(lite0, "127.0.0.1", port, block=False)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        blocks.close()


def settle(session: BrowserSession) -> None:
    """Wait until no component of the page is still waiting for the server."""
    session.page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=status-tracker]')]"
        ".every(e => e.classList.contains('hide'))", timeout=WAIT_MS)


def status(session: BrowserSession, start: str) -> str:
    """The page's status line once it starts with `start` and the page has settled."""
    from playwright.sync_api import expect  # here: without playwright the fixtures skip before this is reached

    line = session.page.locator("#status p")
    expect(line).to_have_text(re.compile(f"^{re.escape(start)}"), timeout=WAIT_MS)
    settle(session)
    return line.inner_text()


def upload(session: BrowserSession, path: str) -> None:
    """Upload a file, clearing the one shown before (the file box holds one)."""
    page = session.page
    clear = page.locator("#upload button[aria-label='Clear']")
    if clear.count():
        clear.click()
    page.set_input_files("#upload input[type=file]", path)


def pick(session: BrowserSession, dropdown: str, value: str) -> None:
    """Choose `value` in one of the page's dropdowns, as typed and confirmed with Enter."""
    box = session.page.locator(f"{dropdown} input")
    box.click()
    box.fill(value)
    session.page.keyboard.press("Enter")
    assert box.input_value() == value


def shown_tiles(session: BrowserSession, gallery: str) -> list[tuple[str, np.ndarray]]:
    """The tiles a gallery shows, as (caption, RGB array) fetched from the page's own image addresses."""
    images = session.page.locator(f"{gallery} .grid-container img")
    out = []
    for i in range(images.count()):
        image = images.nth(i)
        body = session.page.request.get(image.get_attribute("src")).body()
        out.append((image.get_attribute("alt"), np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))))
    return out


def test_upload_explain_the_second_class_compare_and_refuse_a_fake_photo(url, lite0, cat, outbound, tmp_path):
    best = work.ranked(work.open_session(lite0, cat, "chelsea.png"), lite0)
    second_id, second_name = best[1][:2]
    with open_browser() as session:
        page = session.page
        page.goto(url)
        upload(session, str(heatlens.samples.path("cat")))
        status(session, f"gradcam of {best[0][1]}")
        page.locator("#classes label").nth(0).click()  # untick the top class
        page.locator("#classes label").nth(1).click()  # tick the second one
        page.click("#explain")
        status(session, f"gradcam of {second_name}")
        [(caption, tile)] = shown_tiles(session, "#left")
        assert caption.startswith(f"gradcam @ head · {second_name}")
        direct = heatlens.explain(lite0, cat, "gradcam", target=second_id)
        check_overlay(tile[: cat.shape[0]], cat, direct.maps[0, 0], direct.input_box)
        session.page_screenshot("app/1-gradcam-second-class.png", full_page=True)
        assert page.locator("button[aria-label*='share' i], button[title*='share' i]").count() == 0

        pick(session, "#other", "layercam")
        page.click("#explain")
        status(session, f"gradcam and layercam of {second_name}")
        [(left_caption, left)], [(right_caption, right)] = shown_tiles(session, "#left"), shown_tiles(session, "#right")
        assert left_caption.startswith("gradcam @ head") and right_caption.startswith("layercam @ head")
        layercam = heatlens.explain(lite0, cat, "layercam", target=second_id)
        check_overlay(right[: cat.shape[0]], cat, layercam.maps[0, 0], layercam.input_box)
        assert not np.array_equal(left, right)
        session.page_screenshot("app/2-side-by-side.png", full_page=True)

        page.click("#scores-panel button")  # open the metric scores
        for name in ("deletion", "insertion", "average_drop"):  # untick the two curves, tick average drop
            page.locator("#metrics label", has_text=name).click()
        page.click("#score")
        status(session, "2 scores of gradcam and layercam")
        page.locator("#scores").scroll_into_view_if_needed()  # the table draws the rows in view only
        cells = page.locator("#scores [role=row][aria-rowindex]").evaluate_all(
            "rows => rows.map(r => [...r.querySelectorAll('[role=gridcell]')].map(c => c.innerText.trim()))"
            ".filter(r => r.length)")
        expected = [[result.method, "average_drop", second_name,
                     f"{round(float(heatlens.metrics.compute('average_drop', lite0, cat, result).scores[0, 0]), 4):g}",
                     "lower"] for result in (direct, layercam)]
        assert [row[:5] for row in cells] == expected

        page.click("#pack")
        status(session, "chelsea_heatlens.zip is ready")
        link = page.locator("#download a[download]").get_attribute("href")
        with zipfile.ZipFile(io.BytesIO(page.request.get(link).body())) as archive:
            manifest = json.loads(archive.read("manifest.json"))
            assert {"shown.png", "gradcam/manifest.json", "layercam/manifest.json"} <= set(archive.namelist())
        assert manifest["photo"] == "chelsea.png" and list(manifest["methods"]) == ["gradcam", "layercam"]
        session.page_screenshot("app/3-scores-and-download.png", full_page=True)

        fake = tmp_path / "holiday.jpg"
        fake.write_text("these are not the pixels you are looking for\n")
        upload(session, str(fake))
        assert status(session, "error:") == "error: 'holiday.jpg' is not a readable image (unknown or corrupt format)"
        assert page.locator("#left .grid-container img").count() == 0, "the last photo's maps are still shown"
        session.page_screenshot("app/4-not-an-image.png", full_page=True)

        assert session.outside() == [], "the page asked for something beyond 127.0.0.1"
        assert session.errors() == []
    assert outbound.seen == [], "the server reached beyond this machine"


def another_session(first: BrowserSession) -> BrowserSession:
    """A second, separate browser context (its own cookies and storage: another person) in the same Chromium,
    recorded as open_browser records the first."""
    context = first.page.context.browser.new_context(viewport=first.page.viewport_size, service_workers="block")
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    second = BrowserSession(page)
    context.on("request", lambda request: second.requests.append(request.url))
    page.on("console", lambda message: second.console_errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: second.page_errors.append(str(error)))
    return second


def test_two_browsers_at_once_each_see_their_own_photo_and_maps(url, lite0, cat, outbound):
    # Known before the pages start: the server shares this model, and only its queue keeps model calls apart.
    coffee = work.ranked(work.open_sample(lite0, "coffee"), lite0)[0][1]
    cat_top, cat_third = (work.ranked(work.open_session(lite0, cat, "cat"), lite0)[i][1] for i in (0, 2))
    with open_browser() as first:
        second = another_session(first)
        first.page.goto(url)
        second.page.goto(url)
        upload(first, str(heatlens.samples.path("cat")))
        pick(second, "#sample", "coffee")
        status(first, f"gradcam of {cat_top}")
        status(second, f"gradcam of {coffee}")
        first.page.locator("#classes label").nth(2).click()  # a second class, after the other session's photo came
        first.page.click("#explain")
        status(first, f"gradcam of {cat_top}, {cat_third}")
        [(_, cat_tile), _], [(_, coffee_tile)] = shown_tiles(first, "#left"), shown_tiles(second, "#left")
        direct = heatlens.explain(lite0, cat, "gradcam")
        check_overlay(cat_tile[: cat.shape[0]], cat, direct.maps[0, 0], direct.input_box)
        assert coffee_tile.shape != cat_tile.shape or not np.array_equal(coffee_tile, cat_tile)
        second.page_screenshot("app/5-second-session-coffee.png", full_page=True)
        for session in (first, second):
            assert session.outside() == [] and session.errors() == []
    assert outbound.seen == []


def test_an_upload_over_20_mb_is_refused_in_the_page(url, tmp_path):
    big = tmp_path / "huge.png"
    with open(big, "wb") as file:
        file.truncate(work.MAX_UPLOAD_MB * 1024 * 1024 + 1)
    with open_browser() as session:
        session.page.goto(url)
        upload(session, str(big))
        toast = session.page.get_by_text("exceed the maximum allowed size of 20.0 Mb")
        toast.wait_for(timeout=WAIT_MS)
        assert '"huge.png"' in toast.inner_text()
        session.page_screenshot("app/6-over-20-mb.png")
        assert session.outside() == []
        # Gradio's server answers the refused upload with a 404, which the browser logs; nothing else may go wrong
        assert all("404" in e or e == "Response" for e in session.errors()), session.errors()


@pytest.fixture(scope="module")
def run_url(lite0, app_run, outbound) -> Iterator[str]:
    """The app served with `heatlens app --run`'s folder: the run tab shown first, the run opened on load."""
    require_browser()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    blocks = heatlens.app.serve(lite0, "127.0.0.1", port, block=False, run_folder=app_run.out)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        blocks.close()


def run_status(session: BrowserSession, start: str) -> str:
    """The run tab's status line once it starts with `start` and the page has settled."""
    from playwright.sync_api import expect

    line = session.page.locator("#run-status p")
    expect(line).to_have_text(re.compile(f"^{re.escape(start)}"), timeout=WAIT_MS)
    settle(session)
    return line.inner_text()


def table_rows(session: BrowserSession, table: str) -> list[list[str]]:
    """The cells of a table's rows as the page shows them."""
    session.page.locator(table).scroll_into_view_if_needed()
    return session.page.locator(f"{table} [role=row][aria-rowindex]").evaluate_all(
        "rows => rows.map(r => [...r.querySelectorAll('[role=gridcell]')].map(c => c.innerText.trim()))"
        ".filter(r => r.length)")


def test_a_run_opens_filters_and_a_clicked_row_shows_its_stored_map(run_url, lite0, cat, app_run, outbound,
                                                                    tmp_path):
    with open_browser() as session:
        page = session.page
        page.goto(run_url)
        run_status(session, "run out: 5 rows; click one to see its maps")
        assert [row[0] for row in table_rows(session, "#run-rows")] == ["0", "1", "2", "3", "4"]
        facts = page.locator("#run-facts").inner_text()
        assert "5 explained, 1 failed, of 6" in facts and "60.0% of 5 labelled images" in facts
        summary = table_rows(session, "#run-summary")
        assert sorted(int(row[2]) for row in summary) == sorted(Counter(app_run.predicted).values())
        assert page.locator("#run-means .grid-container img").count() == len(summary)

        page.locator("#run-outcome label", has_text="wrong").click()
        run_status(session, "run out: 2 rows")
        assert [row[0] for row in table_rows(session, "#run-rows")] == ["1", "3"]
        page.locator("#run-outcome label", has_text="all").click()
        run_status(session, "run out: 5 rows")

        page.locator("#run-rows [role=row][aria-rowindex] [role=gridcell]", has_text="cat").first.click()
        run_status(session, "row 0: cat")
        [(caption, tile)] = shown_tiles(session, "#run-tiles")
        direct = heatlens.explain(lite0, cat, "gradcam")
        assert caption.startswith(f"gradcam @ {direct.layer} · {direct.targets.names[0][0]}")
        check_overlay(tile[: cat.shape[0]], cat, direct.maps[0, 0], direct.input_box)
        session.page_screenshot("app/7-run-row-selected.png", full_page=True)

        box = page.locator("#run-folder textarea, #run-folder input").first
        box.fill(str(tmp_path))
        page.click("#open-run")
        line = run_status(session, "error:")
        assert line == f"error: '{tmp_path}' holds no heatlens run (no run.json and shards/): give the --out folder " \
                       "of a `heatlens run`"
        assert table_rows(session, "#run-rows") == [] and page.locator("#run-tiles .grid-container img").count() == 0
        session.page_screenshot("app/8-run-not-a-run.png", full_page=True)
        assert session.outside() == [] and session.errors() == []
    assert outbound.seen == []
