"""Read a legacy-format PyTorch checkpoint (.pth, a state dict of tensors) into numpy, without torch.

So Keras-only installs can use the published EfficientNet-Lite weights. Only what a state dict needs is
unpickled (ordered dicts, tensors, storages); anything else is refused, so no code from the file runs.
"""

from __future__ import annotations

import collections
import pickle
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

_MAGIC = 0x1950A86A20F9469CFC6C
_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _Storage:
    def __init__(self, dtype: type, numel: int) -> None:
        self.dtype = np.dtype(dtype)
        self.numel = numel
        self.data: np.ndarray | None = None


class _TensorRef:
    def __init__(self, storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialize(self) -> np.ndarray:
        data = self.storage.data
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(data[self.offset :], self.size, [s * item for s in self.stride])
        return np.array(view)


def _rebuild_tensor(storage: _Storage, offset: int, size: tuple, stride: tuple, *_: Any) -> _TensorRef:
    return _TensorRef(storage, offset, size, stride)


class _StateDictUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _DTYPES:
            return _DTYPES[name]
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not part of a plain state dict")

    def persistent_load(self, pid: Any) -> _Storage:
        kind, dtype, key, _location, numel, *_ = pid
        if kind != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent object {kind!r}")
        return self.storages.setdefault(key, _Storage(dtype, numel))


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a legacy (non-zip) torch.save state dict, as numpy arrays, in file order."""
    with open(path, "rb") as f:
        if pickle.load(f) != _MAGIC:
            raise ValueError(f"'{path}' is not a legacy PyTorch checkpoint")
        pickle.load(f)
        pickle.load(f)
        unpickler = _StateDictUnpickler(f)
        result = unpickler.load()
        for key in pickle.load(f):
            storage = unpickler.storages[key]
            (count,) = struct.unpack("<q", f.read(8))
            storage.data = np.frombuffer(f.read(count * storage.dtype.itemsize), dtype=storage.dtype)
    return {name: ref.materialize() for name, ref in result.items()}
