"""The opcode scan that decides what a pickle would import, checked against what pickle itself imports when
it loads the same bytes (a find_class that records), over every protocol."""

from __future__ import annotations

import collections
import pickle
import pickletools

import pytest
from model_files import Payload

from heatlens.models.loading.pickle_scan import SAFE_IMPORTS, UncheckablePickleError, unsafe_import


class _Recorder(pickle.Unpickler):
    """Loads a pickle with every import recorded and replaced by a harmless stand-in."""

    def __init__(self, data: bytes) -> None:
        import io

        super().__init__(io.BytesIO(data))
        self.imports: list[tuple[str, str]] = []

    def find_class(self, module: str, name: str):
        self.imports.append((module, name))
        return collections.OrderedDict if (module, name) == ("collections", "OrderedDict") else _stand_in


def _stand_in(*args, **kwargs):
    return None


def imported(data: bytes) -> list[tuple[str, str]]:
    recorder = _Recorder(data)
    recorder.load()
    return recorder.imports


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_the_scan_names_what_pickle_would_import(tmp_path, protocol):
    evil = pickle.dumps(Payload(tmp_path / "m"), protocol=protocol)
    _, name = imported(evil)[0]
    found = unsafe_import(evil)
    assert found is not None and found.endswith(f".{name}") and "exec" in found
    plain = pickle.dumps(collections.OrderedDict(a=[1, 2.5, "x", (None, True)]), protocol=protocol)
    assert all(pair in SAFE_IMPORTS for pair in imported(plain))
    assert unsafe_import(plain) is None
    with_bytes = pickle.dumps([b"y"], protocol=protocol)  # protocols 0-2 rebuild bytes through _codecs.encode
    assert (unsafe_import(with_bytes) is None) == all(pair in SAFE_IMPORTS for pair in imported(with_bytes))


def test_stack_global_must_take_its_names_straight_from_strings():
    safe = pickle.dumps(collections.OrderedDict(), protocol=4)
    assert "STACK_GLOBAL" in [op.name for op, _, _ in pickletools.genops(safe)]
    assert unsafe_import(safe) is None
    # 'os', 'system' pushed, then a harmless value and a POP between them and STACK_GLOBAL
    crafted = (b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94N0\x93\x94.")
    assert imported(crafted) == [("os", "system")]  # pickle itself imports os.system from these bytes
    assert unsafe_import(crafted) == "a name built on the pickle's stack"
    via_memo = b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93."
    assert imported(via_memo) == [("os", "system")]
    assert unsafe_import(via_memo) == "os.system"


def test_bytes_that_are_no_pickle_cannot_be_checked():
    for data in (b"", b"junk", b"\x80\x02", b"\x80\x02K"):
        with pytest.raises(UncheckablePickleError):
            unsafe_import(data)
    assert unsafe_import(pickle.dumps(1, protocol=2) + b"raw storage bytes", streams=5) is None
    assert unsafe_import(pickle.dumps(1, protocol=2) + pickle.dumps(Payload("m"), protocol=2), streams=5)
