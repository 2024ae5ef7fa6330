"""Progress bars for long runs: rich's bar on a terminal, a one-line bar in a Jupyter notebook, silent
otherwise or when progress=False."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

REFRESH_S = 0.25  # the notebook bar is redrawn at most this often


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (an IPython shell with a kernel), told without importing IPython."""
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython is not None else None
    return shell is not None and (hasattr(shell, "kernel") or type(shell).__name__ == "ZMQInteractiveShell")


@contextlib.contextmanager
def progress_bar(total: int, label: str, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Yields `advance(n)`; draws a bar on stderr when enabled and stderr is a terminal or a notebook's."""
    if enabled and in_notebook():
        with text_bar(total, label, sys.stderr) as advance:
            yield advance
        return
    if not enabled or not sys.stderr.isatty():
        yield lambda _n: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


@contextlib.contextmanager
def text_bar(total: int, label: str, stream: TextIO, width: int = 30) -> Iterator[Callable[[int], None]]:
    """A bar redrawn on one line with carriage returns (which notebooks honour in their output), at most every
    REFRESH_S seconds and once at the end: 'SHAP partition [#####-----] 120/240 0:05 left'."""
    done, start, drawn = 0, time.monotonic(), 0.0

    def draw() -> None:
        filled = width * done // max(1, total)
        elapsed = time.monotonic() - start
        left = int(elapsed * (total - done) / done) if done else 0
        stream.write(f"\r{label} [{'#' * filled}{'-' * (width - filled)}] {done}/{total} "
                     f"{left // 60}:{left % 60:02d} left")
        stream.flush()

    def advance(n: int) -> None:
        nonlocal done, drawn
        done = min(total, done + n)
        if time.monotonic() - drawn >= REFRESH_S or done == total:
            drawn = time.monotonic()
            draw()

    yield advance
    stream.write("\n")
    stream.flush()
