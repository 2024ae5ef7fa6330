"""The app's per-session work without a browser: photos in (and refused), predictions, the maps of
heatlens.explain, the labelled tiles, metric scores and the download."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
from overlay_check import check_overlay
from PIL import Image

import heatlens
from heatlens import ImageError, MethodError, TargetError
from heatlens.app import session as work


@pytest.fixture(scope="module")
def opened(lite0, cat) -> work.Session:
    return work.open_session(lite0, cat, "chelsea.png")


@pytest.fixture(scope="module")
def second(opened, lite0) -> int:
    return work.ranked(opened, lite0)[1][0]


@pytest.fixture(scope="module")
def shown(lite0, opened, second) -> work.Session:
    return work.explain_shown(lite0, opened, ["gradcam", "layercam"], [second], "head")


def test_import_heatlens_and_its_app_package_leave_gradio_unimported():
    code = ("import os, sys, heatlens, heatlens.app; assert 'gradio' not in sys.modules, 'gradio imported'; "
            "print(os.environ['GRADIO_ANALYTICS_ENABLED'], os.environ['HF_HUB_OFFLINE'], "
            "os.environ['HF_HUB_DISABLE_TELEMETRY'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "1", "1"]


def test_a_text_file_named_jpg_is_refused_as_an_image(tmp_path):
    fake = tmp_path / "holiday.jpg"
    fake.write_text("these are not the pixels you are looking for\n")
    with pytest.raises(ImageError, match=r"^'holiday\.jpg' is not a readable image") as caught:
        work.read_photo(fake)
    assert str(tmp_path) not in str(caught.value), "the server's copy of the upload is no business of the user"


def test_a_file_over_the_upload_limit_is_refused_before_it_is_read(tmp_path):
    big = tmp_path / "huge.png"
    with open(big, "wb") as file:
        file.truncate(work.MAX_UPLOAD_MB * 1024 * 1024 + 1)  # sparse: no 20 MB written
    with pytest.raises(ImageError, match=r"uploads are limited to 20 MB. Received: huge.png of 20.0 MB"):
        work.read_photo(big)


def test_a_photo_file_reads_as_the_sample(cat):
    assert np.array_equal(work.read_photo(heatlens.samples.path("cat")), cat)


def test_the_ranked_classes_are_the_softmax_of_the_model_scores(opened, lite0, cat):
    logits = lite0.predict(lite0.prepare(cat[None]))[0].astype(np.float64)
    softmax = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    best = work.ranked(opened, lite0, 5)
    assert [c for c, _, _ in best] == list(np.argsort(-softmax)[:5])
    np.testing.assert_allclose([p for _, _, p in best], np.sort(softmax)[::-1][:5], rtol=1e-5)
    assert best[0][1] == lite0.classes[best[0][0]]
    assert work.class_label(2, "Egyptian cat", 0.356) == "2. Egyptian cat 36%"


def test_layers_are_the_spatial_ones_with_the_default_first_and_marked(lite0):
    choices, default = work.layer_choices(lite0)
    spatial = {info.name for info in lite0.layers() if info.spatial}
    assert default == lite0.default_layer() == choices[0][1]
    assert choices[0][0] == f"{default} (default)"
    assert {name for _, name in choices} == spatial and len(choices) == len(spatial)


def test_the_maps_are_those_of_heatlens_explain(shown, lite0, cat, second):
    assert list(shown.results) == ["gradcam", "layercam"]
    for method, result in shown.results.items():
        direct = heatlens.explain(lite0, cat, method, target=second, layer="head")
        np.testing.assert_array_equal(result.maps, direct.maps)
        assert result.targets.ids.tolist() == [[second]] and result.names == ["chelsea.png"]


def test_a_method_without_a_layer_ignores_the_chosen_one(lite0, opened, second):
    done = work.explain_shown(lite0, opened, ["saliency"], [second], "head")
    assert done.results["saliency"].layer is None


def test_nothing_chosen_or_the_same_method_twice_is_refused(lite0, opened, second):
    with pytest.raises(TargetError, match="no class chosen"):
        work.explain_shown(lite0, opened, ["gradcam"], [], "head")
    with pytest.raises(MethodError, match="the two sides show the same method"):
        work.explain_shown(lite0, opened, ["gradcam", "gradcam"], [second], "head")


def test_explaining_leaves_the_session_it_started_from_as_it_was(opened, shown):
    assert opened.results == {} and shown.results and shown.photo is opened.photo


def test_a_tile_is_the_overlay_of_the_map_over_the_photo_with_its_colour_bar_under_it(shown, lite0, cat, second):
    [(tile, title)] = work.tiles(shown.results["gradcam"], 0.4, None)
    direct = heatlens.explain(lite0, cat, "gradcam", target=second)
    assert title == f"gradcam @ head · {direct.targets.names[0][0]} 36%"
    check_overlay(tile[: cat.shape[0]], cat, direct.maps[0, 0], direct.input_box)
    bar = tile[cat.shape[0]:]
    assert bar.shape[0] > 40 and (bar < 128).any(), "no colour bar under the tile"


def test_opacity_zero_shows_the_photo_itself(shown, cat):
    [(tile, _)] = work.tiles(shown.results["gradcam"], 0.0, None)
    assert np.array_equal(tile[: cat.shape[0]], cat)


def test_a_narrow_tile_sits_centred_over_a_bar_wide_enough_for_its_label(lite0, cat, second):
    narrow = cat[:, :200]
    done = work.explain_shown(lite0, work.open_session(lite0, narrow, "narrow.png"), ["gradcam"], [second], None)
    [(tile, _)] = work.tiles(done.results["gradcam"], 0.4, None)
    left = (work.BAR_WIDTH - 200) // 2
    assert tile.shape[1] == work.BAR_WIDTH
    assert (tile[: narrow.shape[0], :left] == 255).all() and (tile[: narrow.shape[0], left + 200:] == 255).all()


def test_scores_are_heatlens_metrics_of_each_shown_method(shown, lite0):
    rows = work.scores(lite0, shown, ["average_drop", "increase_in_confidence"])
    assert [(r["method"], r["metric"]) for r in rows] == [
        ("gradcam", "average_drop"), ("gradcam", "increase_in_confidence"),
        ("layercam", "average_drop"), ("layercam", "increase_in_confidence")]
    direct = heatlens.metrics.compute("average_drop", lite0, None, shown.results["layercam"], progress=False)
    assert rows[2]["score"] == pytest.approx(float(direct.scores[0, 0]))
    assert [r["better"] for r in rows[:2]] == ["lower", "higher"] and rows[0]["params"] == ""


def test_the_page_curves_take_20_steps(shown, lite0, monkeypatch):
    given = []

    def record(name, model, images, explanation, **params):
        given.append((name, explanation.method, params))
        return SimpleNamespace(scores=np.zeros((1, 1)))

    monkeypatch.setattr(heatlens.metrics, "compute", record)
    rows = work.scores(lite0, shown, ["insertion"])
    assert given == [("insertion", m, {"progress": False, "steps": 20}) for m in ("gradcam", "layercam")]
    assert [r["params"] for r in rows] == ["steps=20", "steps=20"]


def test_the_download_holds_the_shown_figure_each_method_folder_and_a_manifest(shown, tmp_path):
    path = work.bundle(shown, 0.4, None, tmp_path)
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
        for method in ("gradcam", "layercam"):
            inner = json.loads(archive.read(f"{method}/manifest.json"))
            assert inner["method"] == method and inner["images"][0]["image"] == "chelsea"
            for entry in inner["images"][0]["targets"]:
                assert {f"{method}/{entry['overlay']}", f"{method}/{entry['labelled']}"} <= names
        for name in (n for n in names if n.endswith(".png")):
            Image.open(archive.open(name)).verify()
    assert path.name == "chelsea_heatlens.zip" and "shown.png" in names
    assert manifest["methods"] == {"gradcam": "gradcam/manifest.json", "layercam": "layercam/manifest.json"}
    assert manifest["photo"] == "chelsea.png" and manifest["alpha"] == 0.4 and manifest["cmap"] == "auto"


def test_scoring_or_downloading_before_anything_is_shown_says_so(lite0, opened):
    with pytest.raises(heatlens.HeatlensError, match="nothing is shown yet"):
        work.scores(lite0, opened, ["deletion"])
    with pytest.raises(heatlens.HeatlensError, match="nothing is shown yet"):
        work.bundle(opened, 0.4, None)
