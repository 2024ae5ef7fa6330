"""A run's output files: Parquet shards written atomically (a temp file renamed into place, so a shard is there
whole or not at all), each carrying its failed images in its metadata, and the readers of a finished run."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .arrow import pyarrow

SHARDS = "shards"
ERRORS_KEY = b"heatlens.errors"
TEMP_SUFFIX = ".tmp"


def shard_path(out: Path, name: str) -> Path:
    return out / SHARDS / f"{name}.parquet"


def shard_files(out: Path) -> list[Path]:
    """The finished shards of a run (temp files of an interrupted write are not among them)."""
    folder = out / SHARDS
    return sorted(folder.glob("*.parquet")) if folder.is_dir() else []


def remove_temp_files(out: Path) -> None:
    """Drop the half-written temp files an interrupted run left (their shards are written again)."""
    folder = out / SHARDS
    for temp in folder.glob(f"*{TEMP_SUFFIX}") if folder.is_dir() else []:
        temp.unlink(missing_ok=True)


def write_shard(path: Path, tables: Iterable[Any]) -> tuple[int, list[dict[str, Any]]]:
    """Write the explained rows of `tables` (sorted by id) to `path` atomically, their failed images into its
    metadata; returns (rows written, failed images as {id, path, error})."""
    pa = pyarrow()
    import pyarrow.compute as pc

    good, errors = [], []
    for table in tables:
        failed = table.filter(pc.is_valid(table["error"]))
        errors += [{"id": r["id"], "path": r["path"], "error": r["error"]}
                   for r in failed.select(["id", "path", "error"]).to_pylist()]
        kept = table.filter(pc.is_null(table["error"])).drop_columns(["error"])
        if kept.num_rows:
            good.append(kept)
    if good:
        table = pa.concat_tables(good)
        table = table.take(pc.sort_indices(table["id"]))
    else:
        table = pa.table({"id": pa.array([], pa.int64()), "path": pa.array([], pa.string())})
    errors.sort(key=lambda e: e["id"])
    table = table.replace_schema_metadata({ERRORS_KEY: json.dumps(errors).encode()})
    atomic_write(path, lambda temp: pa.parquet.write_table(table, temp))
    return table.num_rows, errors


def atomic_write(path: Path, write: Any) -> None:
    """Call write(temp) for a temp file beside `path`, flush it to disk, and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")
    try:
        write(temp)
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def shard_errors(path: Path) -> list[dict[str, Any]]:
    """The failed images a shard recorded."""
    metadata = pyarrow().parquet.read_schema(path).metadata or {}
    return list(json.loads(metadata.get(ERRORS_KEY, b"[]")))


def shard_ids(path: Path) -> list[int]:
    """The ids a shard covers: its rows and its failed images."""
    rows = pyarrow().parquet.read_table(path, columns=["id"])["id"].to_pylist()
    return rows + [e["id"] for e in shard_errors(path)]


def read_rows(out: Path, columns: list[str] | None = None) -> Any:
    """Every explained row of a run, as one Arrow table sorted by id (None when no image was explained)."""
    pa = pyarrow()
    import pyarrow.compute as pc

    tables = [pa.parquet.read_table(path, columns=columns) for path in shard_files(out)]
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return None
    table = pa.concat_tables(tables)
    return table.take(pc.sort_indices(table["id"]))


def read_errors(out: Path) -> list[dict[str, Any]]:
    """Every failed image of a run, by id."""
    return sorted((e for path in shard_files(out) for e in shard_errors(path)), key=lambda e: e["id"])


def read_columns(out: Path, keep: Callable[[str], bool]) -> Any:
    """Every explained row of a run with only the columns `keep` accepts (the maps can stay on disk, so a large
    run's table stays small), as one Arrow table sorted by id; None when no image was explained."""
    pa = pyarrow()
    import pyarrow.compute as pc

    tables = []
    for path in shard_files(out):
        schema = pa.parquet.read_schema(path)
        if pa.parquet.read_metadata(path).num_rows:
            tables.append(pa.parquet.read_table(path, columns=[n for n in schema.names if n == "id" or keep(n)]))
    if not tables:
        return None
    table = pa.concat_tables(tables)
    return table.take(pc.sort_indices(table["id"]))


def read_row(out: Path, row_id: int) -> Any:
    """The explained row `row_id` of a run with all its columns, as a one-row Arrow table; None when no shard
    holds it (each shard is looked into through its id statistics, so this reads one shard's part)."""
    pq = pyarrow().parquet
    for path in shard_files(out):
        if not pq.read_metadata(path).num_rows:
            continue
        table = pq.read_table(path, filters=[("id", "=", int(row_id))])
        if table.num_rows:
            return table
    return None
