"""Which image files a command-line run explains, and a name for each that no other input shares."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .errors import ImageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})


@dataclass
class FoundImages:
    """(name, path) per image file, in a fixed order, and per folder how many sub-folders were left out."""

    files: list[tuple[str, Path]] = field(default_factory=list)
    skipped_folders: dict[Path, int] = field(default_factory=dict)


def find_images(paths: Sequence[Path], recursive: bool = False) -> FoundImages:
    """The given files (named by their file name) and the image files inside the given folders (named by
    their path relative to that folder, so `x/a.jpg` and `y/a.jpg` differ). Hidden files and folders
    (`.*`, which includes macOS `._*` AppleDouble files) and other extensions are left out; sub-folders
    only with `recursive`. Missing paths and folders without images are refused before any work starts."""
    found = FoundImages()
    for path in paths:
        if path.is_dir():
            files, skipped = _folder_images(path, recursive)
            if not files:
                hint = f"; it has {skipped} sub-folder(s): add --recursive to look inside" if skipped else ""
                raise ImageError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in the folder '{path}'"
                                 f"{hint}")
            found.files += files
            if skipped:
                found.skipped_folders[path] = skipped
        elif path.is_file():
            found.files.append((path.name, path))
        else:
            raise ImageError(f"no image file at '{path}': check the path")
    return found


def unique_names(names: Sequence[str]) -> list[str]:
    """The names with repeats made unique ('a.jpg' again becomes 'a-2.jpg', or '-3' where 'a-2.jpg' is
    taken by another input). Compared case-insensitively, as output files land on file systems that are."""
    taken = {name.casefold() for name in names}
    used: set[str] = set()
    result = []
    for name in names:
        if name.casefold() in used:
            path = PurePosixPath(name)
            number = 2
            while (candidate := str(path.with_name(f"{path.stem}-{number}{path.suffix}"))).casefold() in taken:
                number += 1
            taken.add(candidate.casefold())
            name = candidate
        used.add(name.casefold())
        result.append(name)
    return result


def _folder_images(root: Path, recursive: bool) -> tuple[list[tuple[str, Path]], int]:
    """Image files under one folder with their relative names, and the number of sub-folders not entered."""
    files: list[tuple[str, Path]] = []
    skipped = 0
    visited: set[str] = set()
    try:
        for folder, subfolders, names in os.walk(root, followlinks=True, onerror=_raise):
            visited.add(os.path.realpath(folder))
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            if not recursive:
                skipped += len(subfolders)
                subfolders.clear()
            else:  # a link back up the tree would loop forever
                subfolders[:] = [d for d in subfolders if os.path.realpath(Path(folder, d)) not in visited]
            for name in sorted(names):
                path = Path(folder, name)
                if not name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                    files.append((path.relative_to(root).as_posix(), path))
    except OSError as exc:
        raise ImageError(f"cannot read the folder '{exc.filename or root}': {exc.strerror or exc}") from None
    return files, skipped


def _raise(error: OSError) -> None:
    raise error
