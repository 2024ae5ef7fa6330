"""Progress of a long run on stderr: images done of the total, rate and time left, redrawn in place on a
terminal and written as a line every few seconds into logs; and the summary at the end."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import TextIO

TERMINAL_REFRESH_S = 0.5
LOG_REFRESH_S = 10.0


def clock(seconds: float) -> str:
    """Seconds as h:mm:ss."""
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def speed(rate: float) -> str:
    """A rate as people read it: '85.3 images/s', or below one image a second '38.2 s/image' (never '0.0 images/s')."""
    if rate >= 1:
        return f"{rate:.1f} images/s"
    return f"{1 / rate:.1f} s/image" if rate > 0 else "no image yet"


@dataclass
class Summary:
    """What a run did: images explained and failed (this session), how long it took, and how many were done before."""

    images: int
    errors: int
    seconds: float
    resumed: int = 0

    @property
    def rate(self) -> float:
        return (self.images + self.errors) / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        before = f" ({self.resumed} done before, not redone)" if self.resumed else ""
        listed = " (listed in errors.csv)" if self.errors else ""
        return (f"{self.images} images explained, {self.errors} failed{listed} in "
                f"{clock(self.seconds)}: {speed(self.rate)}{before}")


class Meter:
    """Counts images as they finish and shows `done/total`, the rate and the time left."""

    def __init__(self, total: int, done: int = 0, enabled: bool = True, stream: TextIO | None = None) -> None:
        self.total, self.done, self.start_done = total, done, done
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty()
        self.start = self.drawn = time.monotonic()

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.enabled and now - self.drawn >= (TERMINAL_REFRESH_S if self.terminal else LOG_REFRESH_S):
            self.drawn = now
            self.stream.write(("\r" if self.terminal else "") + self.status(now) + ("" if self.terminal else "\n"))
            self.stream.flush()

    def status(self, now: float) -> str:
        """'1200/5000 images (24%), 85.3 images/s, 0:00:44 left'."""
        seconds = max(now - self.start, 1e-9)
        rate = (self.done - self.start_done) / seconds
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        share = 100 * self.done // max(1, self.total)
        return f"{self.done}/{self.total} images ({share}%), {speed(rate)}, {clock(left)} left"

    def close(self) -> None:
        if self.enabled and self.terminal:
            self.stream.write("\n")
            self.stream.flush()
