"""A 12 MP phone photo through the CLI: small outputs (maps on the model's grid, overlays capped), bounded
memory, and full-size maps on request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import heatlens

SIZE = (4032, 3024)


@pytest.fixture(scope="module")
def phone_photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("phone") / "IMG_0001.jpg"
    Image.fromarray(heatlens.samples.load("cat")).resize(SIZE, Image.Resampling.BICUBIC).save(path, quality=90)
    return path


MEASURED = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(done.returncode)")


def _run(*args: str) -> subprocess.CompletedProcess:
    """The console script as a user runs it, under a fresh parent whose only child it is, which prints the
    child's peak resident memory (KiB) as the last line of stderr."""
    heatlens_cli = Path(sys.executable).with_name("heatlens")
    return subprocess.run([sys.executable, "-c", MEASURED, str(heatlens_cli), *args], capture_output=True, text=True,
                          timeout=600)


def test_a_phone_photo_writes_under_20_mb_and_peaks_under_1_5_gb(phone_photo, tmp_path):
    done = _run("explain", str(phone_photo), "--target", "top3", "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-2000:]
    peak_mb = int(done.stderr.strip().splitlines()[-1]) / 1024
    written = sum(p.stat().st_size for p in (tmp_path / "out").rglob("*") if p.is_file()) / 2**20
    assert written < 20 and peak_mb < 1536, (written, peak_mb)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["maps"] == {"grid": "model", "dtype": "float32"}
    target = manifest["images"][0]["targets"][0]
    grid = np.load(tmp_path / "out" / target["map"])
    assert grid.dtype == np.float32 and grid.shape == (7, 7)  # float32: raw maps can be tiny (1e-6) numbers
    assert max(Image.open(tmp_path / "out" / target["overlay"]).size) == 1600


def test_full_size_maps_and_an_uncapped_overlay_on_request(phone_photo, tmp_path):
    done = _run("explain", str(phone_photo), "--full-size-maps", "--max-size", "0", "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr[-2000:]
    target = json.loads((tmp_path / "out" / "manifest.json").read_text())["images"][0]["targets"][0]
    full = np.load(tmp_path / "out" / target["map"], mmap_mode="r")
    assert full.dtype == np.float32 and full.shape == SIZE[::-1]
    assert Image.open(tmp_path / "out" / target["overlay"]).size == SIZE
