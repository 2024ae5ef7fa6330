"""The heatlens evaluate command: the printed table, evaluation.csv / evaluation-images.csv / evaluation.json, the
curve plots, --boxes for localisation metrics, and one-line errors with exit code 2 before the model loads."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from heatlens import metrics
from heatlens.cli import app

pytest.importorskip("torch")

runner = CliRunner()
QUICK = ["--model", "toy_models:tiny_cnn", "-p", "steps=5", "--batch-size", "6"]


@pytest.fixture
def photos(tmp_path, rng):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(folder / name)
    return folder


def test_evaluate_prints_the_table_and_writes_csv_json_and_plots(tmp_path, photos):
    out = tmp_path / "out"
    result = runner.invoke(app, ["evaluate", str(photos), "--method", "gradcam,saliency", *QUICK, "--out", str(out)],
                           env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "deletion" in result.output and "insertion" in result.output and "(lower is better)" in result.output
    assert "gradcam" in result.output and "saliency" in result.output and "*" in result.output
    for name in ("evaluation.csv", "evaluation-images.csv", "evaluation.json", "curves-deletion.png",
                 "curves-insertion.png"):
        assert (out / name).is_file(), name
        assert f"written: {out / name}" in result.output
    with (out / "evaluation.csv").open(newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [(r["method"], r["metric"]) for r in table] == [("gradcam", "deletion"), ("saliency", "deletion"),
                                                          ("gradcam", "insertion"), ("saliency", "insertion")]
    assert all(r["n"] == "3" and r["forward_passes"] == "18" for r in table)
    assert sum(r["winner"] == "True" for r in table) >= 2
    document = json.loads((out / "evaluation.json").read_text())
    assert document["model"] == "toy_models:tiny_cnn" and document["images"] == ["a.png", "b.png", "c.png"]
    assert document["versions"]["heatlens"] and document["versions"]["torch"]
    assert document["sources"]["b.png"] == str(photos / "b.png")
    assert document["params"]["metrics"]["deletion"]["steps"] == 5
    assert document["params"]["metrics"]["insertion"]["baseline"] == "blur"
    assert document["params"]["methods"]["gradcam"]["target"] == "top1"
    assert [r["mean"] for r in document["table"]] == [float(r["mean"]) for r in table]
    with (out / "evaluation-images.csv").open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 3 * 2 * 2
    picture = np.asarray(Image.open(out / "curves-deletion.png").convert("RGB"))
    assert picture.shape == (480, 750, 3) and (picture < 250).mean() > 0.02


def test_parameters_for_one_metric(tmp_path, photos):
    out = tmp_path / "out"
    result = runner.invoke(app, ["evaluate", str(photos / "a.png"), "--metric", "deletion,insertion", *QUICK,
                                 "-p", "insertion.baseline=black", "--out", str(out)])
    assert result.exit_code == 0, result.output
    params = json.loads((out / "evaluation.json").read_text())["params"]["metrics"]
    assert params["insertion"]["baseline"] == "black" and params["deletion"]["baseline"] == "black"
    assert params["insertion"]["steps"] == 5


def test_boxes_reach_the_localisation_metrics(tmp_path, photos):
    if "pointing_game" not in metrics.METRICS:
        pytest.skip("heatlens.metrics has no pointing_game yet")
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("image,x_min,y_min,x_max,y_max\na.png,10,10,40,40\nb.png,0,0,64,48\nc.png,5,5,20,20\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["evaluate", str(photos), "--metric", "pointing_game,deletion", "--boxes", str(boxes),
                                 *QUICK, "--out", str(out)])
    assert result.exit_code == 0, result.output
    document = json.loads((out / "evaluation.json").read_text())
    assert document["metrics"] == ["pointing_game", "deletion"] and document["boxes"] == str(boxes)
    assert document["per_image"]["gradcam"]["pointing_game"][1] == 1.0  # b's box is the whole photo


@pytest.mark.parametrize(("args", "message"), [
    (["--metric", "delation"], "unknown metric 'delation'. Did you mean: 'deletion'"),
    (["--metric", "deletion,deletion"], "--metric names a metric twice"),
    (["--metric", ","], "--metric is empty"),
    (["--method", "gradcm"], "unknown method 'gradcm'. Did you mean: 'gradcam'"),
    (["-p", "step=3"], "--param step=... is not a parameter of deletion or insertion. Did you mean: 'steps'"),
    (["-p", "insertoin.steps=3"], "--param names a metric that is not evaluated"),
    (["-p", "steps"], "--param expects KEY=VALUE or METRIC.KEY=VALUE"),
    (["-p", "seed=3"], "--param seed=... is not a parameter"),
    (["--batch-size", "0"], "--batch-size takes a positive number or auto"),
    (["--metric", "deletion", "-p", "deletion.steps=0"], "steps must be a positive integer"),
])
def test_bad_input_is_one_error_line_before_the_model_loads(tmp_path, photos, args, message):
    """--model names a factory that does not exist: each error is found before the model would load."""
    checked_before = "steps must be" not in message
    model = "toy_models:nope" if checked_before else "toy_models:tiny_cnn"
    result = runner.invoke(app, ["evaluate", str(photos / "a.png"), "--model", model, *args, "--out",
                                 str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("error:")]) == 1


def test_localisation_without_boxes_is_refused(tmp_path, photos):
    if "pointing_game" not in metrics.METRICS:
        pytest.skip("heatlens.metrics has no pointing_game yet")
    result = runner.invoke(app, ["evaluate", str(photos), "--metric", "pointing_game", "--model", "toy_models:nope",
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "metric 'pointing_game' needs regions" in result.output


def test_an_unreadable_image_is_skipped(tmp_path, photos):
    (photos / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    result = runner.invoke(app, ["evaluate", str(photos), "--metric", "deletion", *QUICK, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output
    document = json.loads((out / "evaluation.json").read_text())
    assert document["images"] == ["a.png", "b.png", "c.png"] and document["failed"][0]["image"] == "broken.png"
