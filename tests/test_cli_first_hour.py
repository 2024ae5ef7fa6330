"""The command line as a new user meets it: install hints, narrow and piped output, --version and -h, a
model factory in the current folder, mistakes refused before the model loads, --json, several methods at
once, --fit and what the manifest records."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import heatlens
import heatlens.cli
from heatlens.cli import app
from heatlens.cli_help import MEANINGS, meaning, option_names
from heatlens.errors import ModelError
from heatlens.methods import METHODS

torch = pytest.importorskip("torch")

runner = CliRunner()
TESTS = Path(__file__).resolve().parent
TOY = ["--model", "toy_models:tiny_cnn", "--target", "0", "--top", "1"]
HIDE = '''import sys
class _Hide:
    def __init__(self, inner):
        self.inner = inner
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {HIDDEN}:
            return None
        return self.inner.find_spec(name, path, target)
    def __getattr__(self, attr):
        return getattr(self.inner, attr)
sys.meta_path[:] = [_Hide(f) for f in sys.meta_path]
'''


def _heatlens(args: list[str], tmp_path: Path, hidden: tuple[str, ...] = (), cwd: Path = TESTS,
              columns: str = "80") -> subprocess.CompletedProcess:
    """The heatlens command in its own process, its output piped (no terminal), `hidden` packages made
    unimportable as if they were not installed."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COLUMNS")}
    env.update(COLUMNS=columns, PYTHONPATH=str(TESTS))  # the tests' toy_models, and no current folder: -P
    if hidden:
        site = tmp_path / "site"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(HIDE.replace("{HIDDEN}", repr(set(hidden))))
        env["PYTHONPATH"] = os.pathsep.join([str(site), str(TESTS)])
    code = "import sys; from heatlens.cli import app; sys.argv[0] = 'heatlens'; app()"
    return subprocess.run([sys.executable, "-P", "-c", code, *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def _photo(path: Path, seed: int = 0, size: tuple[int, int] = (40, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def _refuse_loading(monkeypatch) -> None:
    monkeypatch.setattr(heatlens.cli, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))


# 1. install hints keep their extra


def test_an_install_hint_prints_with_its_extra(tmp_path, monkeypatch):
    def missing(*args, **kwargs):
        raise ModelError("the torch build of the zoo models needs torch: pip install 'heatlens[torch]'")

    monkeypatch.setattr(heatlens.cli, "load_model", missing)
    result = runner.invoke(app, ["explain", "--sample", "cat", "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert _error_lines(result.output) == ["error: the torch build of the zoo models needs torch: pip install "
                                           "'heatlens[torch]'"]


def test_with_no_framework_installed_the_hint_names_both_extras(tmp_path):
    done = _heatlens(["explain", "--sample", "cat", "--out", str(tmp_path / "o")], tmp_path,
                     hidden=("torch", "keras", "tensorflow"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == ("error: the zoo models need torch or Keras: pip install 'heatlens[torch]' or "
                                   "'heatlens[keras]'")
    assert done.stdout == ""


# 2. method names whole at 80 columns, paths whole when piped, one method's options


def test_methods_at_80_columns_keep_every_name_whole():
    result = runner.invoke(app, ["methods"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    first_cells = [line.split("│")[1].strip() for line in lines if line.startswith("│")]
    assert [cell for cell in first_cells if cell] == list(METHODS)
    assert "…" not in result.output


def test_piped_output_keeps_each_path_on_one_line(tmp_path):
    out = tmp_path / "a-folder-name-long-enough" / "to-pass-eighty-columns-by-itself" / "when-joined"
    done = _heatlens(["explain", str(_photo(tmp_path / "photo.png")), *TOY, "--out", str(out)], tmp_path)
    assert done.returncode == 0, done.stderr
    overlay = out / "photo.png_gradcam_1_class-0.png"
    assert f"  class 0: overlay written to {overlay}\n" in done.stdout
    assert f"manifest: {out / 'manifest.json'}\n" in done.stdout


def test_methods_name_lists_the_options_with_their_defaults_and_meaning():
    result = runner.invoke(app, ["methods", "LIME"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Ribeiro et al. 2016" in result.output and "needs: only predictions" in result.output
    rows = {cells[0]: cells[1:] for line in result.output.splitlines() if line.startswith("│")
            for cells in [[c.strip() for c in line.strip("│").split("│")]]}
    parameters = inspect.signature(heatlens.methods.lime.lime).parameters
    expected = [p for p in parameters if p not in ("network", "x", "targets")]
    assert list(rows) == expected
    assert rows["num_samples"][0] == "1000" and rows["segmentation"][0] == "'quickshift'"
    assert rows["kernel_width"][0] == str(parameters["kernel_width"].default)
    assert rows["num_samples"][1].startswith("how many perturbed images")
    cam = runner.invoke(app, ["methods", "gradcam"], env={"COLUMNS": "200"})
    assert "--layer" in cam.output and "eigen_smooth" in cam.output


def test_every_option_of_every_method_has_a_meaning():
    missing = [(info.name, name) for info in METHODS.values() for name in option_names(info)
               if not meaning(info.name, name)]
    assert not missing, f"add these to heatlens.cli_help.MEANINGS: {missing}"
    used = {name for info in METHODS.values() for name in option_names(info)}
    assert not set(MEANINGS) - used, "meanings of options no method takes"


def test_methods_name_of_an_unknown_method():
    result = runner.invoke(app, ["methods", "gradcm"])
    assert result.exit_code == 2
    (line,) = _error_lines(result.output)
    assert line.startswith("error: unknown method 'gradcm'. Did you mean: 'gradcam'")


# 3. --version and -h


def test_version_and_short_help():
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.output == f"heatlens {heatlens.__version__}\n"
    for args in ([], ["explain"], ["methods"]):
        short, long = runner.invoke(app, [*args, "-h"]), runner.invoke(app, [*args, "--help"])
        assert short.exit_code == long.exit_code == 0
        assert short.output == long.output and "Usage:" in short.output


def test_help_at_80_columns_cuts_no_option_text():
    result = runner.invoke(app, ["explain", "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    assert "…" not in result.output and "package.module:factory" in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80


# 4. a model factory in the current folder


FACTORY = '''import torch
from torch import nn


def make():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3))
'''


def test_a_factory_module_in_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "cwd_factory_mod.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "cwd_factory_mod", raising=False)
    path_before = list(sys.path)
    image = str(_photo(tmp_path / "x.png"))
    result = runner.invoke(app, ["explain", image, "--model", "cwd_factory_mod:make", "--target", "1",
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert sys.path == path_before, "the current folder stays on the import path only for the lookup"
    assert json.loads((tmp_path / "o" / "manifest.json").read_text())["layer"] == "1"
    monkeypatch.delitem(sys.modules, "cwd_factory_mod", raising=False)


def test_the_installed_command_finds_a_factory_in_the_current_folder(tmp_path):
    (tmp_path / "here_mod.py").write_text(FACTORY)
    done = _heatlens(["layers", "--model", "here_mod:make", "--input-size", "8"], tmp_path, cwd=tmp_path,
                     columns="200")
    assert done.returncode == 0, done.stderr
    assert "<- default" in done.stdout


@pytest.mark.parametrize(("spec", "message"), [
    ("no_such_mod_here:make", "error: cannot import 'no_such_mod_here:make': no module 'no_such_mod_here' in the "
                              "current folder ({cwd}) or on the Python path; run heatlens in the folder that holds "
                              "no_such_mod_here.py, or install its package"),
    ("cwd_missing_factory:mak", "error: cannot import 'cwd_missing_factory:mak': the module 'cwd_missing_factory' "
                                "({cwd}/cwd_missing_factory.py) has no 'mak'. Did you mean: 'make'?"),
])
def test_a_missing_module_or_factory_is_one_line(tmp_path, monkeypatch, spec, message):
    (tmp_path / "cwd_missing_factory.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "cwd_missing_factory", raising=False)
    result = runner.invoke(app, ["explain", str(_photo(tmp_path / "x.png")), "--model", spec,
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert _error_lines(result.output) == [message.format(cwd=tmp_path)]
    monkeypatch.delitem(sys.modules, "cwd_missing_factory", raising=False)


# 5. and 6. mistakes refused before the model loads


@pytest.mark.parametrize(("args", "message"), [
    (["--cmap", "jett"], "error: unknown colormap 'jett'. Did you mean: 'jet'"),
    (["--fit", "squeeze"], "error: --fit takes crop, resize, pad. Received: 'squeeze'"),
    (["--method", "lime", "-o", "num_sample=50"],
     "error: -o num_sample=... is not an option of lime. Did you mean: 'num_samples'"),
    (["--method", "gradcam,lime", "-o", "windw=8"], "error: -o windw=... is not an option of gradcam or lime."),
    (["--method", "gradcam,gradcam"], "error: --method names a method twice"),
    (["--method", "gradcam,limme"], "error: unknown method 'limme'. Did you mean: 'lime'"),
    (["-o", "cmap=jet"], "error: use --cmap rather than --option cmap="),
])
def test_mistakes_are_refused_before_the_model_loads(tmp_path, monkeypatch, args, message):
    _refuse_loading(monkeypatch)
    result = runner.invoke(app, ["explain", str(_photo(tmp_path / "x.png")), *args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    (line,) = _error_lines(result.output)
    assert line.startswith(message), line
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_an_unwritable_out_is_refused_before_the_model_loads(tmp_path, monkeypatch):
    _refuse_loading(monkeypatch)
    (tmp_path / "a-file").write_text("")
    result = runner.invoke(app, ["explain", str(_photo(tmp_path / "x.png")), "--method", "gradcam,occlusion",
                                 "--out", str(tmp_path / "a-file" / "out")])
    assert result.exit_code == 2, result.output
    (line,) = _error_lines(result.output)
    assert "cannot create the output folder" in line


def test_an_option_for_some_compared_methods_goes_to_those_only(tmp_path, monkeypatch, toy):
    calls = []

    def recording_compare(network, photo, methods, target, options, **common):
        calls.append(options)
        return heatlens.compare(network, photo, methods=methods, target=target, options=options, **common)

    monkeypatch.setattr(heatlens.cli, "compare", recording_compare)
    result = runner.invoke(app, ["explain", str(_photo(tmp_path / "x.png")), *TOY, "--method", "gradcam,occlusion",
                                 "-o", "window=8", "-o", "stride=8", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert calls == [{"occlusion": {"window": 8, "stride": 8}}]


# 7. --json


@pytest.fixture(scope="module")
def toy():
    return heatlens.load_model("toy_models:tiny_cnn")


def _softmax(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(logits), dim=-1).numpy()


def test_json_is_all_that_stdout_holds(tmp_path, toy):
    images = [_photo(tmp_path / "in" / name, seed, size) for seed, (name, size) in
              enumerate([("a.png", (40, 40)), ("b.png", (48, 36))])]
    out = tmp_path / "o"
    result = runner.invoke(app, ["explain", str(tmp_path / "in"), "--model", "toy_models:tiny_cnn", "--target",
                                 "top2", "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["method"] == "gradcam" and report["layer"] == "features"
    assert report["manifest"] == str(out / "manifest.json") and report["versions"]["heatlens"] == heatlens.__version__
    assert [item["file"] for item in report["images"]] == [str(path) for path in images]
    for item, path in zip(report["images"], images, strict=True):
        photo = heatlens.load_image(path)
        probs = _softmax(toy.predict(toy.prepare(photo[None]))[0])
        assert [t["id"] for t in item["targets"]] == list(np.argsort(-probs)[:2])
        for record in item["targets"]:
            assert record["probability"] == pytest.approx(float(probs[record["id"]]), abs=1e-6)
            assert record["name"] == f"class {record['id']}" and "wnid" not in record
            assert Path(record["overlay"]).is_file() and Path(record["map"]).is_file()
        assert item["method"] == "gradcam" and item["layer"] == "features"


def test_json_for_imagenet_classes_has_their_wordnet_ids(tmp_path):
    result = runner.invoke(app, ["explain", "--sample", "cat", "--json", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)["images"][0]["targets"]
    assert (record["id"], record["name"], record["wnid"]) == (282, "tiger cat", "n02123159")


# 8. several methods, one comparison per image


def test_several_methods_write_one_comparison_per_image(tmp_path, toy):
    images = [_photo(tmp_path / "in" / f"{name}.png", seed) for seed, name in enumerate("ab")]
    out = tmp_path / "o"
    result = runner.invoke(app, ["explain", str(tmp_path / "in"), *TOY, "--method", "gradcam,occlusion",
                                 "-o", "window=8", "-o", "stride=4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["methods"] == ["gradcam", "occlusion"]
    assert [entry["image"] for entry in manifest["images"]] == ["a.png", "b.png"]
    for entry, path in zip(manifest["images"], images, strict=True):
        assert Image.open(out / entry["comparison"]).size[0] > 0
        assert f"comparison of gradcam, occlusion written to {out / entry['comparison']}" in result.output
        assert json.loads((out / entry["manifest"]).read_text())["methods"] == ["gradcam", "occlusion"]
        photo = heatlens.load_image(path)
        for record, method in zip(entry["results"], ["gradcam", "occlusion"], strict=True):
            assert record["method"] == method
            (target,) = record["targets"]
            options = {"window": 8, "stride": 4} if method == "occlusion" else {}
            expected = heatlens.explain(toy, photo, method=method, target=0, **options).maps[0, 0]
            np.testing.assert_allclose(np.load(out / target["map"]), expected, rtol=1e-5, atol=1e-6)
            assert (out / target["overlay"]).is_file()


# 9. and 10. --fit and what the manifest records


def test_fit_reaches_load_model_and_the_manifest(tmp_path, monkeypatch, toy):
    calls = []

    def load_model(name, **options):
        calls.append(options)
        return heatlens.wrap(toy, fit=options.get("fit", "crop"))

    monkeypatch.setattr(heatlens.cli, "load_model", load_model)
    result = runner.invoke(app, ["explain", str(_photo(tmp_path / "x.png", size=(30, 50))), *TOY, "--fit", "pad",
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert calls[0]["fit"] == "pad"
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["fit"] == "pad"


def test_fit_resize_explains_the_whole_photo(tmp_path):
    result = runner.invoke(app, ["explain", str(_photo(tmp_path / "x.png", size=(30, 50))), *TOY, "--fit", "resize",
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    (entry,) = json.loads((tmp_path / "o" / "manifest.json").read_text())["images"]
    assert entry["input_box"] == [0.0, 0.0, 30.0, 50.0]


def test_the_manifest_records_versions_sources_and_crop_boxes(tmp_path, monkeypatch):
    folder = tmp_path / "in"
    _photo(folder / "x.png", size=(30, 50))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["explain", "in/x.png", "--sample", "cat", "--out", "o"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    versions = manifest["versions"]
    assert versions["heatlens"] == heatlens.__version__ and versions["torch"] == metadata.version("torch")
    for name in ("keras", "tensorflow"):
        assert (name in versions) == (name in sys.modules)
    photo, cat = manifest["images"]
    assert photo["file"] == str(folder / "x.png") and cat["sample"] is True
    assert manifest["fit"] == "crop"
    assert photo["input_box"] == pytest.approx(_centre_crop_box(30, 50))
    assert cat["input_box"] == pytest.approx(_centre_crop_box(300, 451))


def _centre_crop_box(height: int, width: int, resize: int = 256, crop: int = 224) -> list[float]:
    """Resize(resize) then a centre crop (offset rounded down) of a landscape photo, as a box on the photo."""
    long = round(width * resize / height)
    top, left = (resize - crop) // 2, (long - crop) // 2
    return [top * height / resize, left * width / long, (top + crop) * height / resize, (left + crop) * width / long]


# 11. the default framework is the one installed


def test_the_default_framework_is_left_to_load_model(tmp_path, monkeypatch, toy):
    calls, preloaded = [], []
    monkeypatch.setattr(heatlens.cli, "load_model", lambda name, **options: calls.append(options) or toy)
    monkeypatch.setattr(heatlens.cli, "installed_framework", lambda: "keras")
    monkeypatch.setattr(heatlens.cli, "preload_tensorflow", lambda: preloaded.append(1))
    result = runner.invoke(app, ["explain", str(_photo(tmp_path / "x.png")), "--target", "0",
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert calls[0]["framework"] is None and preloaded == [1]


@pytest.mark.slow
def test_with_only_keras_installed_the_default_model_is_keras(tmp_path):
    pytest.importorskip("tensorflow")
    done = _heatlens(["layers"], tmp_path, hidden=("torch",), columns="200")
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if "<- default" in line)
    assert "head" in line and "7x7x1280" in line
    assert "torch" not in done.stderr
