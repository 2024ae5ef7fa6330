"""The design rule for methods: they use the Network protocol (models.base, models.objectives), never the
layer that loads models or a framework adapter."""

from __future__ import annotations

import ast
from pathlib import Path

import heatlens.methods

LOADING = {"", "zoo", "blackbox", "pth", "torch", "keras"}


def _model_imports(path: Path) -> list[str]:
    """The heatlens.models modules a methods module imports ('' for the package itself)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 2 and (node.module or "").split(".")[0] == "models":
            found.append(".".join((node.module or "").split(".")[1:]))
    return found


def test_no_method_imports_model_loading_or_an_adapter():
    folder = Path(heatlens.methods.__file__).parent
    offending = {path.name: module for path in sorted(folder.glob("*.py")) for module in _model_imports(path)
                 if module in LOADING or "loading" in module or module.startswith(("torch", "keras"))}
    assert offending == {}
