"""Loading torch models from files and import paths: torch.export programs keep their layers, TorchScript
predicts only, and unreadable files or import paths get one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from toy_models import tiny_cnn

import heatlens
from heatlens import ModelError
from heatlens.models.torch import TorchNetwork


@pytest.fixture
def tiny():
    return tiny_cnn()


def test_torchscript_predicts_and_refuses_layer_methods_clearly(tiny, rng, tmp_path):
    path = tmp_path / "tiny.pt"
    torch.jit.save(torch.jit.trace(tiny.eval(), torch.zeros(1, 3, 8, 8)), str(path))
    net = heatlens.load_model(str(path), preprocess=None)
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(net.predict(x), TorchNetwork(tiny).predict(x), atol=1e-5)
    with pytest.raises(ModelError, match="TorchScript"):
        heatlens.explain(net, x)


def test_torch_export_program_supports_layer_methods(tiny, rng, tmp_path):
    path = tmp_path / "tiny.pt2"
    program = torch.export.export(tiny.eval(), (torch.zeros(2, 3, 8, 8),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(path))
    net = heatlens.load_model(str(path), preprocess=None)
    x = rng.standard_normal((3, 8, 8, 3)).astype(np.float32)
    ours = heatlens.explain(net, x, layer="features", upsample=False)
    reference = heatlens.explain(heatlens.wrap(tiny, preprocess=None), x, layer="features", upsample=False)
    np.testing.assert_allclose(ours.maps, reference.maps, atol=1e-5)


def test_unreadable_model_files(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ModelError, match="not a TorchScript file"):
        heatlens.load_model(str(tmp_path / "junk.pt"))
    (tmp_path / "junk.pt2").write_bytes(b"junk")
    with pytest.raises(ModelError, match=r"not a torch\.export program"):
        heatlens.load_model(str(tmp_path / "junk.pt2"))
    with pytest.raises(ModelError, match="no model file"):
        heatlens.load_model(str(tmp_path / "missing.pt"))
    with pytest.raises(ModelError, match="cannot import"):
        heatlens.load_model("no_such_module_xyz:factory")
