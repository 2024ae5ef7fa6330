"""The 1000 ImageNet-1k class names, shipped as data (neither torch nor Keras ships them offline), their
WordNet ids and the spellings Keras' decode_predictions prints, and the lookup of a class by name."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path

from .errors import ModelError, TargetError, close_matches

WNID = re.compile(r"n[0-9]{8}")


@cache
def imagenet_classes() -> tuple[str, ...]:
    """Class names in the standard ImageNet-1k index order (0 = 'tench', 281 = 'tabby', ...)."""
    return _imagenet_data("imagenet_classes.txt")


@cache
def imagenet_wnids() -> tuple[str, ...]:
    """The WordNet id of each ImageNet-1k class, in index order (0 = 'n01440764', 282 = 'n02123159')."""
    return _imagenet_data("imagenet_wnids.txt")


@cache
def imagenet_keras_names() -> tuple[str, ...]:
    """Each ImageNet-1k class as Keras' decode_predictions names it (its synset's first WordNet lemma,
    underscores for spaces: 'sports_car'); 'crane' and 'maillot' name two classes each there."""
    return _imagenet_data("imagenet_keras_names.txt")


def _imagenet_data(file: str) -> tuple[str, ...]:
    """The 1000 non-blank, non-comment lines of a shipped data file."""
    text = resources.files("heatlens").joinpath(f"data/{file}").read_text(encoding="utf-8")
    lines = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    if len(lines) != 1000:
        raise RuntimeError(f"heatlens data file {file} is damaged: expected 1000 lines, found {len(lines)}")
    return lines


def is_imagenet(classes: Sequence[str] | None) -> bool:
    """True when `classes` are heatlens' ImageNet-1k names (so WordNet ids and Keras' spellings apply)."""
    return classes is not None and len(classes) == 1000 and tuple(classes) == imagenet_classes()


def find_class(name: str, classes: Sequence[str]) -> int:
    """The index of the class `name` names: an exact name first, then one that differs only in case or in
    underscores for spaces; for ImageNet's classes also Keras' spelling and the WordNet id. A name that
    fits several classes, or none, is a TargetError (with close names)."""
    text = name.strip()
    imagenet = is_imagenet(classes)
    if imagenet and WNID.fullmatch(text.lower()):
        wnids = imagenet_wnids()
        if text.lower() not in wnids:
            raise TargetError(f"'{text}' is no ImageNet-1k WordNet id (n01440764 .. n15075141); use a class id "
                              "or name")
        return wnids.index(text.lower())
    exact, loose = _imagenet_index() if imagenet else _index([classes])
    for found in (exact.get(text, ()), loose.get(_loose(text), ())):
        if len(found) == 1:
            return found[0]
        if found:
            named = ", ".join(f"{i} ({classes[i]!r})" for i in sorted(found))
            raise TargetError(f"ambiguous class name '{text}': it names classes {named}; use the class id "
                              "or a name that fits one class")
    if WNID.fullmatch(text.lower()):
        raise TargetError(f"'{text}' is a WordNet id, which names ImageNet-1k classes, but this model has other "
                          "classes; use a class id or one of its class names")
    raise TargetError(f"unknown class name '{name}'.{close_matches(name, classes)}")


def _loose(name: str) -> str:
    """A name with case, underscores and repeated spaces ignored ('Sports_Car' -> 'sports car')."""
    return " ".join(name.replace("_", " ").lower().split())


@cache
def _imagenet_index() -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    return _index([imagenet_classes(), imagenet_keras_names()])


def _index(spellings: Sequence[Sequence[str]]) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Class ids by exact name and by loose name, over every spelling of the classes."""
    exact: dict[str, list[int]] = defaultdict(list)
    loose: dict[str, list[int]] = defaultdict(list)
    for names in spellings:
        for index, class_name in enumerate(names):
            for table, key in ((exact, class_name.strip()), (loose, _loose(class_name))):
                if index not in table[key]:
                    table[key].append(index)
    return exact, loose


def class_names(classes: str | os.PathLike | Sequence[str] | None) -> list[str] | None:
    """Class names from 'imagenet', a text file with one name per line, or a list of names."""
    if classes is None:
        return None
    if isinstance(classes, str) and classes == "imagenet":
        return list(imagenet_classes())
    if isinstance(classes, str | os.PathLike):
        return _names_from_file(Path(classes))
    names = list(classes)
    if not all(isinstance(name, str) for name in names):
        raise ModelError(f"classes must be a list of names (str). Received: {names[:5]!r}")
    if not names:
        raise ModelError("classes is an empty list: give one name per model output, or leave classes out")
    return names


def _names_from_file(path: Path) -> list[str]:
    """The non-blank lines of a UTF-8 text file; anything else (a folder, binary data, no names) is refused."""
    if path.is_dir():
        raise ModelError(f"classes='{path}' is a folder; pass a text file with one class name per line")
    if not path.is_file():
        raise ModelError(f"classes='{path}' is neither 'imagenet' nor a text file with one class name "
                         "per line; pass one of those or a list of names")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ModelError(f"classes file '{path}' is not UTF-8 text (a binary file?); "
                         "pass a text file with one class name per line") from None
    except OSError as exc:
        raise ModelError(f"cannot read the classes file '{path}': {exc.strerror or exc}") from None
    if "\x00" in text:
        raise ModelError(f"classes file '{path}' contains NUL bytes (a binary file?); "
                         "pass a text file with one class name per line")
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ModelError(f"classes file '{path}' has no class names; put one name per line")
    return names
