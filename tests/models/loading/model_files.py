"""Model files for the security tests, written byte by byte: legacy torch.save checkpoints with any tensor
layout (no torch needed), pickles that write a marker file when unpickled, and rewritten .pt2 archives."""

from __future__ import annotations

import collections
import io
import json
import pickle
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
SYS_INFO = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
STORAGE_NAMES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.int64): "LongStorage",
                 np.dtype(np.float16): "HalfStorage", np.dtype(np.uint8): "ByteStorage"}


class Payload:
    """Unpickling this writes 'ran' to `marker`, through builtins.exec: what an attacker's file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def payload(marker: Path, protocol: int = 2) -> bytes:
    return pickle.dumps(Payload(marker), protocol=protocol)


@dataclass(frozen=True)
class Global:
    """A name the pickle imports, written as a GLOBAL opcode without importing it here."""

    module: str
    name: str

    def __call__(self, *args):  # pickle wants reduce functions to be callable
        raise NotImplementedError


@dataclass
class Storage:
    key: str
    data: np.ndarray
    numel: int | None = None  # what the pickle declares; the data's length when None
    view: tuple | None = None

    def pid(self) -> tuple:
        declared = self.data.size if self.numel is None else self.numel
        return "storage", Global("torch", STORAGE_NAMES[self.data.dtype]), self.key, "cpu", declared, self.view


@dataclass
class Tensor:
    storage: Storage
    offset: int
    size: tuple
    stride: tuple

    def __reduce__(self):
        rebuild = Global("torch._utils", "_rebuild_tensor_v2")
        return rebuild, (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict())


class _Pickler(pickle._Pickler):
    """The pure-Python pickler, taught to write Global names and storages as torch's legacy format does."""

    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)

    def persistent_id(self, obj):
        return obj.pid() if isinstance(obj, Storage) else None

    def _save_global_name(self, obj: Global) -> None:
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[Global] = _save_global_name


def dumps(obj) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


@dataclass
class Checkpoint:
    """The five pickles and the storage bytes of a legacy checkpoint; any part can be swapped before writing."""

    tensors: dict[str, Tensor]
    parts: dict[str, bytes] = field(default_factory=dict)
    storage_bytes: bytes | None = None

    def __post_init__(self) -> None:
        storages = list({id(t.storage): t.storage for t in self.tensors.values()}.values())
        self.parts = {"magic": pickle.dumps(LEGACY_MAGIC, protocol=2), "protocol": pickle.dumps(1001, protocol=2),
                      "sys_info": pickle.dumps(SYS_INFO, protocol=2),
                      "state_dict": dumps(collections.OrderedDict(self.tensors)),
                      "keys": pickle.dumps([s.key for s in storages], protocol=2), **self.parts}
        if self.storage_bytes is None:
            self.storage_bytes = b"".join(
                struct.pack("<q", s.data.size) + s.data.astype(s.data.dtype.newbyteorder("<")).tobytes()
                for s in storages
            )

    def write(self, path: Path) -> Path:
        path.write_bytes(b"".join(self.parts.values()) + self.storage_bytes)
        return path


def plain_checkpoint() -> Checkpoint:
    """Three tensors: a contiguous weight, its transpose sharing the storage at an offset, an int64 counter."""
    weights = Storage("0", np.arange(12, dtype=np.float32) / 4)
    counter = Storage("1", np.array([7], dtype=np.int64))
    return Checkpoint({
        "fc.weight": Tensor(weights, 0, (3, 4), (4, 1)),
        "fc.weight_t": Tensor(weights, 1, (2, 3), (1, 4)),
        "bn.num_batches_tracked": Tensor(counter, 0, (), ()),
    })


def rewrite_zip(source: Path, target: Path, change: Callable[[dict[str, bytes], str], None]) -> Path:
    """A copy of a zip archive with its members changed by `change(members, root)` (root: 'folder/')."""
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    change(members, next(iter(members)).split("/")[0] + "/")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return target


def edit_json(members: dict[str, bytes], name: str, change: Callable[[dict], None]) -> None:
    config = json.loads(members[name])
    change(config)
    members[name] = json.dumps(config).encode()
