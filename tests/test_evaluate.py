"""heatlens.evaluate: the table's winner on a planted signal, the bootstrap interval as documented (against a direct
numpy bootstrap), photos of different sizes, CSV and JSON that hold the same values, the plots, and its errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from planted import SIZE, SQUARE, explanation_of, planted_images, planted_network, true_maps

import heatlens
from heatlens import metrics
from heatlens.errors import MethodError
from heatlens.evaluate import RESAMPLES, bootstrap_means, evaluate
from heatlens.evaluate_plots import save_plots
from heatlens.methods import METHODS, MethodInfo, MethodOutput

STEPS = {"deletion": {"steps": 16}, "insertion": {"steps": 16}}


def planted_method(maps_of):
    """A black-box method whose map of every input is maps_of(the square's indicator), for any target."""

    def method(network, x, targets, progress=True):
        logits = network.predict(x)
        ids = np.asarray(targets(logits) if callable(targets) else targets)
        one = maps_of(true_maps(1)[0, 0])
        return MethodOutput(np.broadcast_to(one, (len(x), ids.shape[1], SIZE, SIZE)).copy(), logits, ids)

    return method


@pytest.fixture
def planted_methods(monkeypatch):
    """'truth' (the square), 'inverse' (everything but the square first) and 'truth_again' (the same as truth)."""
    for name, maps_of in (("truth", lambda m: m), ("inverse", lambda m: m.max() - m), ("truth_again", lambda m: m)):
        monkeypatch.setitem(METHODS, name, MethodInfo(name, planted_method(maps_of), "planted", "test",
                                                      needs_gradients=False, uses_layer=False, black_box=True))


@pytest.fixture(scope="module")
def planted_data():
    return planted_network(), planted_images(8, seed=3)


def test_the_true_map_wins_every_column(planted_methods, planted_data):
    network, x = planted_data
    result = evaluate(network, x, methods=["inverse", "truth"], target=0, metric_params=STEPS, progress=False)
    assert result.winners("deletion") == ["truth"] and result.winners("insertion") == ["truth"]
    assert result.cell("truth", "deletion").mean < result.cell("inverse", "deletion").mean
    assert result.cell("truth", "insertion").mean > result.cell("inverse", "insertion").mean
    rows = {(r["method"], r["metric"]): r for r in result.rows()}
    assert rows[("truth", "deletion")]["winner"] and not rows[("inverse", "deletion")]["winner"]
    assert not rows[("truth", "deletion")]["tie"]
    assert rows[("truth", "deletion")]["forward_passes"] == result.forward_passes("truth", "deletion") == 8 * 17
    table = repr(result)
    assert "deletion (lower is better)" in table and "insertion (higher is better)" in table
    truth_line = next(line for line in table.splitlines() if line.startswith("truth"))
    assert truth_line.count("*") == 2


def test_per_image_scores_are_the_metrics_own(planted_methods, planted_data):
    """The per-image scores equal deletion run directly on an Explanation of the true square (not via evaluate)."""
    network, x = planted_data
    result = evaluate(network, x, methods=["truth"], metrics=["deletion"], target=0,
                      metric_params={"deletion": STEPS["deletion"]}, progress=False)
    direct = metrics.deletion(network, None, explanation_of(network, x, true_maps(len(x))), steps=16, progress=False)
    np.testing.assert_allclose(result.scores["truth"]["deletion"], direct.scores[:, 0], rtol=1e-12)
    assert result.images == [f"image {i}" for i in range(8)]


def test_the_interval_is_a_percentile_bootstrap_over_images(planted_methods, planted_data):
    network, x = planted_data
    result = evaluate(network, x, methods=["truth", "inverse"], target=0, metric_params=STEPS, seed=7,
                      progress=False)
    for method in ("truth", "inverse"):
        for metric in ("deletion", "insertion"):
            values = result.scores[method][metric]
            draws = np.random.default_rng(7).integers(0, len(values), (RESAMPLES, len(values)))
            means = values[draws].mean(axis=1)
            low, high = np.percentile(means, [2.5, 97.5])
            cell = result.cell(method, metric)
            assert cell.mean == pytest.approx(values.mean(), rel=1e-12)
            assert (cell.low, cell.high) == pytest.approx((low, high), rel=1e-12)
            assert cell.low <= cell.mean <= cell.high and cell.low < cell.high and cell.n == 8


def test_bootstrap_means_of_curves_resample_whole_images():
    values = np.random.default_rng(0).normal(size=(5, 3))
    draws = np.random.default_rng(4).integers(0, 5, (50, 5))
    np.testing.assert_allclose(bootstrap_means(values, seed=4, resamples=50), values[draws].mean(axis=1),
                               rtol=1e-12)


def test_equal_means_are_a_tie(planted_methods, planted_data):
    network, x = planted_data
    result = evaluate(network, x, methods=["truth", "truth_again", "inverse"], metrics=["deletion"], target=0,
                      metric_params={"deletion": {"steps": 8}}, progress=False)
    assert result.winners("deletion") == ["truth", "truth_again"]
    ties = [r for r in result.rows() if r["tie"]]
    assert [r["method"] for r in ties] == ["truth", "truth_again"]
    assert "=" in next(line for line in repr(result).splitlines() if line.startswith("truth_again"))


def test_csv_and_json_hold_the_same_values(planted_methods, planted_data, tmp_path):
    network, x = planted_data
    result = evaluate(network, x, methods=["truth", "inverse"], target=0, metric_params=STEPS, progress=False)
    result.to_csv(tmp_path / "table.csv")
    result.to_csv(tmp_path / "images.csv", per_image=True)
    result.to_json(tmp_path / "all.json", {"run": "test"})
    with (tmp_path / "table.csv").open(newline="") as handle:
        written = list(csv.DictReader(handle))
    rows = result.rows()
    assert len(written) == len(rows) == 4
    for line, row in zip(written, rows, strict=True):
        assert (line["method"], line["metric"]) == (row["method"], row["metric"])
        assert [float(line[k]) for k in ("mean", "low", "high")] == [row["mean"], row["low"], row["high"]]
        assert int(line["n"]) == row["n"] and (line["winner"] == "True") == row["winner"]
    with (tmp_path / "images.csv").open(newline="") as handle:
        per_image = list(csv.DictReader(handle))
    for line in per_image:
        i = int(line["image"].split()[-1])
        assert float(line["score"]) == result.scores[line["method"]][line["metric"]][i]
        assert line["targets"] == "0"
    document = json.loads((tmp_path / "all.json").read_text())
    assert document["run"] == "test" and document["table"] == rows
    assert document["winners"] == {"deletion": ["truth"], "insertion": ["truth"]}
    assert document["per_image"]["truth"]["deletion"] == result.scores["truth"]["deletion"].tolist()
    assert document["bootstrap"] == {"kind": "percentile", "level": 0.95, "resamples": RESAMPLES, "seed": 0,
                                     "over": "images (each image's score is the mean over its targets)"}
    assert document["params"]["metrics"]["deletion"]["steps"] == 16
    curve = document["curves"]["truth"]["deletion"]
    assert len(curve["fraction"]) == 17 and curve["scores"]["low"][0] <= curve["scores"]["mean"][0]
    (measured,) = result.results["truth"]["deletion"]
    np.testing.assert_allclose(curve["scores"]["mean"], measured.curves["scores"][:, 0].mean(axis=0), rtol=1e-12)


def test_photos_of_different_sizes_are_explained_by_size(cat):
    torch = pytest.importorskip("torch")
    from toy_models import TinyCNN

    torch.manual_seed(0)
    network = heatlens.wrap(TinyCNN(classes=4), preprocess="imagenet")
    small = np.ascontiguousarray(cat[:200, :300])
    result = evaluate(network, [cat, small, cat], metrics=["deletion"], metric_params={"deletion": {"steps": 4}},
                      batch_size=5, progress=False)
    assert result.groups == [[0, 2], [1]]
    scores = result.scores["gradcam"]["deletion"]
    alone = metrics.deletion(network, small, heatlens.explain(network, small, upsample=False), steps=4,
                             batch_size=5, progress=False)
    assert scores[0] == pytest.approx(scores[2], rel=1e-9)
    assert scores[1] == pytest.approx(float(alone.scores[0, 0]), rel=1e-9)
    first = int(network.predict(network.prepare(cat[None])).argmax())
    assert result.target_ids("gradcam", "deletion") == [[first], [int(alone.targets[0, 0])], [first]]


def test_regions_reach_the_localisation_metrics(planted_methods, planted_data):
    if "pointing_game" not in metrics.METRICS:
        pytest.skip("heatlens.metrics has no pointing_game yet")
    network, x = planted_data
    top, left, bottom, right = SQUARE
    boxes = [(left, top, right, bottom)] * len(x)
    result = evaluate(network, x, methods=["truth", "inverse"], metrics=["pointing_game"], target=0, regions=boxes,
                      progress=False)
    assert result.cell("truth", "pointing_game").mean == 1.0
    assert result.cell("inverse", "pointing_game").mean == 0.0
    by_name = evaluate(network, x[:2], methods=["truth"], metrics=["pointing_game"], target=0, names=["a", "b"],
                       regions={"a": boxes[0], "b": boxes[1]}, progress=False)
    assert by_name.images == ["a", "b"] and by_name.cell("truth", "pointing_game").mean == 1.0


def test_plots_are_written_per_curve_metric(planted_methods, planted_data, tmp_path):
    network, x = planted_data
    result = evaluate(network, x, methods=["truth", "inverse"], target=0, metric_params=STEPS, progress=False)
    paths = save_plots(result, tmp_path)
    assert [p.name for p in paths] == ["curves-deletion.png", "curves-insertion.png"]
    picture = np.asarray(Image.open(paths[0]).convert("RGB"))
    assert picture.shape == (480, 750, 3)
    assert (picture < 250).mean() > 0.02  # lines, text and bands, not a blank page


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"metrics": ["delation"]}, r"unknown metric 'delation'.*'deletion'"),
    ({"metrics": ["deletion", "deletion"]}, "each of the metrics can be named once"),
    ({"methods": "truth,inverse"}, r"unknown method 'truth,inverse'"),
    ({"methods": []}, "methods must be a name or a list of names"),
    ({"metric_params": {"insertion": {"steps": 4}}, "metrics": ["deletion"]},
     "metric_params names 'insertion', which is not among the metrics evaluated"),
    ({"metric_params": {"deletion": {"step": 4}}}, r"does not take parameter 'step'.*'steps'"),
    ({"metric_params": {"deletion": {"batch_size": 4}}}, "is set for every metric by evaluate itself"),
    ({"metric_params": {"deletion": 4}}, r"metric_params\['deletion'\] must be a dict"),
    ({"method_options": {"lime": {}}}, "method_options names 'lime', which is not among the methods evaluated"),
    ({"names": ["a"]}, "names needs one name per image: 8 images, 1 names"),
])
def test_bad_requests_are_refused_in_one_line(planted_methods, planted_data, kwargs, message):
    network, x = planted_data
    call = {"methods": ["truth"], "target": 0, "progress": False, **kwargs}
    with pytest.raises(MethodError, match=message):
        evaluate(network, x, **call)


def test_localisation_without_regions_is_refused_before_any_work(planted_methods, planted_data):
    if "pointing_game" not in metrics.METRICS:
        pytest.skip("heatlens.metrics has no pointing_game yet")
    calls: list[int] = []
    with pytest.raises(MethodError, match="metric 'pointing_game' needs regions"):
        evaluate(planted_network(calls), planted_data[1], methods=["truth"], metrics=["pointing_game"])
    assert calls == []


def test_randomisation_is_drawn_per_method_and_image(tmp_path, rng):
    torch = pytest.importorskip("torch")
    from toy_models import TinyCNN

    torch.manual_seed(0)
    network = heatlens.wrap(TinyCNN(classes=4), preprocess="imagenet")
    photos = rng.integers(0, 256, (2, 40, 40, 3), dtype=np.uint8)
    result = evaluate(network, photos, methods=["gradcam", "saliency"], metrics=["model_randomisation"],
                      metric_params={"model_randomisation": {"max_steps": 2}}, batch_size=4, progress=False)
    paths = save_plots(result, tmp_path, randomised_images=1)
    assert [p.name for p in paths] == ["curves-model_randomisation.png", "randomisation-gradcam-image-0.png",
                                       "randomisation-saliency-image-0.png"]
    assert all(np.asarray(Image.open(p)).std() > 10 for p in paths)
    assert result.explanations["gradcam"][0].names == ["image 0", "image 1"]
