"""What a pickle would import, read from its opcodes without unpickling it, so files torch would load with
plain `pickle` can be refused before any of their code runs."""

from __future__ import annotations

import io
import pickletools

# What a plain tensor, parameter or dict of them needs: torch.load(weights_only=True) territory, nothing callable.
_STORAGES = ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool",
             "ComplexFloat", "ComplexDouble")
SAFE_IMPORTS = frozenset({
    ("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
    ("torch", "Size"), ("torch", "device"), *(("torch", f"{kind}Storage") for kind in _STORAGES),
})
_STRING_PUSHES = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE",
                  "BINUNICODE8"}
_MEMO_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}
_MEMO_GETS = {"GET", "BINGET", "LONG_BINGET"}
_NO_STACK_EFFECT = {"FRAME", "MEMOIZE", *_MEMO_PUTS}


class UncheckablePickleError(ValueError):
    """The bytes are not a pickle that can be read to the end, so what they import cannot be told."""


def unsafe_import(data: bytes, streams: int = 1) -> str | None:
    """The first thing the pickle(s) in `data` would import beyond SAFE_IMPORTS ('os.system', 'a copyreg
    extension'), or None. `streams` > 1 reads that many pickles back to back (torch's legacy format),
    stopping early at bytes that are no pickle; the first one must be a whole pickle."""
    stream = io.BytesIO(data)
    for index in range(streams):
        start = stream.tell()
        if start == len(data) and index:
            return None
        try:
            found = _scan_one(stream)
        except UncheckablePickleError:
            if index:
                return None  # raw bytes after the pickles: nothing reads them as a pickle either
            raise
        if found is not None:
            return found
    return None


def _scan_one(stream: io.BytesIO) -> str | None:
    """Walk one pickle's opcodes; STACK_GLOBAL must take its two names straight from string pushes."""
    memo: dict[int, str | None] = {}
    recent: list[str | None] = []  # what the last value-pushing opcodes pushed (a string, or None)
    try:
        for opcode, arg, _ in pickletools.genops(stream):
            name = opcode.name
            if name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                if (module, attr) not in SAFE_IMPORTS:
                    return f"{module}.{attr}"
            elif name == "STACK_GLOBAL":
                if len(recent) < 2 or recent[-1] is None or recent[-2] is None:
                    return "a name built on the pickle's stack"
                if (recent[-2], recent[-1]) not in SAFE_IMPORTS:
                    return f"{recent[-2]}.{recent[-1]}"
            elif name in ("EXT1", "EXT2", "EXT4"):
                return "a copyreg extension"
            if name in _NO_STACK_EFFECT:
                if name != "FRAME":
                    memo[len(memo) if name == "MEMOIZE" else _index(arg)] = recent[-1] if recent else None
                continue
            if name in _STRING_PUSHES:
                text = arg.decode("latin-1") if isinstance(arg, bytes) else arg
                recent.append(text if isinstance(text, str) else None)
            elif name in _MEMO_GETS:
                recent.append(memo.get(_index(arg)))
            else:
                recent.append(None)
            del recent[:-2]
    except (ValueError, EOFError, OverflowError, UnicodeDecodeError) as exc:
        raise UncheckablePickleError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    return None


def _index(arg: object) -> int:
    """A memo opcode's integer argument (pickletools gives the memo index as an int)."""
    if not isinstance(arg, int):
        raise ValueError(f"a memo opcode without an index: {arg!r}")
    return arg
