"""Headless Debian Chromium for the browser tests (the report, the app), driven by Playwright and kept offline.

`open_browser()` yields a `BrowserSession`: a page whose console errors, page errors and requests are recorded,
so a test can assert that nothing went wrong and that nothing left the file or localhost. Chromium's own
background calls never reach the network: every host name resolves to nothing except 127.0.0.1. Where
Chromium or Playwright is missing the test is skipped with the reason, unless HEATLENS_BROWSER=required (CI),
where it fails instead. Screenshots go to test-artifacts/ (ARTIFACTS) for people to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
OFFLINE_ARGS = (
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
)
LOCAL_PREFIXES = ("file:", "data:", "blob:", "about:", "http://127.0.0.1", "http://localhost", "ws://127.0.0.1",
                  "ws://localhost")


def chromium_path() -> str | None:
    """The Chromium to drive: $HEATLENS_CHROMIUM, else Debian's /usr/bin/chromium, else `chromium` on PATH."""
    chosen = os.environ.get("HEATLENS_CHROMIUM")
    if chosen:
        return chosen if Path(chosen).exists() else None
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")


def missing(reason: str) -> None:
    """Skip the test with `reason`, or fail it where HEATLENS_BROWSER=required (CI must run the browser tests)."""
    if os.environ.get("HEATLENS_BROWSER", "").lower() == "required":
        pytest.fail(f"HEATLENS_BROWSER=required but {reason}", pytrace=False)
    pytest.skip(reason)


def require_browser() -> tuple[Any, str]:
    """Playwright's sync entry point and the Chromium executable, or skip (see `missing`)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (pip install playwright; it drives Debian's chromium package)")
    executable = chromium_path()
    if executable is None:
        missing("no Chromium found (apt-get install chromium, or set HEATLENS_CHROMIUM to its executable)")
    return sync_playwright, executable


@dataclass
class BrowserSession:
    """One headless Chromium page and what it did: console errors, uncaught page errors, every request URL."""

    page: Any
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    def outside(self, allowed: tuple[str, ...] = LOCAL_PREFIXES) -> list[str]:
        """The requests that went anywhere but the file itself, data:/blob: URIs and localhost."""
        return [url for url in self.requests if not url.startswith(allowed)]

    def errors(self) -> list[str]:
        """Console errors and uncaught page errors together (a clean page has none)."""
        return self.console_errors + self.page_errors

    def page_screenshot(self, path: str | Path, full_page: bool = False) -> Path:
        """Save a PNG of the page; a relative path lands under test-artifacts/. Returns where it went."""
        path = Path(path)
        if not path.is_absolute():
            path = ARTIFACTS / path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


@contextmanager
def open_browser(width: int = 1280, height: int = 900, timeout_ms: int = 30_000) -> Iterator[BrowserSession]:
    """A fresh headless offline Chromium with one recorded page; closed again however the test ends."""
    sync_playwright, executable = require_browser()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=list(OFFLINE_ARGS))
        try:
            context = browser.new_context(viewport={"width": width, "height": height}, service_workers="block")
            page = context.new_page()
            page.set_default_timeout(timeout_ms)
            session = BrowserSession(page)
            context.on("request", lambda request: session.requests.append(request.url))
            context.on("requestfailed", lambda request: session.failed_requests.append(request.url))
            page.on("console", lambda message: session.console_errors.append(message.text)
                    if message.type == "error" else None)
            page.on("pageerror", lambda error: session.page_errors.append(str(error)))
            yield session
        finally:
            browser.close()
