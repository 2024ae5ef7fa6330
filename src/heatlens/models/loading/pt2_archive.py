"""Checks a torch.export (.pt2) archive for code hidden beside its graph before torch opens it, running nothing.

torch.export.load unpickles with plain `pickle` the weights and constants saved with use_pickle, custom and
opaque objects, the sample inputs (after a weights_only try) and the legacy format's members; it runs
AOTInductor's compiled libraries; and it evaluates the graph's shape expressions with sympy (Python's
eval). Raw tensor data named by the archive's configs and its text members are skipped; every other member
must be a pickle (or a torch.save zip of pickles) importing only tensor parts, and every shape expression
must be plain arithmetic.
"""

from __future__ import annotations

import io
import json
import posixpath
import re
import tarfile
import tokenize
import zipfile
from collections import Counter
from pathlib import Path

from .pickle_scan import unsafe_import

_TEXT = {"archive_format", "archive_version", "byteorder", "version", ".data/version", ".data/serialization_id",
         ".format_version", ".storage_alignment"}
_CONFIGS = (("data/weights/", "_weights_config.json"), ("data/constants/", "_constants_config.json"))
# Members torch.export's pre-2.8 format unpickles although some are named .json.
_LEGACY_PICKLES = ("serialized_state_dict.json", "serialized_state_dict.pt", "serialized_constants.json",
                   "serialized_constants.pt", "serialized_example_inputs.pt")
_LEGACY_TORCH_SAVE = 5  # torch.save's legacy stream: magic, protocol, sys_info, the object, storage keys


def hidden_code(path: Path) -> str | None:
    """Why `path` would run code beyond its graph's operators when torch.export loads it (one clause:
    a pickle, a compiled library, a shape expression), or None when every member is checked.
    Raises ValueError when it is no zip archive."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"not a zip archive ({exc})") from None
    with archive:
        names = archive.namelist()
        twice = [name for name, count in Counter(names).items() if count > 1]
        if twice:
            return f"member '{twice[0]}' appears twice, so what torch reads cannot be told"
        prefix = _root(names)
        relative = {name: name[len(prefix):] if prefix else name for name in names}
        try:
            raw, pickled = _payloads(archive, names, relative)
        except Exception as exc:  # our own JSON reading of attacker-made bytes: any failure is a refusal
            return f"its configs cannot be read ({type(exc).__name__}: {exc})"
        for name in names:
            inside = relative[name]
            if inside.startswith("data/aotinductor/"):
                return f"member '{name}' is AOTInductor compiled code, which torch runs when it loads the archive"
            if _is_graph(inside) and inside not in pickled:
                found = _graph_code(archive.read(name))
                if found is not None:
                    return f"member '{name}' {found}"
                continue
            if inside not in pickled and (name in raw or _is_text(inside)):
                continue
            try:
                found = _check_blob(archive.read(name))
            except Exception as exc:  # UncheckablePickleError, a broken nested zip, an unsupported compression, ...
                return f"member '{name}' is neither tensor data nor a pickle heatlens can check ({exc})"
            if found is not None:
                return f"member '{name}' {found}"
    return None


def _root(names: list[str]) -> str:
    """The one top folder every member lies in ('name/'), as torch's reader takes it; '' when there is none."""
    tops = {name.split("/", 1)[0] + "/" for name in names}
    if len(tops) == 1 and all("/" in name for name in names):
        return tops.pop()
    return ""


def _payloads(archive: zipfile.ZipFile, names: list[str], relative: dict[str, str]) -> tuple[set[str], set[str]]:
    """(members the configs name as raw tensor bytes, relative paths torch unpickles whatever their name)."""
    by_relative = {inside: name for name, inside in relative.items()}
    models = {inside[len("models/"):-len(".json")] for inside in by_relative if inside.startswith("models/")}
    pickled = {*_LEGACY_PICKLES, *(f"data/{kind}/{model}.pt" for kind in ("weights", "constants") for model in models)}
    raw: set[str] = set()
    for inside, name in by_relative.items():
        folder = next((f for f, end in _CONFIGS if inside.startswith(f) and inside.endswith(end)), None)
        if folder is None:
            continue
        for entry in json.loads(archive.read(name))["config"].values():
            path_name = str(entry["path_name"])
            targets = {folder + path_name, posixpath.join(folder, path_name), posixpath.normpath(folder + path_name)}
            if (folder == "data/weights/" or path_name.startswith("tensor_")) and not entry.get("use_pickle"):
                raw |= {by_relative[t] for t in targets if t in by_relative}
            else:
                pickled |= targets
    return raw, pickled


def _is_graph(inside: str) -> bool:
    """Members holding a serialized graph: models/NAME.json, or the pre-2.8 format's one program."""
    return (inside.startswith("models/") and inside.endswith(".json")) or inside == "serialized_exported_program.json"


def _is_text(inside: str) -> bool:
    """Members torch reads as text (JSON, versions, extra files), never as a pickle."""
    return inside in _TEXT or inside.endswith(".json") or inside.startswith("extra/")


def _check_blob(data: bytes) -> str | None:
    """What a member torch may unpickle would import beyond tensor parts, decided the way torch.load does:
    a zip by its first bytes, else a tar, else a stream of pickles."""
    if data[:4] == b"PK\x03\x04":
        return _check_torch_zip(data)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:"):
            return "is a tar archive, which torch.load unpickles without checks"
    except tarfile.TarError:
        pass
    found = unsafe_import(data, streams=_LEGACY_TORCH_SAVE)
    return None if found is None else f"imports {found}"


def _check_torch_zip(data: bytes) -> str | None:
    """A torch.save zip inside the archive: each pickle in it is checked; a TorchScript zip is refused."""
    with zipfile.ZipFile(io.BytesIO(data)) as inner:
        names = inner.namelist()
        if len(set(names)) < len(names):
            return "is a zip whose members appear twice"
        if any(name.endswith("constants.pkl") or "/code/" in f"/{name}" for name in names):
            return "is a TorchScript archive, which runs its own code when torch.load opens it"
        for name in names:
            if name.endswith(".pkl"):
                found = unsafe_import(inner.read(name))
                if found is not None:
                    return f"holds a pickle ('{name}') that imports {found}"
    return None


# The names sympy's srepr writes for shape expressions, torch's own sympy functions among them.
_SYMPY_NAMES = frozenset({
    "Symbol", "Dummy", "Integer", "Rational", "Float", "Add", "Mul", "Pow", "Mod", "Max", "Min", "Abs", "floor",
    "ceiling", "sqrt", "exp", "log", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "Equality", "Unequality",
    "StrictLessThan", "StrictGreaterThan", "LessThan", "GreaterThan", "And", "Or", "Not", "Xor", "ITE",
    "Piecewise", "ExprCondPair", "Tuple", "true", "false", "True", "False", "oo", "zoo", "nan", "Infinity",
    "NegativeInfinity", "One", "Zero", "NegativeOne", "Half", "BitwiseFn_bitwise_and", "BitwiseFn_bitwise_or",
    "BitwiseFn_bitwise_xor", "CeilDiv", "CeilToInt", "CleanDiv", "FloatPow", "FloatTrueDiv", "FloorDiv",
    "FloorToInt", "Identity", "IntTrueDiv", "IsNonOverlappingAndDenseIndicator", "LShift", "ModularIndexing",
    "PowByNatural", "PythonMod", "RShift", "RoundDecimal", "RoundToInt", "ToFloat", "TruncToFloat", "TruncToInt",
    "Where", *(f"OpaqueUnaryFn_{fn}" for fn in ("acos", "asin", "asinh", "atan", "cos", "cosh", "exp", "log",
                                                "log2", "sin", "sinh", "sqrt", "tan", "tanh")),
})
_PLAIN_STRING = re.compile(r"'[A-Za-z0-9_.+\-]*'")
_KWARG = re.compile(r"[a-z][a-z_]*")


def _graph_code(data: bytes) -> str | None:
    """What in a serialized graph torch would evaluate beyond shape arithmetic (its call targets torch itself
    checks against the operators a program may call)."""
    try:
        graph = json.loads(data)
    except ValueError as exc:
        return f"is no JSON graph ({exc})"
    stack = [graph]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            expression = item.get("expr_str")
            if isinstance(expression, str) and not _plain_expression(expression):
                return f"has a shape expression that is not plain arithmetic, {expression[:60]!r}"
            stack.extend(item.values())
    return None


def _plain_expression(text: str) -> bool:
    """True when sympy's eval of `text` can only build sympy objects: known names, numbers, plain strings."""
    if len(text) > 100_000:
        return False
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(text).readline)
                  if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER)]
    except (tokenize.TokenError, SyntaxError):
        return False
    for index, token in enumerate(tokens):
        following = tokens[index + 1].string if index + 1 < len(tokens) else ""
        if token.type == tokenize.NUMBER or (token.type == tokenize.OP and token.string in ("(", ")", ",", "-")):
            continue
        if token.type == tokenize.OP and token.string == "=" and index and _KWARG.fullmatch(tokens[index - 1].string):
            continue
        if token.type == tokenize.NAME and (token.string in _SYMPY_NAMES
                                            or (following == "=" and _KWARG.fullmatch(token.string))):
            continue
        if token.type == tokenize.STRING and _PLAIN_STRING.fullmatch(token.string):
            continue
        return False
    return True
