"""Print the fuzz campaigns' figures (cases run, how they ended, per method and adapter) after the tests."""

from __future__ import annotations

from fuzz_ledger import LEDGER


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not LEDGER.cases:
        return
    terminalreporter.section("heatlens fuzz campaigns")
    for line in LEDGER.summary():
        terminalreporter.write_line(line)
