"""heatlens.run.sources: folders (recursive), globs and CSV / Parquet manifests become one fixed listing."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from run_photos import write_photos

from heatlens.errors import HeatlensError
from heatlens.run.sources import list_source


def test_a_folder_lists_every_image_below_it_in_a_fixed_order(tmp_path: Path) -> None:
    paths = write_photos(tmp_path / "data", 7)
    (tmp_path / "data" / "notes.txt").write_text("not an image")
    (tmp_path / "data" / ".hidden.png").write_bytes(b"")
    items = list_source(tmp_path / "data")
    assert sorted(i.path for i in items) == sorted(str(p) for p in paths)
    assert [i.id for i in items] == list(range(7))
    assert list_source(tmp_path / "data") == items


def test_a_glob_takes_the_matching_files(tmp_path: Path) -> None:
    paths = write_photos(tmp_path / "data", 6)
    items = list_source(str(tmp_path / "data" / "**" / "*.jpg"))
    assert [i.path for i in items] == sorted(str(p) for p in paths if p.suffix == ".jpg")


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_manifest_gives_paths_relative_to_itself_and_labels(tmp_path: Path, kind: str) -> None:
    paths = write_photos(tmp_path / "data", 4)
    relative = [p.relative_to(tmp_path).as_posix() for p in paths]
    labels = ["1", "", "tabby", "3"]
    if kind == "csv":
        manifest = tmp_path / "list.csv"
        manifest.write_text("file,class\n" + "".join(f"{p},{lab}\n" for p, lab in zip(relative, labels, strict=True)))
    else:
        manifest = tmp_path / "list.parquet"
        pq.write_table(pa.table({"file": relative, "class": labels}), manifest)
    items = list_source(manifest, path_column="file", label_column="class")
    assert [i.path for i in items] == [str(p) for p in paths]
    assert [i.label for i in items] == ["1", None, "tabby", "3"]


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: d / "missing", "no folder, manifest or matching files"),
    (lambda d: str(d / "*.nothing"), "matches no files"),
    (lambda d: (d / "x.csv").write_text("name\na.png\n") and d / "x.csv", "has no 'path' column (it has: name)"),
    (lambda d: (d / "y.csv").write_text("path\n") and d / "y.csv", "has no rows"),
    (lambda d: (d / "z.csv").write_text("path\n\n,1\n") and d / "z.csv", "has an empty 'path'"),
    (lambda d: write_photos(d, 1)[0], "is one file"),
])
def test_unusable_sources_are_refused_with_the_fix(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(HeatlensError, match=message.replace("(", r"\(").replace(")", r"\)")):
        list_source(make(tmp_path))
