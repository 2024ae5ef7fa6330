"""Class names from 'imagenet', a text file or a list; anything else is one ModelError naming it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from heatlens.classes import (
    class_names,
    find_class,
    imagenet_classes,
    imagenet_keras_names,
    imagenet_wnids,
    is_imagenet,
)
from heatlens.errors import ModelError, TargetError


def test_names_from_imagenet_a_file_or_a_list(tmp_path):
    assert class_names("imagenet")[281] == "tabby"
    (tmp_path / "names.txt").write_text("ant\n\n  bee  \ncow\n", encoding="utf-8")
    assert class_names(tmp_path / "names.txt") == ["ant", "bee", "cow"]
    assert class_names(str(tmp_path / "names.txt")) == ["ant", "bee", "cow"]
    assert class_names(("x", "y")) == ["x", "y"]
    assert class_names(None) is None


@pytest.mark.parametrize(("content", "message"), [
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", "is not UTF-8 text"),
    (b"ant\x00bee\n", "contains NUL bytes"),
    (b"", "has no class names"),
    (b" \n\t\n", "has no class names"),
])
def test_files_that_hold_no_names_are_refused(tmp_path, content, message):
    path = tmp_path / "classes.txt"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=message) as caught:
        class_names(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_folders_missing_files_and_empty_lists_are_refused(tmp_path):
    with pytest.raises(ModelError, match="is a folder"):
        class_names(tmp_path)
    with pytest.raises(ModelError, match="is neither 'imagenet' nor a text file"):
        class_names(tmp_path / "missing.txt")
    with pytest.raises(ModelError, match="empty list"):
        class_names([])


def _unreadable_file(tmp_path: Path) -> Path:
    """A file that exists but cannot be read by this process (a write-only kernel file for root)."""
    if os.name == "posix" and hasattr(os, "geteuid") and os.geteuid() != 0:
        path = tmp_path / "locked.txt"
        path.write_text("ant\n")
        path.chmod(0)
        return path
    path = Path("/proc/self/clear_refs")
    if not path.is_file():
        pytest.skip("no unreadable file available here")
    return path


def test_a_file_that_cannot_be_read_is_refused(tmp_path):
    path = _unreadable_file(tmp_path)
    with pytest.raises(ModelError, match=f"cannot read the classes file '{path}': "):
        class_names(path)


# Pairs as Keras' imagenet_class_index.json (what decode_predictions prints) has them: index, WordNet id, name.
KERAS_PAIRS = [
    (0, "n01440764", "tench"), (134, "n02012849", "crane"), (243, "n02108422", "bull_mastiff"),
    (264, "n02113186", "Cardigan"), (281, "n02123045", "tabby"), (282, "n02123159", "tiger_cat"),
    (386, "n02504458", "African_elephant"), (474, "n02963159", "cardigan"), (517, "n03126707", "crane"),
    (638, "n03710637", "maillot"), (639, "n03710721", "maillot"), (817, "n04285008", "sports_car"),
    (999, "n15075141", "toilet_tissue"),
]


@pytest.mark.parametrize(("index", "wnid", "keras_name"), KERAS_PAIRS)
def test_wordnet_ids_and_keras_names_are_in_class_order(index, wnid, keras_name):
    assert imagenet_wnids()[index] == wnid
    assert imagenet_keras_names()[index] == keras_name
    assert len(set(imagenet_wnids())) == 1000 and list(imagenet_wnids()) == sorted(imagenet_wnids())


@pytest.mark.parametrize(("name", "index"), [
    ("sports_car", 817), ("SPORTS_CAR", 817), ("Sports Car", 817), ("bull_mastiff", 243),
    ("african_elephant", 386), ("tiger_cat", 282), ("n02123159", 282), ("N02123159", 282),
    ("toilet_tissue", 999), ("crane bird", 134), ("maillot tank suit", 639), ("Cardigan", 264), ("cardigan", 474),
])
def test_imagenet_names_in_keras_spelling_and_wordnet_ids(name, index):
    assert find_class(name, imagenet_classes()) == index


@pytest.mark.parametrize(("name", "ids"), [("crane", "134 ('crane bird'), 517 ('crane')"),
                                           ("maillot", "638 ('maillot'), 639 ('maillot tank suit')"),
                                           ("CARDIGAN", "264 ('Cardigan'), 474 ('cardigan')")])
def test_names_of_two_classes_are_refused_not_guessed(name, ids):
    with pytest.raises(TargetError, match="ambiguous class name") as caught:
        find_class(name, imagenet_classes())
    assert ids in str(caught.value)


def test_matching_stays_strict():
    with pytest.raises(TargetError, match=r"unknown class name 'sportscar'.*'sports car'"):
        find_class("sportscar", imagenet_classes())
    with pytest.raises(TargetError, match="no ImageNet-1k WordNet id"):
        find_class("n99999999", imagenet_classes())
    with pytest.raises(TargetError, match="is a WordNet id, which names ImageNet-1k classes"):
        find_class("n02123159", ["cat", "dog"])
    assert find_class("Big_Dog", ["cat", "big dog"]) == 1
    with pytest.raises(TargetError, match="ambiguous class name 'cat'"):
        find_class("cat", ["cat", "dog", "cat"])
    assert not is_imagenet(["cat"]) and not is_imagenet(list(imagenet_classes())[::-1])
    assert is_imagenet(list(imagenet_classes()))


def test_every_name_id_and_keras_spelling_finds_its_class_but_the_two_class_names():
    classes = imagenet_classes()
    two_classes = {"crane", "maillot"}  # Keras names 134 and 517 'crane', 638 and 639 'maillot'
    for index, (name, wnid, keras_name) in enumerate(zip(classes, imagenet_wnids(), imagenet_keras_names(),
                                                        strict=True)):
        assert find_class(wnid, classes) == index
        for spelling in {name, keras_name} - two_classes:
            assert find_class(spelling, classes) == index, spelling
