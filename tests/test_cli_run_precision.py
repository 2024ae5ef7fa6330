"""`heatlens run --precise/--fast`: the torch adapter's TF32 switch, set on the run's network and on the networks
its engine builds (Ray actors), refused for models it does not apply to, and announced on a GPU."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

import heatlens
import heatlens.cli_run
from heatlens.cli import app
from heatlens.errors import HeatlensError

runner = CliRunner()


def _photos(folder: Path, count: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")


@pytest.mark.parametrize(("flag", "precise"), [([], True), (["--precise"], True), (["--fast"], False)])
def test_the_flag_sets_precise_on_the_network_and_its_factory(tmp_path, monkeypatch, flag, precise):
    seen = []
    real_run = heatlens.cli_run.run

    def spy(network, *args, **kwargs):
        seen.append((network.precise, kwargs["model_factory"]().precise))
        return real_run(network, *args, **kwargs)

    monkeypatch.setattr(heatlens.cli_run, "run", spy)
    _photos(tmp_path / "data", 2)
    result = runner.invoke(app, ["run", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--model",
                                 "toy_models:tiny_cnn", "--preprocess", "none", "-q", *flag])
    assert result.exit_code == 0, result.output
    assert seen == [(precise, precise)]


def test_fast_is_refused_for_a_model_without_the_switch(monkeypatch):
    predict = heatlens.wrap(lambda images: np.zeros((len(images), 3), np.float32))
    monkeypatch.setattr(heatlens.cli_run, "_network", lambda *args, **kwargs: predict)
    with pytest.raises(HeatlensError, match=r"--fast allows TF32 on CUDA for torch models.*drop --fast"):
        heatlens.cli_run._precision_network(False, "model", "auto", None)
    assert heatlens.cli_run._precision_network(True, "model", "auto", None) is predict


@pytest.mark.parametrize(("precise", "said"), [(True, "precise: float32, TF32 off"), (False, "fast: TF32 allowed")])
def test_a_gpu_run_says_its_precision(capsys, precise, said):
    on_gpu = types.SimpleNamespace(device=types.SimpleNamespace(type="cuda"))
    heatlens.cli_run._say_precision(on_gpu, precise, quiet=False)
    assert said in capsys.readouterr().err
    heatlens.cli_run._say_precision(types.SimpleNamespace(device=types.SimpleNamespace(type="cpu")), precise, False)
    heatlens.cli_run._say_precision(on_gpu, precise, quiet=True)
    assert capsys.readouterr().err == ""
