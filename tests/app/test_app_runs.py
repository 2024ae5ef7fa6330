"""The app's run tab without a browser (heatlens.app.runs): a run made by the real `heatlens run` pipeline opened,
its rows as Parquet holds them, filtered by predicted class and by right or wrong, a row's stored map drawn over
its photo where a fresh heatlens.explain puts it, the per-class summary, and the one-line refusals."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from overlay_check import check_overlay
from PIL import Image

import heatlens
from heatlens.app import runs
from heatlens.errors import HeatlensError, ImageError


@pytest.fixture(scope="module")
def opened(app_run) -> runs.OpenedRun:
    return runs.open_run(app_run.out)


def parquet_rows(out: Path) -> list[dict]:
    """The shards' rows read straight with pyarrow, by id: the reference the app's table is checked against."""
    rows = [r for path in sorted((out / "shards").glob("*.parquet")) for r in pq.read_table(path).to_pylist()]
    return sorted(rows, key=lambda r: r["id"])


def test_the_table_lists_every_explained_row_as_parquet_holds_it(opened, app_run):
    stored = parquet_rows(app_run.out)
    listed, matching = runs.table(opened)
    assert matching == len(listed) == len(stored) == 5
    assert runs.headings(opened) == ["id", "path", "predicted", "target", "score", "label", "right",
                                     "average_drop (gradcam)"]
    for row, expected in zip(listed, stored, strict=True):
        assert row[0] == expected["id"] and row[1] == app_run.photos[expected["id"]].name
        assert row[2].startswith(expected["pred_names"][0] + " ")
        assert row[3] == expected["target_names"][0] and row[4] == pytest.approx(expected["target_probs"][0], abs=1e-4)
        assert row[5] == str(app_run.labels[row[0]]) and row[6] == ("right" if row[0] % 2 == 0 else "wrong")
        assert row[7] == pytest.approx(expected["average_drop_gradcam"][0], abs=1e-4)


def test_the_filters_keep_one_predicted_class_and_right_or_wrong_rows(opened, app_run):
    counts = Counter(app_run.predicted)
    for class_id, count in counts.items():
        listed, matching = runs.table(opened, class_id)
        assert matching == count and {r[0] for r in listed} == {i for i, p in enumerate(app_run.predicted)
                                                              if p == class_id}
    assert [r[0] for r in runs.table(opened, outcome="right")[0]] == [0, 2, 4]
    assert [r[0] for r in runs.table(opened, outcome="wrong")[0]] == [1, 3]
    first = app_run.predicted[0]
    assert [r[0] for r in runs.table(opened, first, "wrong")[0]] == [i for i in (1, 3) if app_run.predicted[i] == first]
    choices = runs.class_choices(opened)
    assert choices[0] == ("every predicted class (5)", runs.ALL_CLASSES)
    assert sorted(c for _, c in choices[1:]) == sorted(counts)
    with pytest.raises(HeatlensError, match="the outcome filter takes all, right, wrong"):
        runs.table(opened, outcome="maybe")


def test_a_row_shows_its_stored_map_over_its_photo_where_a_fresh_explanation_puts_it(opened, lite0, cat):
    [(tile, title)] = runs.row_tiles(opened, 0)
    direct = heatlens.explain(lite0, cat, "gradcam")
    assert title.startswith(f"gradcam @ {direct.layer} · {direct.targets.names[0][0]}")
    check_overlay(tile[: cat.shape[0]], cat, direct.maps[0, 0], direct.input_box)
    [result] = runs.row_results(opened, 0)
    assert result.maps.shape[-2:] != cat.shape[:2], "the stored map is at the layer's grid, not the photo's"
    assert result.input_box == pytest.approx(direct.input_box)


def test_the_summary_is_the_reports_per_class_summary(opened, app_run):
    counts = Counter(app_run.predicted)
    rows = runs.class_rows(opened)
    assert [(r[0], r[2]) for r in rows] == [("gradcam", n) for n in sorted(counts.values(), reverse=True)]
    for r in rows:
        class_id = int(r[1].rsplit("id ", 1)[1].rstrip(")"))
        ids = [i for i, p in enumerate(app_run.predicted) if p == class_id]
        right = sum(i % 2 == 0 for i in ids)
        assert r[3] == f"{right / len(ids):.1%} of {len(ids)}" and 0.1 <= r[4] <= 1
    pictures = runs.mean_maps(opened)
    assert len(pictures) == len(counts) and all(p.shape == (96, 96, 3) for p, _ in pictures)
    facts = dict(runs.facts(opened))
    assert facts["photos under"] == str(app_run.corrupt.parent)
    assert facts["images"] == "5 explained, 1 failed, of 6"
    assert facts["accuracy"] == "60.0% of 5 labelled images (top-1)"
    [(_, path, reason)] = runs.errors(opened)
    assert path == str(app_run.corrupt) and "not a readable image" in reason


def copied(app_run, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(app_run.out, out)
    return out


def test_a_folder_that_is_no_run_or_lacks_a_shard_is_refused_in_one_line(app_run, tmp_path):
    with pytest.raises(HeatlensError, match=r"^no run folder given"):
        runs.open_run("  ")
    with pytest.raises(HeatlensError, match=r"^there is no folder '.*nowhere': give the --out folder"):
        runs.open_run(tmp_path / "nowhere")
    with pytest.raises(HeatlensError, match=r"holds no heatlens run \(no run.json and shards/\)"):
        runs.open_run(tmp_path)
    out = copied(app_run, tmp_path)
    listed = json.loads((out / "run.json").read_text())["shards"]
    (out / "shards" / listed[1]).unlink()
    with pytest.raises(HeatlensError, match=rf"lacks 1 of its {len(listed)} shards \(first: shards/{listed[1]}\): "
                                            r"put them back, or rerun the same `heatlens run` with --resume"):
        runs.open_run(out)


def test_a_damaged_shard_or_record_is_refused_in_one_line(app_run, tmp_path):
    out = copied(app_run, tmp_path)
    (out / "shards" / json.loads((out / "run.json").read_text())["shards"][0]).write_bytes(b"no parquet here")
    damaged = r"^a file of the run in .* cannot be read \(ArrowInvalid: .*\): delete the damaged shard and rerun"
    with pytest.raises(HeatlensError, match=damaged) as caught:
        runs.open_run(out)
    assert "\n" not in str(caught.value)
    (out / "run.json").write_text("{ not json")
    with pytest.raises(HeatlensError, match=r"^cannot read '.*run.json'.*the run's record is damaged"):
        runs.open_run(out)


def test_a_photo_moved_or_changed_since_the_run_is_refused_in_one_line(opened, app_run):
    photo = app_run.photos[2]
    kept = photo.read_bytes()
    try:
        photo.unlink()
        with pytest.raises(ImageError, match=r"the photo '.*made0.png' of row 2 is not there any more$"):
            runs.row_tiles(opened, 2)
        Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(photo)
        with pytest.raises(ImageError, match=r"is 10x12 now, and was 64x80 when the run explained it"):
            runs.row_tiles(opened, 2)
    finally:
        photo.write_bytes(kept)
    with pytest.raises(HeatlensError, match="has no explained row 99"):
        runs.row_tiles(opened, 99)


def test_an_unfinished_run_opens_with_what_its_shards_hold(app_run, tmp_path):
    out = copied(app_run, tmp_path)
    record = json.loads((out / "run.json").read_text())
    del record["shards"]  # as run.json is until the run's end
    (out / "run.json").write_text(json.dumps({**record, "complete": False}))
    opened = runs.open_run(out)
    assert dict(runs.facts(opened))["images"] == "5 explained, 1 failed, of 6 (the run is not finished: resume it)"
    assert runs.table(opened)[1] == 5


def test_without_labels_there_is_no_right_or_wrong(opened):
    unlabelled = replace(opened, summary=replace(opened.summary, labelled=0))
    assert runs.headings(unlabelled) == ["id", "path", "predicted", "target", "score", "average_drop (gradcam)"]
    assert all(len(row) == 6 for row in runs.table(unlabelled)[0])
    with pytest.raises(HeatlensError, match="this run has no labels, so no row is right or wrong"):
        runs.table(unlabelled, outcome="wrong")
