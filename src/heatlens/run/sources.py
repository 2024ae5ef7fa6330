"""What a run explains: the images of a folder (recursive), a glob, or a CSV / Parquet manifest (a path column
and an optional label column), listed once in a fixed order so that a resumed run sees the same list."""

from __future__ import annotations

import csv
import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import HeatlensError
from ..image_files import find_images

MANIFEST_SUFFIXES = (".csv", ".parquet", ".pq")


@dataclass(frozen=True)
class Item:
    """One image of a run: its position in the listing (the row id), its file and its label (None: none)."""

    id: int
    path: str
    label: str | None = None


def list_source(source: str | os.PathLike, path_column: str = "path", label_column: str = "label") -> list[Item]:
    """The images `source` names: a folder (and its sub-folders), a glob pattern, or a manifest file."""
    text = os.fspath(source)
    path = Path(text)
    if path.is_dir():
        files = find_images([path], recursive=True).files
        return [Item(i, str(file)) for i, (_, file) in enumerate(files)]
    if path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
        return _manifest_items(path, path_column, label_column)
    if glob.has_magic(text):
        found = sorted(p for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not found:
            raise HeatlensError(f"the pattern '{text}' matches no files; check it (quote it so the shell leaves "
                                "it to heatlens)")
        return [Item(i, p) for i, p in enumerate(found)]
    if path.is_file():
        raise HeatlensError(f"'{text}' is one file: heatlens run takes a folder, a glob pattern or a manifest "
                            f"({', '.join(MANIFEST_SUFFIXES)}); use heatlens explain for single images")
    raise HeatlensError(f"no folder, manifest or matching files at '{text}': check the path")


def _manifest_items(path: Path, path_column: str, label_column: str) -> list[Item]:
    """Rows of a CSV or Parquet manifest; relative paths are relative to the manifest's folder."""
    rows: list[dict[str, Any]] = _parquet_rows(path) if path.suffix.lower() != ".csv" else _csv_rows(path)
    columns = list(rows[0]) if rows else []
    if path_column not in columns:
        raise HeatlensError(f"the manifest '{path}' has no '{path_column}' column (it has: "
                            f"{', '.join(map(str, columns)) or 'none'}); name the column of image paths with "
                            "--path-column")
    items = []
    for i, row in enumerate(rows):
        file = str(row[path_column] or "").strip()
        if not file:
            raise HeatlensError(f"row {i + 1} of the manifest '{path}' has an empty '{path_column}'; fill it or "
                                "drop the row")
        label = row.get(label_column)
        label = None if label is None or str(label).strip() == "" else str(label).strip()
        items.append(Item(i, str(file if os.path.isabs(file) else path.parent / file), label))
    return items


def _csv_rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise HeatlensError(f"cannot read the manifest '{path}': {exc}") from None
    if not rows:
        raise HeatlensError(f"the manifest '{path}' has no rows: add one row per image")
    return rows


def _parquet_rows(path: Path) -> list[dict[str, object]]:
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except (OSError, ValueError) as exc:
        raise HeatlensError(f"cannot read the manifest '{path}': {exc}") from None
    if not rows:
        raise HeatlensError(f"the manifest '{path}' has no rows: add one row per image")
    return rows
