"""Which files a command-line run explains, and output names that no two inputs share."""

from __future__ import annotations

import os

import pytest

from heatlens.errors import ImageError
from heatlens.image_files import find_images, unique_names


def test_repeated_names_get_the_next_free_number():
    assert unique_names(["a.jpg", "a.jpg", "a-2.jpg", "a.jpg"]) == ["a.jpg", "a-3.jpg", "a-2.jpg", "a-4.jpg"]
    assert unique_names(["cat", "cat", "x/a.jpg", "x/a.jpg"]) == ["cat", "cat-2", "x/a.jpg", "x/a-2.jpg"]


def test_names_differing_only_in_case_are_told_apart_for_case_insensitive_disks():
    names = unique_names(["A.jpg", "a.jpg", "a-2.JPG"])
    assert names == ["A.jpg", "a-3.jpg", "a-2.JPG"]
    assert len({name.casefold() for name in names}) == 3


def test_folders_list_images_only_and_recurse_on_request(tmp_path):
    for name in ["b.png", "a.JPG", "._a.JPG", ".hidden.png", "notes.txt", "sub/c.webp", ".git/d.png"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    flat = find_images([tmp_path])
    assert [name for name, _ in flat.files] == ["a.JPG", "b.png"]
    assert flat.skipped_folders == {tmp_path: 1}
    deep = find_images([tmp_path], recursive=True)
    assert [(name, path) for name, path in deep.files][-1] == ("sub/c.webp", tmp_path / "sub" / "c.webp")
    assert len(deep.files) == 3 and not deep.skipped_folders
    assert find_images([tmp_path / "b.png"]).files == [("b.png", tmp_path / "b.png")]


def test_a_link_back_up_the_tree_is_entered_once(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.png").write_bytes(b"")
    try:
        os.symlink(tmp_path, tmp_path / "sub" / "loop")
    except OSError:
        pytest.skip("no symbolic links here")
    assert [name for name, _ in find_images([tmp_path], recursive=True).files] == ["sub/x.png"]


def test_missing_paths_and_folders_without_images_are_refused(tmp_path):
    with pytest.raises(ImageError, match="no image file at"):
        find_images([tmp_path / "missing.png"])
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.png").write_bytes(b"")
    with pytest.raises(ImageError, match=r"no image files .* in the folder .*1 sub-folder\(s\): add --recursive"):
        find_images([tmp_path])
