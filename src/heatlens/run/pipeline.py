"""run(): explain every image of a source into Parquet shards, resumably. The listing is saved once and cut into
shards of `shard_size` images; a shard is written whole or not at all, so a resumed run redoes only the shards
that are missing, and its output equals an uninterrupted run's row for row."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import chain, islice
from pathlib import Path
from typing import Any

from ..classes import find_class
from ..errors import HeatlensError, TargetError
from ..models import Network
from ..version import __version__
from .arrow import pyarrow
from .decoding import batched, decoded, default_threads
from .explaining import BatchExplainer, Plan
from .meter import Meter, Summary
from .shards import atomic_write, read_errors, remove_temp_files, shard_files, shard_ids, shard_path, write_shard
from .sources import Item, list_source

MANIFEST = "run.json"
ITEMS = "items.parquet"
ERRORS_FILE = "errors.csv"
RUN_SCHEMA = 1
ENGINES = ("local", "ray")


def run(
    model: Network,
    source: str | os.PathLike,
    out: str | os.PathLike,
    plan: Plan,
    batch_size: int = 32,
    shard_size: int = 1024,
    resume: bool = False,
    threads: int | None = None,
    engine: str = "local",
    address: str | None = None,
    actors: int | None = None,
    model_factory: Callable[[], Network] | None = None,
    model_label: str | None = None,
    path_column: str = "path",
    label_column: str = "label",
    progress: bool = True,
) -> Summary:
    """Explain every image `source` names (a folder, a glob or a CSV/Parquet manifest) with `plan` into `out`:
    shards/*.parquet (one row per image), items.parquet (the listing), errors.csv (images that could not be
    read, with the reason) and run.json (the settings and, once finished, the summary). `resume` continues a run
    in `out` with the same settings; a run in `out` is never overwritten. engine 'ray' runs the batches on Ray
    Data model actors (at `address`, else a local cluster), built on each worker by `model_factory`."""
    if engine not in ENGINES:
        raise HeatlensError(f"--engine takes {' or '.join(ENGINES)}. Received: {engine!r}")
    if batch_size < 1 or shard_size < 1:
        raise HeatlensError(f"batch and shard sizes must be at least 1. Received: batch {batch_size}, "
                            f"shard {shard_size}")
    folder = Path(out)
    settings = {"source": os.fspath(source), "model": model_label or model.name, "plan": plan.record(),
                "batch_size": batch_size, "shard_size": shard_size, "engine": engine}
    items = _start(folder, settings, resume, source, path_column, label_column)
    label_ids = _label_ids(items, model, plan.target == "label")
    remove_temp_files(folder)
    started = time.monotonic()
    explainer = BatchExplainer(model, plan, folder, label_ids)
    done_ids = {i for path in shard_files(folder) for i in shard_ids(path)}
    todo = [item for item in items if item.id not in done_ids]
    meter = Meter(len(items), len(items) - len(todo), enabled=progress)
    written = [0, 0]
    errors = read_errors(folder)

    def commit(name: str, tables: Sequence[Any]) -> None:
        rows, failed = _written(folder, name, tables)
        errors.extend(failed)
        written[0] += rows
        written[1] += len(failed)
        _write_errors(folder, errors)

    try:
        if engine == "local":
            _run_local(explainer, todo, shard_size, batch_size, threads or default_threads(), meter, commit)
        else:
            from .ray_engine import run_on_ray

            tables = run_on_ray(model_factory or (lambda: model), plan, folder, label_ids, todo, batch_size,
                                address, actors, threads or 1)
            _commit_in_shards(tables, shard_size, meter, commit, attempt=_attempt(folder))
    except OSError as exc:  # a full disk: the shards written so far are whole, and resuming continues after them
        where = f" ('{exc.filename}')" if exc.filename else ""
        raise HeatlensError(f"cannot write the run into '{folder}': {exc.strerror or exc}{where}; free some space, "
                            "then rerun the same command with --resume") from None
    finally:
        meter.close()
    summary = Summary(written[0], written[1], time.monotonic() - started, len(items) - len(todo))
    _finish(folder, settings, explainer, summary, len(items))
    return summary


def _run_local(explainer: BatchExplainer, todo: list[Item], shard_size: int, batch_size: int, threads: int,
               meter: Meter, commit: Callable[[str, Sequence[Any]], None]) -> None:
    """Shards in order; the decoder reads on across shard ends, so the model never waits between shards."""
    shards: dict[int, list[Item]] = {}
    for item in todo:
        shards.setdefault(item.id // shard_size, []).append(item)
    keep = explainer.plan.overlays
    stream = decoded(chain.from_iterable(shards.values()), explainer.network, threads, keep_photos=keep)
    for index, chunk in shards.items():
        tables = []
        for batch in batched(islice(stream, len(chunk)), batch_size):
            tables.append(explainer(batch))
            meter.advance(len(batch))
        commit(f"part-{index:06d}", tables)


def _commit_in_shards(tables: Iterator[Any], shard_size: int, meter: Meter,
                      commit: Callable[[str, Sequence[Any]], None], attempt: int) -> None:
    """Tables arriving in any order (Ray), gathered into shards of about `shard_size` rows."""
    pending: list[Any] = []
    count = number = 0
    for table in tables:
        pending.append(table)
        count += table.num_rows
        meter.advance(table.num_rows)
        if count >= shard_size:
            commit(f"ray-{attempt:03d}-{number:06d}", pending)
            pending, count, number = [], 0, number + 1
    if pending:
        commit(f"ray-{attempt:03d}-{number:06d}", pending)


def _attempt(folder: Path) -> int:
    """The number of this Ray session in the run (its shards' names must not meet an earlier session's)."""
    return len({path.name.split("-")[1] for path in shard_files(folder) if path.name.startswith("ray-")})


def _written(folder: Path, name: str, tables: Sequence[Any]) -> tuple[int, list[dict[str, Any]]]:
    return write_shard(shard_path(folder, name), tables)


def _start(folder: Path, settings: dict[str, Any], resume: bool, source: str | os.PathLike, path_column: str,
           label_column: str) -> list[Item]:
    """A new run's listing saved with its settings, or a resumed run's listing after its settings are checked."""
    manifest = folder / MANIFEST
    if manifest.exists() and not resume:
        raise HeatlensError(f"'{folder}' already holds a run: pass --resume to continue it, or choose another --out")
    if resume and not manifest.exists():
        raise HeatlensError(f"there is no run to resume in '{folder}' (no {MANIFEST}); drop --resume to start one")
    if resume:
        recorded = json.loads(manifest.read_text(encoding="utf-8"))
        for key, value in settings.items():
            if recorded["settings"].get(key) != value:
                raise HeatlensError(f"the run in '{folder}' was started with {key} {recorded['settings'].get(key)!r}, "
                                    f"not {value!r}: resume it with the same settings, or choose another --out")
        return _read_items(folder)
    if folder.exists() and not folder.is_dir():
        raise HeatlensError(f"--out '{folder}' is a file: give a folder for the run's output")
    items = list_source(source, path_column, label_column)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        pa = pyarrow()
        table = pa.table({"id": pa.array([i.id for i in items], pa.int64()),
                          "path": pa.array([i.path for i in items], pa.string()),
                          "label": pa.array([i.label for i in items], pa.string())})
        atomic_write(folder / ITEMS, lambda temp: pa.parquet.write_table(table, temp))
        _write_manifest(folder, {"schema_version": RUN_SCHEMA, "created": _now(), "settings": settings,
                                 "images": len(items), "complete": False, "versions": _versions()})
    except OSError as exc:
        raise HeatlensError(f"cannot write into the output folder '{folder}': {exc.strerror or exc}; "
                            "choose another --out") from None
    return items


def _read_items(folder: Path) -> list[Item]:
    rows = pyarrow().parquet.read_table(folder / ITEMS).to_pylist()
    return [Item(r["id"], r["path"], r["label"]) for r in rows]


def _label_ids(items: list[Item], network: Network, needed: bool) -> dict[str, int]:
    """Each label's class id: a number is an id, a name is looked up in the model's classes. With
    --target label, every image needs a label."""
    if needed and (missing := [i for i in items if i.label is None]):
        raise TargetError(f"--target label needs a label for every image, and {len(missing)} have none (first: "
                          f"'{missing[0].path}'); give a manifest with a label column, or another --target")
    ids: dict[str, int] = {}
    for label in sorted({i.label for i in items if i.label is not None}):
        if label.lstrip("-").isdigit():
            ids[label] = int(label)
        elif network.classes is None:
            raise TargetError(f"the label '{label}' is a class name, and {network.name} has no class names: pass "
                              "--classes, or give labels as class ids")
        else:
            ids[label] = find_class(label, network.classes)
    count = len(network.classes) if network.classes is not None else None
    if count is not None and (wrong := [label for label, i in ids.items() if not 0 <= i < count]):
        raise TargetError(f"the label '{wrong[0]}' is no class id of {network.name}, which has classes 0..{count - 1}; "
                          "fix the manifest's label column")
    return ids


def _write_errors(folder: Path, errors: list[dict[str, Any]]) -> None:
    """errors.csv: one row per image that could not be explained (path, reason), rewritten whole each shard."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=["id", "path", "error"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(errors, key=lambda e: e["id"]))
    atomic_write(folder / ERRORS_FILE, lambda temp: temp.write_text(text.getvalue(), encoding="utf-8"))


def _finish(folder: Path, settings: dict[str, Any], explainer: BatchExplainer, summary: Summary, total: int) -> None:
    """run.json completed: the layers used, the row and error counts of the whole run, and this session's summary."""
    recorded = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    rows = sum(pyarrow().parquet.read_metadata(path).num_rows for path in shard_files(folder))
    errors = len(read_errors(folder))
    if not (folder / ERRORS_FILE).exists():
        _write_errors(folder, [])
    notes = [f"{explainer.clipped} maps had values past float16's range and were stored clipped"] \
        if explainer.clipped else []
    layers = {**recorded.get("layers", {}), **{m: layer for m, layer in explainer.layers.items()}}
    _write_manifest(folder, {**recorded, "settings": settings, "complete": rows + errors == total, "rows": rows,
                             "errors": errors, "layers": layers, "shards": [p.name for p in shard_files(folder)],
                             "maps": {"dtype": "float16", "grid": "layer"},
                             "last_session": {"finished": _now(), "images": summary.images, "errors": summary.errors,
                                              "seconds": round(summary.seconds, 3),
                                              "images_per_s": round(summary.rate, 3), "resumed": summary.resumed},
                             "notes": notes})


def _write_manifest(folder: Path, record: dict[str, Any]) -> None:
    text = json.dumps(record, indent=2)
    atomic_write(folder / MANIFEST, lambda temp: temp.write_text(text, encoding="utf-8"))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _versions() -> dict[str, str]:
    return {"heatlens": __version__, "pyarrow": pyarrow().__version__}
