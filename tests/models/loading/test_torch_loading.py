"""Loading torch models from files and import paths: torch.export programs keep their layers, TorchScript
predicts only, and unreadable files or import paths get one-line errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from toy_models import tiny_cnn

import heatlens
from heatlens import ModelError
from heatlens.models.adapters.torch import TorchNetwork
from heatlens.models.loading.torch_files import load_torch


@pytest.fixture
def tiny():
    return tiny_cnn()


def test_torchscript_predicts_and_refuses_layer_methods_clearly(tiny, rng, tmp_path):
    path = tmp_path / "tiny.pt"
    torch.jit.save(torch.jit.trace(tiny.eval(), torch.zeros(1, 3, 8, 8)), str(path))
    net = heatlens.load_model(str(path), preprocess=None, trust=True)
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(net.predict(x), TorchNetwork(tiny).predict(x), atol=1e-5)
    with pytest.raises(ModelError, match="TorchScript"):
        heatlens.explain(net, x)


def test_torch_export_program_supports_layer_methods(tiny, rng, tmp_path):
    path = tmp_path / "tiny.pt2"
    program = torch.export.export(tiny.eval(), (torch.zeros(2, 3, 8, 8),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(path))
    net = heatlens.load_model(str(path), preprocess=None, trust=True)
    x = rng.standard_normal((3, 8, 8, 3)).astype(np.float32)
    ours = heatlens.explain(net, x, layer="features", upsample=False)
    reference = heatlens.explain(heatlens.wrap(tiny, preprocess=None), x, layer="features", upsample=False)
    np.testing.assert_allclose(ours.maps, reference.maps, atol=1e-5)


def test_unreadable_model_files(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ModelError, match="not a TorchScript file"):
        heatlens.load_model(str(tmp_path / "junk.pt"), trust=True)
    (tmp_path / "junk.pt2").write_bytes(b"junk")
    with pytest.raises(ModelError, match=r"not a torch\.export program"):
        heatlens.load_model(str(tmp_path / "junk.pt2"), trust=True)
    with pytest.raises(ModelError, match=r"not a torch\.export program"):
        heatlens.load_model(str(tmp_path / "junk.pt2"), trust="pickle")
    with pytest.raises(ModelError, match="no model file"):
        heatlens.load_model(str(tmp_path / "missing.pt"))
    with pytest.raises(ModelError, match="cannot import"):
        heatlens.load_model("no_such_module_xyz:factory")


def test_weight_files_are_not_models(tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "weights.pth")
    for trust in (False, True):
        with pytest.raises(ModelError, match=r"holds weights, not a network.*factory"):
            heatlens.load_model(str(tmp_path / "weights.pth"), trust=trust)


@pytest.fixture
def factories(tmp_path, monkeypatch):
    (tmp_path / "user_factories.py").write_text(
        "from toy_models import TinyCNN\n"
        "def needs_width(width):\n    return TinyCNN(width=width)\n"
        "def broken():\n    raise KeyError('config')\n"
        "def not_a_module():\n    return 3\n"
    )
    (tmp_path / "user_broken_module.py").write_text("raise RuntimeError('needs a GPU')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "user_factories"


def test_factory_errors_name_the_factory(factories):
    with pytest.raises(ModelError, match="'user_factories:needs_width' must be callable with no arguments") as info:
        heatlens.load_model(f"{factories}:needs_width")
    assert "\n" not in str(info.value)
    with pytest.raises(ModelError, match="calling the factory 'user_factories:broken' failed: KeyError"):
        heatlens.load_model(f"{factories}:broken")
    with pytest.raises(ModelError, match=r"returned int, not a torch\.nn\.Module"):
        heatlens.load_model(f"{factories}:not_a_module")
    assert isinstance(heatlens.load_model(f"{factories}:TinyCNN"), TorchNetwork)  # a class with defaults builds
    with pytest.raises(ModelError, match="cannot import 'user_broken_module:build': importing it raised RuntimeError"):
        heatlens.load_model("user_broken_module:build")


def test_trust_is_refused_where_it_does_not_apply():
    with pytest.raises(ModelError, match="trust= does not apply"):
        heatlens.load_model("efficientnet_lite0", trust=True)
    with pytest.raises(ModelError, match=r"trust= is for \.pt2 and TorchScript files"):
        heatlens.load_model("toy_models:tiny_cnn", trust=True)
    with pytest.raises(ModelError, match=r"trust= is for \.pt2 and TorchScript files.*Keras"):
        heatlens.load_model("keras:Xception", trust="pickle")
    with pytest.raises(ModelError, match="trust must be False, True or 'pickle'"):
        heatlens.load_model("model.pt2", trust="yes")
    with pytest.raises(ModelError, match="trust must be False, True or 'pickle'"):
        heatlens.load_model("model.pt2", trust=1)
    assert isinstance(heatlens.load_model("toy_models:tiny_cnn", trust=False), TorchNetwork)


@pytest.mark.parametrize("trust", [False, True])
def test_an_unknown_extension_names_what_heatlens_loads(tmp_path, tiny, trust):
    (tmp_path / "x.tflite").write_bytes(b"TFL3")
    for spec in (str(tmp_path / "x.tflite"), "missing.tflite"):
        with pytest.raises(ModelError, match=r"cannot load '(x|missing)\.tflite': \.tflite is not a model format it "
                           r"reads; give a zoo name .*keras:NAME, torchvision:NAME, timm:NAME, hf:FOLDER, an \.onnx "
                           r"file, a \.keras or \.h5 file, a torch\.export \.pt2 file, a TorchScript file") as caught:
            heatlens.load_model(spec, trust=trust)
        assert "\n" not in str(caught.value)
    with pytest.raises(ModelError, match="unknown model 'no_such_model': expected a zoo name"):
        load_torch("no_such_model")


def test_a_trusted_torchscript_file_with_another_extension_still_loads(tiny, tmp_path):
    path = tmp_path / "tiny.torchscript"
    torch.jit.trace(tiny.eval(), torch.zeros(1, 3, 32, 32)).save(str(path))
    network = heatlens.load_model(str(path), trust=True, preprocess=None)
    x = np.random.default_rng(0).random((1, 32, 32, 3), np.float32)
    with torch.no_grad():
        expected = tiny(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    np.testing.assert_allclose(network.predict(x), expected, rtol=1e-5, atol=1e-6)


def test_a_factory_in_the_current_folder_imports_with_the_folder_on_the_path_for_that_lookup_only(
        tmp_path, monkeypatch):
    (tmp_path / "folder_factory_mod.py").write_text(
        "import torch\n\n\ndef make():\n    return torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.ReLU())\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "folder_factory_mod", raising=False)
    before = list(sys.path)
    model = load_torch("folder_factory_mod:make")
    assert isinstance(model, torch.nn.Sequential) and sys.path == before
    with pytest.raises(ModelError, match=r"has no 'mak'\. Did you mean: 'make'\?"):
        load_torch("folder_factory_mod:mak")
    with pytest.raises(ModelError, match=r"no module 'nowhere_mod' in the current folder"):
        load_torch("nowhere_mod:make")
    (tmp_path / "broken_import_mod.py").write_text("import no_such_dependency_xyz\n")
    with pytest.raises(ModelError, match=r"importing 'broken_import_mod' raised ModuleNotFoundError: No module "
                                         r"named 'no_such_dependency_xyz'"):
        load_torch("broken_import_mod:make")
    monkeypatch.delitem(sys.modules, "folder_factory_mod", raising=False)
