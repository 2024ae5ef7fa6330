"""The fuzz campaigns' ledger: every case's ending, counted per outcome and per group, with a repro line each.

A case ends `ok` (finite, well-shaped result), `typed` (a one-line HeatlensError) or in one of the bad
outcomes below; the summary table is printed at the end of the session (see conftest.py) and the bad
outcomes are asserted to be zero by each campaign's last tests.
"""

from __future__ import annotations

import os
import signal
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from heatlens.errors import HeatlensError

# Bad outcomes, in the order a case is labelled when it has several (its primary outcome).
BAD = (
    "untyped",        # any other exception, or a HeatlensError whose message is not one line
    "timeout",        # the case ran past its time limit (a budget not bounded, or a hang)
    "nonfinite",      # NaN or inf in maps, attributions, logits or scores of an ok result
    "wrong_shape",    # an ok result whose arrays do not have the shapes the call asked for
    "wrong_answer",   # an ok result for an input that must be refused, or the wrong classes explained
    "model_changed",  # the model (or the process's framework state) differs after the call
    "input_changed",  # the caller's images or option arrays differ after the call
    "unstable",       # the same seeded call twice gave different maps
    "refused",        # a typed error for a call built only from valid inputs on a model that serves it
)
OUTCOMES = (*BAD, "typed", "ok")
LONG = os.environ.get("HEATLENS_FUZZ", "").strip().lower() == "long"
SCALE = 10 if LONG else 1


@dataclass
class Case:
    """One fuzz case: where it belongs, how to rebuild it, how the call ended and what went wrong."""

    campaign: str
    group: str
    repro: str
    adapter: str = ""
    ending: str = "ok"
    message: str = ""
    flags: dict[str, str] = field(default_factory=dict)

    def flag(self, outcome: str, detail: str) -> None:
        self.flags.setdefault(outcome, detail[:300])

    @property
    def outcome(self) -> str:
        for name in BAD:
            if name in self.flags:
                return name
        return self.ending

    def ended_with(self, exc: BaseException) -> None:
        """Record how the call raised: typed when it is a HeatlensError with a one-line message."""
        text = str(exc)
        self.message = f"{type(exc).__name__}: {text.strip().splitlines()[0] if text.strip() else ''}"[:300]
        if isinstance(exc, CaseTimeout):
            self.ending = "timeout"
            self.flag("timeout", self.message)
        elif isinstance(exc, HeatlensError) and text.strip() and "\n" not in text.strip():
            self.ending = "typed"
        else:
            self.ending = "untyped"
            why = "multi-line HeatlensError" if isinstance(exc, HeatlensError) else "untyped"
            self.flag("untyped", f"{why} {self.message}")


class Ledger:
    """All cases of the session, by campaign."""

    def __init__(self) -> None:
        self.cases: dict[str, list[Case]] = defaultdict(list)
        self.seconds: Counter[str] = Counter()

    def add(self, case: Case) -> None:
        self.cases[case.campaign].append(case)

    def with_flag(self, campaign: str, outcome: str) -> list[Case]:
        return [c for c in self.cases[campaign] if outcome in c.flags]

    def failure_message(self, campaign: str, outcome: str, shown: int = 8) -> str:
        """The first few cases with `outcome`, one distinct cause each, with their repro lines."""
        hits = self.with_flag(campaign, outcome)
        seen: dict[tuple[str, str], Case] = {}
        for case in hits:
            seen.setdefault((case.group, case.flags[outcome][:80]), case)
        lines = [f"{len(hits)} of {len(self.cases[campaign])} {campaign} cases ended {outcome} "
                 f"({len(seen)} distinct group/cause pairs); first ones:"]
        for case in list(seen.values())[:shown]:
            lines.append(f"  [{case.group}] {case.flags[outcome]}\n      repro: {case.repro}")
        return "\n".join(lines)

    def summary(self) -> list[str]:
        """Per campaign: the outcome totals, then a table of outcomes per group."""
        lines: list[str] = []
        for campaign, cases in self.cases.items():
            totals = Counter(c.outcome for c in cases)
            flagged = Counter(f for c in cases for f in c.flags)
            mode = "long" if LONG else "default"
            lines.append(f"heatlens fuzz [{campaign}, {mode} mode]: {len(cases)} cases in "
                         f"{self.seconds[campaign]:.0f} s")
            lines.append("  " + ", ".join(f"{name} {totals[name]}" for name in OUTCOMES if totals[name])
                         + "   (cases flagged, any order: "
                         + (", ".join(f"{k} {v}" for k, v in flagged.items()) or "none") + ")")
            columns = [name for name in OUTCOMES if totals[name]]
            for title, key in (("method / family", lambda c: c.group), ("adapter", lambda c: c.adapter)):
                lines.extend(_table(title, columns, cases, key))
        return lines


def _table(title: str, columns: list[str], cases: list[Case], key: Callable[[Case], str]) -> list[str]:
    """Outcome counts per value of key(case), one row each, '.' for none."""
    rows: dict[str, Counter[str]] = defaultdict(Counter)
    for case in cases:
        rows[key(case) or "-"][case.outcome] += 1
    width = max(len(title), *(len(r) for r in rows)) + 2
    lines = ["  " + title.ljust(width) + "".join(name.rjust(max(len(name) + 1, 7)) for name in columns)]
    for row in sorted(rows):
        lines.append("  " + row.ljust(width) + "".join(str(rows[row][name] or ".").rjust(max(len(name) + 1, 7))
                                                        for name in columns))
    return lines


LEDGER = Ledger()


class CaseTimeout(BaseException):
    """Raised inside a case that ran past its limit (a BaseException, so library code cannot swallow it)."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block with CaseTimeout after `seconds` (SIGALRM; pytest runs tests in the main thread)."""

    def expire(signum: int, frame: object) -> None:
        raise CaseTimeout(f"ran longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def campaign(name: str, examples: int) -> Callable[[Callable], Callable]:
    """A hypothesis test of `examples` generated cases (no shrinking, no database), seeded by its name so
    every run draws the same cases; the test takes one `data` argument."""
    def decorate(fn: Callable) -> Callable:
        seeded = seed(zlib.crc32(name.encode()))(given(st.data())(fn))
        return settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
                        suppress_health_check=list(HealthCheck), print_blob=False)(seeded)

    return decorate
