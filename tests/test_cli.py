"""The heatlens command: output folder, manifest, tables and one-line errors with exit code 2."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from heatlens.cli import app

torch = pytest.importorskip("torch")

runner = CliRunner()


def test_explain_sample_writes_overlay_maps_and_manifest(tmp_path):
    result = runner.invoke(app, ["explain", "--sample", "cat", "--target", "top2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "tiger cat" in result.output and "overlay written to" in result.output
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["model"] == "efficientnet_lite0" and manifest["layer"] == "head"
    (entry,) = manifest["images"]
    assert entry["image"] == "cat" and len(entry["targets"]) == 2
    for record in entry["targets"]:
        assert (tmp_path / record["overlay"]).is_file() and (tmp_path / record["map"]).is_file()


def test_explain_files_of_different_sizes_with_a_named_class(tmp_path, cat):
    Image.fromarray(cat).save(tmp_path / "a.png")
    Image.fromarray(cat[:200, :300]).convert("L").save(tmp_path / "b.png")
    out = tmp_path / "out"
    result = runner.invoke(app, ["explain", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--target",
                                 "tabby,281", "--layer", "blocks.15", "--cmap", "viridis", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert [e["image"] for e in manifest["images"]] == ["a", "b"]
    assert manifest["layer"] == "blocks.15" and manifest["display"]["cmap"] == "viridis"
    assert np.asarray(Image.open(out / manifest["images"][1]["targets"][0]["overlay"])).shape == (200, 300, 3)


def test_a_folder_explains_every_image_in_it(tmp_path, cat):
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(cat).save(photos / "b.png")
    Image.fromarray(cat[:120, :160]).save(photos / "a.JPG")
    (photos / "notes.txt").write_text("not an image")
    (photos / "nested").mkdir()
    result = runner.invoke(app, ["explain", str(photos), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [e["image"] for e in manifest["images"]] == ["a", "b"]
    (photos / "c.png").write_bytes(b"\x89PNG broken")
    result = runner.invoke(app, ["explain", str(photos), "--out", str(tmp_path / "partial")])
    assert result.exit_code == 2 and "c.png" in result.output
    partial = json.loads((tmp_path / "partial" / "manifest.json").read_text())
    assert [e["image"] for e in partial["images"]] == ["a", "b"]
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["explain", str(empty), "--out", str(tmp_path / "out2")])
    assert result.exit_code == 2 and "no image files" in result.output


def test_user_model_factory(tmp_path, rng):
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "x.png")
    result = runner.invoke(app, ["explain", str(tmp_path / "x.png"), "--model", "toy_models:tiny_cnn",
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["layer"] == "features"


def test_several_layers_are_fused(tmp_path):
    result = runner.invoke(app, ["explain", "--sample", "cat", "--layer", "blocks.10, head", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["layer"] == "blocks.10, head"


def test_custom_score_function_by_import_path(tmp_path):
    result = runner.invoke(app, ["explain", "--sample", "cat", "-o", "score=toy_models:all_cats",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["params"]["score"] == "all_cats"
    assert [t["name"] for t in manifest["images"][0]["targets"]] == ["all_cats"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["explain", "missing.png"], "no image file"),
        (["explain", "--sample", "cat", "--layer", "head.O"], "unknown layer 'head.O'"),
        (["explain", "--sample", "cat", "--layer", "classifier"], "not a spatial"),
        (["explain", "--sample", "cat", "--target", "1000"], "out of range"),
        (["explain", "--sample", "cat", "--target", "tabbby"], "'tabby'"),
        (["explain", "--sample", "cat", "--method", "nope"], "unknown method"),
        (["explain", "--sample", "cat", "--cmap", "nope"], "unknown colormap"),
        (["explain", "--sample", "cat", "--model", "nope"], "unknown model"),
        (["explain"], "no images given"),
        (["explain", "--sample", "cat", "-o", "score=toy_models:nope"], "cannot import 'toy_models:nope'"),
        (["explain", "--sample", "cat", "--preprocess", "none"], "preprocess= does not apply"),
        (["explain", "--sample", "cat", "--weights", "x.h5"], "weights= does not apply"),
        (["explain", "--sample", "cat", "--model", "toy_models:tiny_cnn", "--weights", "x.h5"],
         "weights= is for keras:NAME models"),
        (["explain", "--sample", "cat", "--model", "toy_models:tiny_cnn", "--framework", "keras"],
         "framework='keras' picks the build of a zoo model"),
        (["explain", "--sample", "cat", "--model", "toy_models:tiny_cnn", "--classes", "missing.txt"],
         "neither 'imagenet' nor a text file"),
        (["explain", "--sample", "cat", "--model", "toy_models:tiny_cnn", "--classes", "imagenet"],
         "outputs 4 scores but has 1000 class names"),
        (["explain", "--sample", "cat", "-o", "score=heatlens:__version__"], "not a function"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(tmp_path, args, message):
    result = runner.invoke(app, [*args, "--out", str(tmp_path)] if args[0] == "explain" else args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("error:")]) == 1


def test_corrupt_image_file(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 nope")
    result = runner.invoke(app, ["explain", str(tmp_path / "bad.jpg"), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "error:" in result.output


def test_layers_marks_the_default():
    result = runner.invoke(app, ["layers", "--model", "efficientnet_lite0"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "<- default" in line)
    assert "head " in line and "7x7x1280" in line


def test_layers_of_a_user_model_need_a_size():
    result = runner.invoke(app, ["layers", "--model", "toy_models:tiny_cnn", "--preprocess", "none"])
    assert result.exit_code == 2 and "input_size" in result.output
    result = runner.invoke(app, ["layers", "--model", "toy_models:tiny_cnn", "--preprocess", "none",
                                 "--input-size", "16"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "8x8x8" in result.output


def test_models_and_methods_tables():
    models = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert models.exit_code == 0 and "efficientnet_lite0" in models.output
    methods = runner.invoke(app, ["methods"], env={"COLUMNS": "250"})
    assert methods.exit_code == 0 and "gradcam" in methods.output and "cam" in methods.output


def test_unknown_device_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["explain", "--sample", "cat", "--device", "tpu9", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "error:" in result.output and "Traceback" not in result.output


def test_keras_zoo_model_and_keras_application(tmp_path):
    pytest.importorskip("keras")
    result = runner.invoke(app, ["explain", "--sample", "cat", "--framework", "keras", "--out", str(tmp_path / "k")])
    assert result.exit_code == 0, result.output
    assert "tiger cat" in result.output
    layers = runner.invoke(app, ["layers", "--model", "keras:ResNet50", "--weights", "random"], env={"COLUMNS": "200"})
    assert layers.exit_code == 0, layers.output
    line = next(line for line in layers.output.splitlines() if "<- default" in line)
    assert "conv5_block3_out" in line
    missing = runner.invoke(app, ["explain", "--sample", "cat", "--model", "keras:ResNet50", "--out", str(tmp_path)],
                            env={"KERAS_HOME": str(tmp_path)})
    assert missing.exit_code == 2 and "--weights" in missing.output


def test_keras_model_file(tmp_path, rng):
    keras = pytest.importorskip("keras")
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)))
    model.save(tmp_path / "m.keras")
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "x.png")
    result = runner.invoke(app, ["explain", str(tmp_path / "x.png"), "--model", str(tmp_path / "m.keras"),
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["layer"] == "conv"


def test_gradient_method_with_options_writes_attributions(tmp_path, cat):
    Image.fromarray(cat).save(tmp_path / "bg.png")
    result = runner.invoke(app, ["explain", "--sample", "cat", "--method", "integrated_gradients", "-o", "steps=4",
                                 "-o", "baseline=blurred", "--out", str(tmp_path / "ig")])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "ig" / "manifest.json").read_text())
    assert manifest["params"]["steps"] == 4 and manifest["params"]["baseline"] == "blurred"
    record = manifest["images"][0]["targets"][0]
    assert (tmp_path / "ig" / record["attributions_image"]).is_file()
    eg = runner.invoke(app, ["explain", "--sample", "cat", "--method", "expected_gradients", "-o", "n_samples=4",
                             "-o", f"background={tmp_path / 'bg.png'}", "--out", str(tmp_path / "eg")])
    assert eg.exit_code == 0, eg.output
    bad = runner.invoke(app, ["explain", "--sample", "cat", "--method", "smoothgrad", "-o", "steps=4",
                              "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "does not take option 'steps'" in bad.output
    worse = runner.invoke(app, ["explain", "--sample", "cat", "-o", "novalue", "--out", str(tmp_path / "x")])
    assert worse.exit_code == 2 and "KEY=VALUE" in worse.output


def test_cli_tunes_its_own_allocator(monkeypatch):
    import heatlens.cli

    calls = []
    monkeypatch.setattr(heatlens.cli, "tune_allocator", lambda: calls.append(1) or True)
    assert runner.invoke(app, ["methods"]).exit_code == 0
    assert calls == [1]


def test_tune_allocator_applies_in_a_fresh_process():
    import subprocess
    import sys

    code = "from heatlens.allocator import tune_allocator; print(tune_allocator())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ("True" if sys.platform.startswith("linux") else "False")


def test_keras_models_start_without_tensorflow_banner(tmp_path):
    import subprocess
    import sys

    pytest.importorskip("tensorflow")
    code = "from heatlens.cli import app; app()"
    args = ["layers", "--model", "efficientnet_lite0", "--framework", "keras"]
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert out.returncode == 0, out.stderr
    assert "head" in out.stdout
    assert "oneDNN" not in out.stderr and "absl" not in out.stderr, out.stderr


def test_inside_commands(tmp_path):
    result = runner.invoke(app, ["activations", "--sample", "cat", "--layer", "blocks.5", "--layer", "head",
                                 "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["details"]["layers"] == ["blocks.5", "head"]
    result = runner.invoke(app, ["filters", "--layer", "blocks.3", "--channels", "0-1", "--steps", "2", "--size", "64",
                                 "--out", str(tmp_path / "f")])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "f").glob("filters_*.png"))) == 3
    result = runner.invoke(app, ["deconv", "--sample", "cat", "--layer", "blocks.5", "--top-k", "2",
                                 "--out", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    bad = runner.invoke(app, ["filters", "--layer", "blocks.3", "--channels", "x-y"])
    assert bad.exit_code == 2 and "--channels" in bad.output
    missing = runner.invoke(app, ["deconv", "--sample", "cat"])
    assert missing.exit_code == 2 and "--layer is required" in missing.output
