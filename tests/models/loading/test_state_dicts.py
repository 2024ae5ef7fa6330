"""Weights files into networks built by code: safetensors and torch.save state dicts (training checkpoints and
wrapper prefixes unwrapped), code-carrying pickles refused, and the first key that does not fit named."""

from __future__ import annotations

from collections import OrderedDict

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
from safetensors.torch import save_file

from heatlens import ModelError
from heatlens.models.loading.state_dicts import classifier_classes, load_weights, read_weights


def small_net(classes: int = 5) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(OrderedDict(conv=torch.nn.Conv2d(3, 4, 3), bn=torch.nn.BatchNorm2d(4),
                                           pool=torch.nn.AdaptiveAvgPool2d(1), flat=torch.nn.Flatten(),
                                           fc=torch.nn.Linear(4, classes)))


class Opaque:
    """Not a tensor nor a plain container: torch.load(weights_only=True) must refuse to build it."""


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    left, right = a.state_dict(), b.state_dict()
    assert list(left) == list(right)
    for key in left:
        torch.testing.assert_close(left[key], right[key], rtol=0, atol=0)


def test_safetensors_and_torch_save_load_the_same_tensors(tmp_path):
    net = small_net()
    save_file(net.state_dict(), tmp_path / "w.safetensors")
    torch.save(net.state_dict(), tmp_path / "w.pth")
    for name in ("w.safetensors", "w.pth"):
        fresh = small_net()
        with torch.no_grad():
            for tensor in fresh.state_dict().values():
                tensor.zero_()
        load_weights(fresh, read_weights(tmp_path / name), name, "the test net")
        assert_same_weights(fresh, net)


def test_training_checkpoints_and_wrapper_prefixes_are_unwrapped(tmp_path):
    net = small_net()
    wrapped = {f"module.{key}": value for key, value in net.state_dict().items()}
    torch.save({"epoch": 3, "state_dict": wrapped, "optimizer": {"lr": 0.1}}, tmp_path / "ckpt.pth")
    state = read_weights(tmp_path / "ckpt.pth")
    assert list(state) == list(net.state_dict())


def test_pickles_that_need_code_are_refused(tmp_path):
    torch.save({"weight": torch.zeros(2), "extra": Opaque()}, tmp_path / "code.pth")
    with pytest.raises(ModelError, match=r"beyond tensors.*does not unpickle"):
        read_weights(tmp_path / "code.pth")


def test_files_that_are_not_state_dicts(tmp_path):
    with pytest.raises(ModelError, match="no weights file"):
        read_weights(tmp_path / "missing.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"junk" * 10)
    with pytest.raises(ModelError, match="not a safetensors file"):
        read_weights(tmp_path / "junk.safetensors")
    (tmp_path / "junk.pth").write_bytes(b"junk" * 10)
    with pytest.raises(ModelError, match="not a weights file"):
        read_weights(tmp_path / "junk.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(ModelError, match="holds list, not a state dict"):
        read_weights(tmp_path / "list.pth")


def test_weights_that_do_not_fit_name_the_first_missing_unexpected_and_misshapen_key():
    net = small_net()
    state = dict(net.state_dict())
    state["head.weight"] = state.pop("fc.weight")
    with pytest.raises(ModelError, match=r"1 key of the network missing.*'fc\.weight'.*1 key in the file.*'head\."):
        load_weights(net, state, "w.pth", "the test net")
    state = dict(small_net().state_dict(), **{"conv.weight": torch.zeros(4, 3, 5, 5)})
    with pytest.raises(ModelError, match=r"'conv\.weight' is \(4, 3, 5, 5\) in the file, \(4, 3, 3, 3\) in the"):
        load_weights(net, state, "w.pth", "the test net")


def test_a_classifier_fine_tuned_to_other_classes_is_recognised():
    assert classifier_classes(small_net(5), small_net(12).state_dict()) == 12
    assert classifier_classes(small_net(5), small_net(5).state_dict()) is None
    other = dict(small_net(12).state_dict(), **{"conv.weight": torch.zeros(4, 3, 5, 5)})
    assert classifier_classes(small_net(5), other) is None
