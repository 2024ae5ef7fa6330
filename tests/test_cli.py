"""The heatlens command: output folder, manifest, tables and one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import heatlens
import heatlens.cli
from heatlens.cli import app
from heatlens.errors import TargetError

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
    assert [e["image"] for e in manifest["images"]] == ["a.png", "b.png"]
    assert [e["file"] for e in manifest["images"]] == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    assert manifest["layer"] == "blocks.15" and manifest["display"]["cmap"] == "viridis"
    assert np.asarray(Image.open(out / manifest["images"][1]["targets"][0]["overlay"])).shape == (200, 300, 3)


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
    result = runner.invoke(app, ["explain", "--sample", "cat", "-o", "score_fn=toy_models:all_cats",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["params"]["score_fn"] == "all_cats"
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
        (["explain", "--sample", "cat", "-o", "score_fn=toy_models:nope"], "cannot import 'toy_models:nope'"),
        (["explain", "--sample", "cat", "--preprocess", "none"], "preprocess= does not apply"),
        (["explain", "--sample", "cat", "--weights", "x.h5"], "weights= does not apply"),
        (["explain", "--sample", "cat", "--model", "toy_models:tiny_cnn", "--weights", "x.h5"],
         "no weights file at 'x.h5'"),
        (["explain", "--sample", "cat", "--model", "toy_models:tiny_cnn", "--framework", "keras"],
         "framework='keras' picks the build of a zoo model"),
        (["explain", "--sample", "cat", "--model", "toy_models:tiny_cnn", "--classes", "missing.txt"],
         "neither 'imagenet' nor a text file"),
        (["explain", "--sample", "cat", "--model", "toy_models:tiny_cnn", "--classes", "imagenet"],
         "outputs 4 scores but has 1000 class names"),
        (["explain", "--sample", "cat", "-o", "score_fn=heatlens:__version__"], "not a function"),
        (["explain", "--sample", "cat", "-o", "score=toy_models:all_cats"], "use -o score_fn=module:function"),
        (["explain", "--sample", "cat", "--target", "²"], "unknown class name '²'"),
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


def test_models_lists_every_form_model_takes():
    listed = runner.invoke(app, ["models"], env={"COLUMNS": "250"})
    assert listed.exit_code == 0, listed.output
    rows = {line.split("│")[1].strip(): line for line in listed.output.splitlines() if line.count("│") == 4}
    for form in ("torchvision:NAME", "timm:NAME", "hf:FOLDER", "FILE.onnx", "package.module:factory", "keras:NAME"):
        assert form in rows, listed.output
    assert ".safetensors or .pth" in rows["torchvision:NAME"] and "--weights" in rows["package.module:factory"]
    assert "give it as --weights" in listed.output  # a weights file alone is no network


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
    assert bad.exit_code == 2 and "-o steps=... is not an option of smoothgrad" in bad.output
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


# Folder runs, output names, unwritable outputs, unreadable inputs and the last-resort guard, on the tiny
# torch model (40x40 photos) so that they stay fast.

TOY = ["--model", "toy_models:tiny_cnn", "--target", "0", "--top", "1"]


def _photo(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """a-2.jpg, a.jpg, a.png (stems that collide), a corrupt b.png in the middle, d.png, sub/a.jpg, and
    what a folder run must leave out: macOS ._ files, hidden files and folders, other extensions."""
    folder = tmp_path_factory.mktemp("photos")
    for seed, name in enumerate(["a-2.jpg", "a.jpg", "a.png", "d.png", "sub/a.jpg", "sub/deeper/A.PNG"]):
        _photo(folder / name, seed)
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (folder / "._a.jpg").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    _photo(folder / ".hidden.png", 10)
    _photo(folder / ".thumbnails" / "t.png", 11)
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def toy():
    return heatlens.load_model("toy_models:tiny_cnn")


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def _assert_each_output_is_its_own_image(out: Path, manifest: dict, toy) -> None:
    """Every input has its own files, and each map is the one the Python API gives for that very file (on the
    model's grid, as the CLI writes it)."""
    files = [(entry["file"], record) for entry in manifest["images"] for record in entry["targets"]]
    overlays = [record["overlay"] for _, record in files]
    assert len(set(overlays)) == len(overlays) == len(manifest["images"])
    for source, record in files:
        expected = heatlens.explain(toy, heatlens.load_image(source), target=0, upsample=False).maps[0, 0]
        np.testing.assert_allclose(np.load(out / record["map"]), expected, rtol=1e-5, atol=1e-6)
        assert (out / record["overlay"]).is_file()


def test_a_folder_run_skips_what_is_no_image_and_goes_on_after_a_bad_file(tmp_path, photos, toy):
    out = tmp_path / "out"
    result = runner.invoke(app, ["explain", str(photos), *TOY, "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = _manifest(out)
    assert [e["image"] for e in manifest["images"]] == ["a-2.jpg", "a.jpg", "a.png", "d.png"]
    (failed,) = manifest["failed"]
    assert failed["image"] == "b.png" and failed["file"] == str(photos / "b.png")
    assert f"'{photos / 'b.png'}' is not a readable image" in failed["error"]
    assert f"warning: skipped '{photos / 'b.png'}'" in result.output
    assert "1 of 5 images were skipped" in result.output
    assert "note: left out 1 sub-folder(s)" in result.output and "--recursive" in result.output
    assert "Traceback" not in result.output and not _error_lines(result.output)
    _assert_each_output_is_its_own_image(out, manifest, toy)


def test_recursive_runs_name_outputs_by_their_relative_path(tmp_path, photos, toy):
    out = tmp_path / "out"
    result = runner.invoke(app, ["explain", str(photos), "--recursive", *TOY, "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = _manifest(out)
    assert [e["image"] for e in manifest["images"]] == ["a-2.jpg", "a.jpg", "a.png", "d.png", "sub/a.jpg",
                                                        "sub/deeper/A.PNG"]
    assert (out / "sub" / "deeper").is_dir() and "note:" not in result.output
    _assert_each_output_is_its_own_image(out, manifest, toy)


def test_the_same_file_name_from_two_places_gets_two_names(tmp_path, photos, toy):
    out = tmp_path / "out"
    result = runner.invoke(app, ["explain", str(photos / "a.jpg"), str(photos / "sub" / "a.jpg"),
                                 str(photos / "a-2.jpg"), *TOY, "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = _manifest(out)
    assert [e["image"] for e in manifest["images"]] == ["a.jpg", "a-3.jpg", "a-2.jpg"]
    _assert_each_output_is_its_own_image(out, manifest, toy)


def test_strict_stops_at_the_first_bad_file_and_keeps_what_it_finished(tmp_path, photos):
    out = tmp_path / "out"
    result = runner.invoke(app, ["explain", str(photos), "--strict", *TOY, "--out", str(out)])
    assert result.exit_code == 2, result.output
    (line,) = _error_lines(result.output)
    assert "b.png' is not a readable image" in line
    manifest = _manifest(out)
    assert [e["image"] for e in manifest["images"]] == ["a-2.jpg", "a.jpg", "a.png"]
    assert [f["image"] for f in manifest["failed"]] == ["b.png"]


def test_folders_without_images_and_runs_where_every_image_fails(tmp_path):
    only_junk = tmp_path / "junk"
    (only_junk / "nested").mkdir(parents=True)
    (only_junk / "._IMG_0001.jpg").write_bytes(b"\x00\x05\x16\x07")
    _photo(only_junk / "nested" / "x.png", 0)
    result = runner.invoke(app, ["explain", str(only_junk), *TOY, "--out", str(tmp_path / "o1")])
    assert result.exit_code == 2 and "no image files" in result.output and "add --recursive" in result.output
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "p.png").write_bytes(b"\x89PNG broken")
    (broken / "q.gif").write_bytes(b"GIF89a broken")
    result = runner.invoke(app, ["explain", str(broken), *TOY, "--out", str(tmp_path / "o2")])
    assert result.exit_code == 2, result.output
    assert _error_lines(result.output) == ["error: none of the 2 images could be explained (see the warnings "
                                           "above); nothing was written"]
    assert result.output.count("warning: skipped") == 2 and not (tmp_path / "o2" / "manifest.json").exists()


def _unwritable_folder(tmp_path: Path, how: str) -> Path:
    """An existing folder this process cannot write into, or a skip where the machine offers none."""
    if how == "read-only":
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
    else:
        folder = Path("/sys")  # sysfs takes no new files, not even from root
    try:
        (folder / ".probe").touch()
    except OSError:
        return folder
    (folder / ".probe").unlink()
    pytest.skip(f"'{folder}' is writable here (running as root?)")


@pytest.mark.parametrize("how", ["read-only", "sysfs"])
@pytest.mark.parametrize("command", [["explain", "IMAGE", *TOY],
                                     ["activations", "IMAGE", "--model", "toy_models:tiny_cnn"]])
def test_an_existing_unwritable_out_folder_is_refused_before_any_work(tmp_path, monkeypatch, how, command):
    out = _unwritable_folder(tmp_path, how)
    monkeypatch.setattr(heatlens.cli, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    image = str(_photo(tmp_path / "x.png", 0))
    result = runner.invoke(app, [image if arg == "IMAGE" else arg for arg in command] + ["--out", str(out)])
    assert result.exit_code == 2, result.output
    assert _error_lines(result.output) == [f"error: cannot write into the output folder '{out}': Permission denied; "
                                           "choose another --out"]


def test_an_out_folder_that_cannot_be_created_or_written_mid_run(tmp_path):
    image = str(_photo(tmp_path / "x.png", 0))
    (tmp_path / "a-file").write_text("")
    result = runner.invoke(app, ["explain", image, *TOY, "--out", str(tmp_path / "a-file" / "out")])
    assert result.exit_code == 2 and "cannot create the output folder" in result.output
    out = tmp_path / "out"
    (out / "x.png_gradcam_1_class-0.png").mkdir(parents=True)  # a folder where the overlay must go
    result = runner.invoke(app, ["explain", image, *TOY, "--out", str(out)])
    assert result.exit_code == 2, result.output
    (line,) = _error_lines(result.output)
    assert line.startswith(f"error: cannot write results into '{out}': Is a directory") and "Traceback" not in line
    manifest_in_the_way = tmp_path / "out2"
    (manifest_in_the_way / "manifest.json").mkdir(parents=True)
    result = runner.invoke(app, ["explain", image, *TOY, "--out", str(manifest_in_the_way)])
    assert result.exit_code == 2 and "cannot write results into" in result.output
    result = runner.invoke(app, ["deconv", image, "--model", "toy_models:tiny_cnn", "--layer", "features",
                                 "--top-k", "1", "--out", str(manifest_in_the_way)])
    assert result.exit_code == 2 and len(_error_lines(result.output)) == 1
    assert "cannot write results into" in result.output


@pytest.mark.parametrize(("content", "message"), [
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "is not UTF-8 text"),
    (b"cat\x00\x00dog\n", "contains NUL bytes"),
    (b"\n  \n", "has no class names"),
    (None, "is a folder"),
])
def test_a_classes_file_that_is_no_list_of_names(tmp_path, content, message):
    classes = tmp_path / "classes"
    if content is None:
        classes.mkdir()
    else:
        classes.write_bytes(content)
    image = str(_photo(tmp_path / "x.png", 0))
    result = runner.invoke(app, ["explain", image, *TOY, "--classes", str(classes), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    (line,) = _error_lines(result.output)
    assert message in line and str(classes) in line


@pytest.mark.parametrize("times", [0, 1, 2])
@pytest.mark.parametrize("command", [
    ["explain", "IMAGE", *TOY],
    ["layers", "--model", "toy_models:tiny_cnn"],
    ["activations", "IMAGE", "--model", "toy_models:tiny_cnn", "--layer", "features"],
    ["filters", "--model", "toy_models:tiny_cnn", "--layer", "features", "--channels", "0", "--steps", "1",
     "--size", "16"],
    ["deconv", "IMAGE", "--model", "toy_models:tiny_cnn", "--layer", "features", "--top-k", "1"],
])
def test_trust_model_file_is_passed_to_load_model_only_when_given(tmp_path, monkeypatch, toy, times, command):
    calls = []

    def load_model(name, **options):
        calls.append((name, options))
        return toy

    monkeypatch.setattr(heatlens.cli, "load_model", load_model)
    image = str(_photo(tmp_path / "x.png", 0))
    args = [image if arg == "IMAGE" else arg for arg in command] + ["--trust-model-file"] * times
    result = runner.invoke(app, args + ([] if command[0] == "layers" else ["--out", str(tmp_path / "o")]))
    assert result.exit_code == 0, result.output
    ((name, options),) = calls
    assert name == "toy_models:tiny_cnn"
    if times == 0:
        assert "trust" not in options
    else:
        assert options["trust"] == (True if times == 1 else "pickle")


def test_trust_model_file_is_documented_in_the_help():
    result = runner.invoke(app, ["explain", "--help"], env={"COLUMNS": "300"})
    assert "--trust-model-file" in result.output and "TorchScript" in result.output


def test_an_unexpected_exception_is_a_one_line_bug_report_with_exit_code_1(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise AssertionError("inner check failed\n  at some depth")

    monkeypatch.setattr(heatlens.cli, "run_explain", broken)
    image = str(_photo(tmp_path / "x.png", 0))
    args = ["explain", image, *TOY, "--out", str(tmp_path / "o")]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert _error_lines(result.output) == [
        "error: internal error, a bug in heatlens: AssertionError: inner check failed (please report it; rerun "
        "with HEATLENS_DEBUG=1 to see the traceback)"]
    assert "Traceback" not in result.output
    debug = runner.invoke(app, args, env={"HEATLENS_DEBUG": "1"})
    assert debug.exit_code == 1 and isinstance(debug.exception, AssertionError)


def test_error_text_is_shown_literally_on_one_line(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise TargetError("targets [bold]x[/bold] and [/y] refused\nsecond line")

    monkeypatch.setattr(heatlens.cli, "run_explain", refuse)
    image = str(_photo(tmp_path / "x.png", 0))
    result = runner.invoke(app, ["explain", image, *TOY, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert _error_lines(result.output) == ["error: targets [bold]x[/bold] and [/y] refused second line"]


def test_running_out_of_memory_is_a_user_error(tmp_path, monkeypatch):
    def exhausted(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(heatlens.cli, "run_explain", exhausted)
    image = str(_photo(tmp_path / "x.png", 0))
    result = runner.invoke(app, ["explain", image, *TOY, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and _error_lines(result.output)[0].startswith("error: out of memory")


def test_keras_spelled_targets_and_wordnet_ids_in_the_table_and_manifest(tmp_path):
    result = runner.invoke(app, ["explain", "--sample", "cat", "--target", "sports_car,n02123159", "--wnid",
                                 "--top", "2", "--out", str(tmp_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if "rank" in line)
    assert "wnid" in header
    top = heatlens.explain("efficientnet_lite0", heatlens.samples.load("cat"), target="top1").targets
    assert top.wnids[0][0] in result.output
    records = json.loads((tmp_path / "manifest.json").read_text())["images"][0]["targets"]
    assert [(r["id"], r["name"], r["wnid"]) for r in records] == [(817, "sports car", "n04285008"),
                                                                   (282, "tiger cat", "n02123159")]
    toy = runner.invoke(app, ["explain", "--sample", "cat", "--model", "toy_models:tiny_cnn", "--wnid",
                              "--out", str(tmp_path / "toy")])
    assert toy.exit_code == 2 and "--wnid shows the WordNet ids of ImageNet classes" in toy.output


def test_layers_by_position_are_resolved_and_said(tmp_path):
    result = runner.invoke(app, ["explain", "--sample", "cat", "--layer", "layers[2].input", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "note: layer layers[2].input is 'blocks'" in result.output
    assert json.loads((tmp_path / "manifest.json").read_text())["layer"] == "blocks"
    result = runner.invoke(app, ["activations", "--sample", "cat", "--layer", "layers[0].output",
                                 "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["details"]["layers"] == ["stem"]
    result = runner.invoke(app, ["explain", "--sample", "cat", "--layer", "layers[9].output", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "layers[9] is out of range" in result.output
