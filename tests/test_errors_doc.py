"""docs/errors.md lists every error class and every message heatlens raises, with the fix: checked against the
source, both ways (each raise site's message is documented under its class; each documented message exists)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import heatlens.errors

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "heatlens"
DOC = ROOT / "docs" / "errors.md"
CLASSES = {name for name, value in vars(heatlens.errors).items()
           if isinstance(value, type) and issubclass(value, heatlens.errors.HeatlensError)}


def literal_runs(node: ast.expr | None) -> list[str] | None:
    """The fixed pieces of a message (a string or an f-string), without the punctuation and spaces around
    them; None for messages built elsewhere (variables, calls)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        runs = [node.value]
    elif isinstance(node, ast.JoinedStr):
        runs = [part.value for part in node.values if isinstance(part, ast.Constant)]
    else:
        return None
    return [run for run in (run.strip(" .,:;'\"()=[]") for run in runs) if run] or None


def message_fragment(runs: list[str]) -> str:
    """The fixed text a message is recognised by: its first literal run of 12+ characters, else its longest."""
    return next((run for run in runs if len(run) >= 12), max(runs, key=len))


def raise_sites() -> list[tuple[str, str, list[str]]]:
    """(where, error class, literal runs of the message) for every `SomeHeatlensError("...")` built in the
    package (raised there, or returned to be raised by the caller)."""
    sites = []
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CLASSES:
                runs = literal_runs(node.args[0] if node.args else None)
                if runs is not None:
                    sites.append((f"{path.relative_to(SOURCE)}:{node.lineno}", node.func.id, runs))
    return sites


def plain(text: str) -> str:
    """Text with backticks dropped and white space folded, for comparing messages with the page."""
    return " ".join(text.replace("`", "").split())


def sections() -> dict[str, str]:
    """The doc's text under each '## ClassName' heading."""
    parts = re.split(r"^## (\w+)\s*$", DOC.read_text(), flags=re.MULTILINE)
    return {name: body for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def test_every_error_class_has_a_section():
    assert set(sections()) >= CLASSES, f"missing sections: {sorted(CLASSES - set(sections()))}"


def test_every_raised_message_is_documented_under_its_class():
    found = {name: plain(body) for name, body in sections().items()}
    missing = [f"{where} {cls}: {message_fragment(runs)!r}" for where, cls, runs in raise_sites()
               if plain(message_fragment(runs)) not in found.get(cls, "")]
    assert not missing, "undocumented messages in docs/errors.md:\n" + "\n".join(missing)


def test_every_documented_message_is_raised():
    raised = " | ".join(plain(run) for _, _, runs in raise_sites() for run in runs)
    first_cells = [row.split("|")[1] for body in sections().values() for row in body.splitlines()
                   if row.startswith("| `")]
    documented = {span for cell in first_cells for span in re.findall(r"`([^`]+)`", cell)}
    stale = sorted(span for span in documented if plain(span) not in raised)
    assert not stale, f"docs/errors.md documents messages nothing raises: {stale}"


def test_the_scan_sees_the_package():
    assert len(raise_sites()) > 100
