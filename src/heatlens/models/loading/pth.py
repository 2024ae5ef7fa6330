"""Read a legacy-format PyTorch checkpoint (.pth, a flat state dict of tensors) into numpy, without torch.

So Keras-only installs can use the published EfficientNet-Lite weights. Each of the file's pickles goes
through an unpickler that builds only ints, strings, containers, ordered dicts and tensor references (any
other import is refused, so no code from the file runs), and every tensor layout is checked against the
bytes actually read before it is copied out. Anything unexpected is a one-line ModelError naming the file.
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ModelError

_MAGIC = 0x1950A86A20F9469CFC6C
_PROTOCOL = 1001
_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
_MAX_EXPANSION = 4  # tensors may share storage (tied weights), but together copy out at most 4x the file's data


class _Storage:
    """One storage the pickle refers to: its element type and count; its bytes come after the pickles."""

    def __init__(self, dtype: Any, numel: Any) -> None:
        if dtype not in _DTYPES.values():
            raise pickle.UnpicklingError(f"a storage of unknown type {dtype!r}")
        if not _is_count(numel):
            raise pickle.UnpicklingError(f"a storage of {numel!r} elements")
        self.dtype = np.dtype(dtype).newbyteorder("<")
        self.numel = numel
        self.data: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        raise pickle.UnpicklingError("it rewrites a storage after it was checked")


class _TensorRef:
    """A tensor's view of a storage, checked to lie inside it."""

    def __init__(self, storage: Any, offset: Any, size: Any, stride: Any) -> None:
        if not isinstance(storage, _Storage):
            raise pickle.UnpicklingError("a tensor without a storage")
        if not (_is_count(offset) and isinstance(size, tuple) and isinstance(stride, tuple)
                and len(size) == len(stride) and all(map(_is_count, size + stride))):
            raise pickle.UnpicklingError(f"a tensor layout offset={offset!r} size={size!r} stride={stride!r}")
        self.numel = math.prod(size)
        last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) if self.numel else offset - 1
        if last >= storage.numel or self.numel > storage.numel:
            raise pickle.UnpicklingError(f"a tensor (offset {offset}, size {size}, stride {stride}) that reaches "
                                         f"past its storage of {storage.numel} elements")
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __setstate__(self, state: Any) -> None:
        raise pickle.UnpicklingError("it rewrites a tensor after its layout was checked")

    def materialize(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise pickle.UnpicklingError("a tensor whose storage is not in the file")
        item = data.itemsize
        view = np.lib.stride_tricks.as_strided(data[self.offset:], self.size, [s * item for s in self.stride])
        return np.array(view, dtype=data.dtype.newbyteorder("="))


def _is_count(value: Any) -> bool:
    return type(value) is int and 0 <= value < 2**62


class _PlainUnpickler(pickle.Unpickler):
    """Builds only pickle's own types: every import and persistent reference is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"it imports {module}.{name}, which is not part of a plain state dict")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("a storage reference outside the state dict")


class _StateDictUnpickler(_PlainUnpickler):
    """Also builds ordered dicts, tensor references and storages: what a state dict is made of."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self._rebuild_tensor  # a bound method: a pickle cannot set attributes on it
        if module == "torch" and name in _DTYPES:
            return _DTYPES[name]
        return super().find_class(module, name)

    def _rebuild_tensor(self, storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> _TensorRef:
        return _TensorRef(storage, offset, size, stride)

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage" and isinstance(pid[2], str)):
            raise pickle.UnpicklingError(f"unexpected persistent object {str(pid)[:80]}")
        _, dtype, key, _location, numel, view = pid
        if view is not None:
            raise pickle.UnpicklingError("a storage view, which plain state dicts do not use")
        storage = self.storages.setdefault(key, _Storage(dtype, numel))
        if (storage.dtype, storage.numel) != (np.dtype(dtype).newbyteorder("<"), numel):
            raise pickle.UnpicklingError(f"storage '{key}' declared twice, differently")
        return storage


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a legacy (non-zip) torch.save state dict, as numpy arrays, in file order."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read the checkpoint '{path}': {exc.strerror or exc}") from None
    try:
        return _read(io.BytesIO(data))
    except _NotLegacyError:
        raise ModelError(f"'{path}' is not a legacy PyTorch checkpoint (a torch.save file with "
                         "_use_new_zipfile_serialization=False)") from None
    except Exception as exc:  # our own parsing of the file's bytes; nothing from the file runs
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"'{path}' is not a plain PyTorch state dict: {text}") from None


class _NotLegacyError(Exception):
    """The file does not start the way a legacy torch.save file does."""


def _read(f: io.BytesIO) -> dict[str, np.ndarray]:
    try:
        magic = _PlainUnpickler(f).load()
    except Exception:
        raise _NotLegacyError from None
    if magic != _MAGIC:
        raise _NotLegacyError
    if _PlainUnpickler(f).load() != _PROTOCOL:
        raise ValueError("unknown legacy format version")
    sys_info = _PlainUnpickler(f).load()
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise ValueError("only little-endian checkpoints are read")
    unpickler = _StateDictUnpickler(f)
    result = unpickler.load()
    if not isinstance(result, dict) or not all(
        isinstance(key, str) and isinstance(ref, _TensorRef) for key, ref in result.items()
    ):
        raise ValueError("the checkpoint is not a flat dict of named tensors")
    keys = _PlainUnpickler(f).load()
    if not isinstance(keys, list) or len(set(keys)) != len(keys) or set(keys) != set(unpickler.storages):
        raise ValueError("its list of storages does not match the storages its tensors use")
    total = len(f.getbuffer())
    for key in keys:
        storage = unpickler.storages[key]
        header = f.read(8)
        if len(header) != 8:
            raise ValueError(f"the file ends before storage '{key}'")
        (count,) = struct.unpack("<q", header)
        if count != storage.numel:
            raise ValueError(f"storage '{key}' holds {count} elements, but its tensors were told {storage.numel}")
        size = count * storage.dtype.itemsize
        if size > total - f.tell():
            raise ValueError(f"the file ends inside storage '{key}' ({size} bytes expected)")
        storage.data = np.frombuffer(f.read(size), dtype=storage.dtype)
    budget = _MAX_EXPANSION * max(total, 1)
    if sum(ref.numel * ref.storage.dtype.itemsize for ref in result.values()) > budget:
        raise ValueError("its tensors overlap far more than a state dict's do")
    return {name: ref.materialize() for name, ref in result.items()}
