"""Class names from 'imagenet', a text file or a list; anything else is one ModelError naming it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from heatlens.classes import class_names
from heatlens.errors import ModelError


def test_names_from_imagenet_a_file_or_a_list(tmp_path):
    assert class_names("imagenet")[281] == "tabby"
    (tmp_path / "names.txt").write_text("ant\n\n  bee  \ncow\n", encoding="utf-8")
    assert class_names(tmp_path / "names.txt") == ["ant", "bee", "cow"]
    assert class_names(str(tmp_path / "names.txt")) == ["ant", "bee", "cow"]
    assert class_names(("x", "y")) == ["x", "y"]
    assert class_names(None) is None


@pytest.mark.parametrize(("content", "message"), [
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "is not UTF-8 text"),
    (b"ant\x00bee\n", "contains NUL bytes"),
    (b"", "has no class names"),
    (b" \n\t\n", "has no class names"),
])
def test_files_that_hold_no_names_are_refused(tmp_path, content, message):
    path = tmp_path / "classes.txt"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=message) as caught:
        class_names(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_folders_missing_files_and_empty_lists_are_refused(tmp_path):
    with pytest.raises(ModelError, match="is a folder"):
        class_names(tmp_path)
    with pytest.raises(ModelError, match="is neither 'imagenet' nor a text file"):
        class_names(tmp_path / "missing.txt")
    with pytest.raises(ModelError, match="empty list"):
        class_names([])


def _unreadable_file(tmp_path: Path) -> Path:
    """A file that exists but cannot be read by this process (a write-only kernel file for root)."""
    if os.name == "posix" and hasattr(os, "geteuid") and os.geteuid() != 0:
        path = tmp_path / "locked.txt"
        path.write_text("ant\n")
        path.chmod(0)
        return path
    path = Path("/proc/self/clear_refs")
    if not path.is_file():
        pytest.skip("no unreadable file available here")
    return path


def test_a_file_that_cannot_be_read_is_refused(tmp_path):
    path = _unreadable_file(tmp_path)
    with pytest.raises(ModelError, match=f"cannot read the classes file '{path}': "):
        class_names(path)
