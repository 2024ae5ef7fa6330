"""A small `heatlens run` output folder for the app's run tab, made once by the real pipeline on the bundled
model: two bundled photos and three generated ones, labelled so some predictions are right and some wrong, and
one file that is no image (an error row)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import heatlens
from heatlens.run import Plan, run


@dataclass(frozen=True)
class AppRun:
    """The run folder, its photos by id (the corrupt file has none) and the label given to each image."""

    out: Path
    photos: dict[int, Path]
    labels: list[int]
    predicted: list[int]
    corrupt: Path


@pytest.fixture(scope="session")
def app_run(lite0, tmp_path_factory) -> AppRun:
    pytest.importorskip("pyarrow")
    root = tmp_path_factory.mktemp("app-run")
    data = root / "data"
    data.mkdir()
    files = []
    for name in ("cat", "coffee"):
        files.append(data / f"{name}{heatlens.samples.path(name).suffix}")
        shutil.copy(heatlens.samples.path(name), files[-1])
    rng = np.random.default_rng(0)
    for i, size in enumerate([(64, 80), (72, 64), (64, 64)]):
        files.append(data / f"made{i}.png")
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(files[-1])
    corrupt = data / "broken.png"
    corrupt.write_bytes(b"this is no png")
    predicted = [int(np.argmax(lite0.predict(lite0.prepare(heatlens.load_image(f)[None]))[0])) for f in files]
    labels = [p if i % 2 == 0 else (p + 1) % 1000 for i, p in enumerate(predicted)]  # even ids right, odd wrong
    manifest = root / "labels.csv"
    manifest.write_text("path,label\n" + "".join(f"{f},{label}\n" for f, label in zip(files, labels, strict=True))
                        + f"{corrupt},3\n")
    run(lite0, manifest, root / "out", Plan(("gradcam",), metrics=("average_drop",)), batch_size=4, shard_size=2,
        progress=False)
    return AppRun(root / "out", dict(enumerate(files)), labels, predicted, corrupt)
