"""A factory 'package.module:factory' with weights=PATH: the state dict loads into what the factory builds,
and model files, which hold their own weights, refuse weights=."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
from safetensors.torch import save_file
from toy_models import TinyCNN

import heatlens
from heatlens import ModelError


@pytest.fixture
def factory(tmp_path, monkeypatch):
    (tmp_path / "user_nets.py").write_text("from toy_models import TinyCNN\ndef build():\n    return TinyCNN()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "user_nets:build"


def test_a_factory_takes_its_weights_from_a_file(factory, tmp_path, rng):
    torch.manual_seed(5)
    trained = TinyCNN().eval()
    save_file(trained.state_dict(), tmp_path / "net.safetensors")
    network = heatlens.load_model(factory, weights=str(tmp_path / "net.safetensors"), preprocess=None)
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    expected = heatlens.wrap(trained, preprocess=None).predict(x)
    np.testing.assert_allclose(network.predict(x), expected, atol=1e-6)


def test_weights_that_do_not_fit_the_factory_and_files_that_hold_their_own(factory, tmp_path):
    save_file(TinyCNN(width=4).state_dict(), tmp_path / "narrow.safetensors")
    with pytest.raises(ModelError, match=r"do not fit user_nets:build.*'features\.0\.weight' is \(4, 3, 3, 3\)"):
        heatlens.load_model(factory, weights=str(tmp_path / "narrow.safetensors"))
    torch.jit.save(torch.jit.trace(TinyCNN().eval(), torch.zeros(1, 3, 8, 8)), str(tmp_path / "net.pt"))
    with pytest.raises(ModelError, match="holds its own weights"):
        heatlens.load_model(str(tmp_path / "net.pt"), weights=str(tmp_path / "narrow.safetensors"), trust=True)
