"""'module:name' specs for the user's own code (model factories, score functions), found in the current
folder too: the `heatlens` command runs from an installed script, whose import path lacks the folder the
user is working in, so `--model mymod:factory` would not find mymod.py beside them."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .errors import ModelError, close_matches, first_line


def import_user_object(spec: str) -> Any:
    """The object `name` of the module `package.module` (importable, or a .py file in the current folder),
    or a one-line ModelError that says which part is missing."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ModelError(f"expected 'package.module:name'. Received: {spec!r}")
    with current_folder_on_path():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
                raise ModelError(f"cannot import '{spec}': no module '{exc.name}' in the current folder "
                                 f"({os.getcwd()}) or on the Python path; run heatlens in the folder that holds "
                                 f"{exc.name.replace('.', '/')}.py, or install its package") from None
            raise ModelError(f"cannot import '{spec}': importing '{module_name}' raised ModuleNotFoundError: "
                             f"{first_line(exc)}") from None
        except Exception as exc:  # the module itself failed while importing (a SyntaxError, its own error)
            raise ModelError(f"cannot import '{spec}': importing it raised {type(exc).__name__}: "
                             f"{first_line(exc)}") from None
    if not hasattr(module, attr):
        public = [name for name in vars(module) if not name.startswith("_")]
        where = getattr(module, "__file__", None) or module_name
        raise ModelError(f"cannot import '{spec}': the module '{module_name}' ({where}) has no '{attr}'."
                         f"{close_matches(attr, public)}")
    return getattr(module, attr)


@contextmanager
def current_folder_on_path() -> Iterator[None]:
    """The current folder first on sys.path for the duration (as `python -c` has it), then removed again."""
    folder = os.getcwd()
    if folder in sys.path:
        yield
        return
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
