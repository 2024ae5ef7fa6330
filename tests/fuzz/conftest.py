"""Print the fuzz campaigns' figures (cases run, how they ended, per method and adapter) after the tests;
with HEATLENS_FUZZ_REPORT=PATH also write every case with a bad outcome to PATH, one JSON object a line."""

from __future__ import annotations

import json
import os

from fuzz_ledger import LEDGER


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not LEDGER.cases:
        return
    terminalreporter.section("heatlens fuzz campaigns")
    for line in LEDGER.summary():
        terminalreporter.write_line(line)
    report = os.environ.get("HEATLENS_FUZZ_REPORT")
    if report:
        with open(report, "w", encoding="utf-8") as out:
            for cases in LEDGER.cases.values():
                for case in cases:
                    if case.flags:
                        out.write(json.dumps({"campaign": case.campaign, "group": case.group, "adapter": case.adapter,
                                              "outcome": case.outcome, "flags": case.flags, "message": case.message,
                                              "repro": case.repro}, ensure_ascii=False) + "\n")
        terminalreporter.write_line(f"cases with bad outcomes written to {report}")
