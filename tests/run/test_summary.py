"""A run's per-class summary (heatlens.run.summary) and its report: counts, accuracy and mean maps recomputed here
from the rows, the concentration from its definition, and `heatlens report RUN_FOLDER`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from run_photos import write_photos
from typer.testing import CliRunner

from heatlens.cli import app
from heatlens.errors import HeatlensError
from heatlens.run import Plan, run
from heatlens.run.shards import read_rows
from heatlens.run.summary import concentration, overview


def test_concentration_is_the_positive_mass_in_the_top_tenth_of_cells() -> None:
    even = np.ones((1, 10, 10))
    peaked = np.zeros((1, 10, 10))
    peaked[0, 3, 4] = 5.0
    mixed = np.arange(100, dtype=np.float32).reshape(1, 10, 10) - 50  # positives 1..49
    expected_mixed = sum(range(40, 50)) / sum(range(1, 50))
    values = concentration(np.concatenate([even, peaked, mixed, np.zeros((1, 10, 10))]))
    np.testing.assert_allclose(values[:3], [0.1, 1.0, expected_mixed], rtol=1e-6)
    assert np.isnan(values[3])


@pytest.fixture
def labelled_run(tiny_network, tmp_path: Path) -> Path:
    paths = write_photos(tmp_path / "data", 10)
    manifest = tmp_path / "labels.csv"
    manifest.write_text("path,label\n" + "".join(f"{p},{i % 4}\n" for i, p in enumerate(paths)))
    run(tiny_network, manifest, tmp_path / "out", Plan(("gradcam",)), batch_size=4, shard_size=3, progress=False)
    return tmp_path / "out"


def test_the_overview_groups_rows_by_predicted_class(labelled_run: Path) -> None:
    rows = read_rows(labelled_run)
    predicted = np.array([ids[0] for ids in rows["pred_ids"].to_pylist()])
    labels = np.array(rows["label_id"].to_pylist())
    maps = rows["map_gradcam"].combine_chunks().to_numpy_ndarray()[:, 0].astype(np.float32)
    result = overview(labelled_run)
    assert result.rows == 10 and (result.labelled, result.correct) == (10, int((predicted == labels).sum()))
    for summary in result.classes["gradcam"]:
        mine = predicted == summary.id
        assert summary.images == mine.sum() and summary.correct == (labels[mine] == summary.id).sum()
        scaled = maps[mine] / maps[mine].reshape(mine.sum(), -1).max(axis=1)[:, None, None]
        np.testing.assert_allclose(summary.mean_map, scaled.mean(axis=0), rtol=1e-5)
        cells = np.sort(maps[mine].reshape(mine.sum(), -1), axis=1)
        share = cells[:, -int(np.ceil(0.1 * cells.shape[1])):].sum(1) / cells.sum(1)
        np.testing.assert_allclose(summary.concentration, share.mean(), rtol=1e-5)
    assert [s.images for s in result.classes["gradcam"]] == sorted((s.images for s in result.classes["gradcam"]),
                                                                    reverse=True)


def test_heatlens_report_opens_a_run_folder(labelled_run: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["report", str(labelled_run), "--out", str(tmp_path / "run.html")])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "run.html").read_text()
    first = overview(labelled_run).classes["gradcam"][0]
    assert "gradcam: per predicted class" in text and f"{first.name} (id {first.id})" in text
    assert f"{overview(labelled_run).accuracy:.1%} of 10 labelled images" in text
    with pytest.raises(HeatlensError, match="holds no heatlens run"):
        overview(tmp_path)


def test_the_overview_and_report_give_each_class_its_metric_means(tiny_network, tmp_path: Path) -> None:
    paths = write_photos(tmp_path / "data", 6)
    plan = Plan(("gradcam",), metrics=("deletion",), metric_options={"deletion": {"steps": 4}})
    run(tiny_network, tmp_path / "data", tmp_path / "out", plan, batch_size=4, shard_size=4, progress=False)
    rows = read_rows(tmp_path / "out")
    predicted = np.array([ids[0] for ids in rows["pred_ids"].to_pylist()])
    scores = np.array([values[0] for values in rows["deletion_gradcam"].to_pylist()])
    assert len(scores) == len(paths) and np.isfinite(scores).all()
    result = overview(tmp_path / "out")
    for summary in result.classes["gradcam"]:
        assert summary.metric("deletion") == pytest.approx(scores[predicted == summary.id].mean(), rel=1e-6)
        assert summary.metric("insertion") is None
    report = CliRunner().invoke(app, ["report", str(tmp_path / "out"), "--out", str(tmp_path / "run.html")])
    assert report.exit_code == 0, report.output
    text = (tmp_path / "run.html").read_text()
    first = result.classes["gradcam"][0]
    assert "deletion (mean, lower is better)" in text and f"<td>{first.metric('deletion'):.4g}</td>" in text
