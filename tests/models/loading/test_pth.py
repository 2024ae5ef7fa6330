"""The torch-free reader of legacy .pth checkpoints: the same arrays as torch.load for plain state dicts, and
a one-line ModelError naming the file for anything else: imports, odd layouts, short or inconsistent data."""

from __future__ import annotations

import collections
import contextlib
import pickle
import struct
from dataclasses import replace

import numpy as np
import pytest
from model_files import Checkpoint, Global, Storage, Tensor, dumps, payload, plain_checkpoint

from heatlens import ModelError
from heatlens.models.loading.pth import read_state_dict


def refused(path, match: str) -> str:
    with pytest.raises(ModelError, match=match) as info:
        read_state_dict(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_plain_state_dict_reads_as_torch_reads_it(tmp_path):
    torch = pytest.importorskip("torch")
    path = plain_checkpoint().write(tmp_path / "plain.pth")
    ours, theirs = read_state_dict(path), torch.load(path, map_location="cpu", weights_only=True)
    assert list(ours) == list(theirs)
    for key, value in theirs.items():
        assert ours[key].dtype == value.numpy().dtype
        np.testing.assert_array_equal(ours[key], value.numpy())


def test_torch_saved_legacy_file_reads(tmp_path):
    torch = pytest.importorskip("torch")
    state = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)).state_dict()
    state["0.weight_t"] = state["0.weight"].transpose(0, 1)  # a strided view of the same storage
    torch.save(state, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    ours = read_state_dict(tmp_path / "legacy.pth")
    for key, value in state.items():
        np.testing.assert_array_equal(ours[key], value.numpy())


@pytest.mark.parametrize("part", ["magic", "protocol", "sys_info", "state_dict", "keys"])
def test_a_payload_in_any_pickle_is_refused_without_running(tmp_path, part):
    marker = tmp_path / "marker"
    checkpoint = plain_checkpoint()
    checkpoint.parts[part] = payload(marker)
    path = checkpoint.write(tmp_path / f"{part}.pth")
    refused(path, "not a legacy PyTorch checkpoint" if part == "magic" else "imports __builtin__.exec")
    assert not marker.exists()
    torch = pytest.importorskip("torch")
    with contextlib.suppress(Exception):  # torch's own loader: the payload runs, then the file is no checkpoint
        torch.load(path, weights_only=False)
    assert marker.read_text() == "ran"  # so the file was live


def layout(offset=0, size=(3, 4), stride=(4, 1), data=None, numel=None, view=None) -> Checkpoint:
    storage = Storage("0", np.arange(12, dtype=np.float32) if data is None else data, numel, view)
    return Checkpoint({"w": Tensor(storage, offset, size, stride)})


@pytest.mark.parametrize(("checkpoint", "match"), [
    (layout(size=(2**40, 2**40), stride=(1, 1)), "reaches past its storage"),
    (layout(size=(2**31,), stride=(0,)), "reaches past its storage"),
    (layout(stride=(5, 1)), "reaches past its storage"),
    (layout(offset=1), "reaches past its storage"),
    (layout(offset=-1), "tensor layout"),
    (layout(stride=(-4, 1)), "tensor layout"),
    (layout(size=(-3, 4)), "tensor layout"),
    (layout(size=(3, 4.0)), "tensor layout"),
    (layout(size=(3, True)), "tensor layout"),
    (layout(stride=(4,)), "tensor layout"),
    (layout(size=[3, 4]), "tensor layout"),
    (layout(numel=10**6), "holds 12 elements"),
    (layout(view=("0", 0, 12)), "storage view"),
    (layout(offset=2**62), "tensor layout"),
], ids=["huge", "stride-0-expansion", "stride-past-end", "offset-past-end", "negative-offset", "negative-stride",
        "negative-size", "float-size", "bool-size", "rank-mismatch", "size-list", "numel-mismatch", "view",
        "huge-offset"])
def test_crafted_layouts_are_model_errors(tmp_path, checkpoint, match):
    refused(checkpoint.write(tmp_path / "crafted.pth"), match)


def test_short_and_inconsistent_data(tmp_path):
    good = plain_checkpoint()
    refused(replace(good, storage_bytes=good.storage_bytes[:-5]).write(tmp_path / "cut.pth"), "ends inside storage")
    refused(replace(good, storage_bytes=good.storage_bytes[:4]).write(tmp_path / "cut2.pth"), "ends before storage")
    huge = struct.pack("<q", 2**40) + b"\0" * 16
    claims_more = Checkpoint({"w": Tensor(Storage("0", np.zeros(2, np.float32), 2**40), 0, (2,), (1,))},
                             storage_bytes=huge)
    refused(claims_more.write(tmp_path / "huge.pth"), "ends inside storage")
    for keys, name in [(["0"], "missing"), (["0", "1", "2"], "extra"), (["0", "0", "1"], "twice"), ([[1]], "odd")]:
        checkpoint = plain_checkpoint()
        checkpoint.parts["keys"] = pickle.dumps(keys, protocol=2)
        refused(checkpoint.write(tmp_path / f"{name}.pth"), "not a plain PyTorch state dict")


def test_other_shapes_of_file(tmp_path):
    refused(tmp_path / "absent.pth", "cannot read")
    (tmp_path / "empty.pth").write_bytes(b"")
    refused(tmp_path / "empty.pth", "not a legacy PyTorch checkpoint")
    (tmp_path / "zip.pth").write_bytes(b"PK\x03\x04" + bytes(60))
    refused(tmp_path / "zip.pth", "not a legacy PyTorch checkpoint")
    for part, value, match in [
        ("state_dict", dumps([1, 2]), "not a flat dict"),
        ("state_dict", dumps({"nested": {"w": 1}}), "not a flat dict"),
        ("sys_info", pickle.dumps({"little_endian": False}, protocol=2), "little-endian"),
        ("protocol", pickle.dumps(1000, protocol=2), "version"),
        ("state_dict", dumps(collections.OrderedDict(w=Global("torch", "load"))), "torch.load"),
        ("state_dict", b"\x80\x02K", "state dict"),
    ]:
        checkpoint = plain_checkpoint()
        checkpoint.parts[part] = value
        refused(checkpoint.write(tmp_path / "odd.pth"), match)


class _Rewritten(Tensor):
    """A tensor whose pickle sets attributes after it was built (a BUILD opcode), to dodge the layout check."""

    def __reduce__(self):
        return (*super().__reduce__(), {"size": (2**40,), "stride": (1,)})


def test_a_tensor_cannot_be_rewritten_after_its_check(tmp_path):
    storage = Storage("0", np.arange(4, dtype=np.float32))
    checkpoint = Checkpoint({"w": _Rewritten(storage, 0, (4,), (1,))})
    refused(checkpoint.write(tmp_path / "build.pth"), "after its layout was checked")


def test_mutated_files_end_in_arrays_or_model_errors(tmp_path):
    original = plain_checkpoint().write(tmp_path / "plain.pth").read_bytes()
    rng = np.random.default_rng(0)
    outcomes = collections.Counter()
    for case in range(300):
        data = bytearray(original)
        for _ in range(rng.integers(1, 4)):
            data[rng.integers(len(data))] = rng.integers(256)
        if case % 5 == 0:
            data = data[: rng.integers(len(data))]
        path = tmp_path / f"m{case}.pth"
        path.write_bytes(bytes(data))
        try:
            state = read_state_dict(path)
        except ModelError as exc:
            assert "\n" not in str(exc)
            outcomes["refused"] += 1
        else:
            assert all(isinstance(value, np.ndarray) for value in state.values())
            outcomes["read"] += 1
    assert outcomes["refused"] > 0 and outcomes["read"] > 0
