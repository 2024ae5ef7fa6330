"""The examples run offline, as written, and write what they say."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("keras")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize(("script", "expect"), [("keras_xception_gradcam.py", "tiger cat"),
                                                ("keras_vgg16_top3.py", "espresso")])
def test_example_runs_offline(tmp_path, script, expect):
    out = subprocess.run([sys.executable, str(EXAMPLES / script), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert expect in out.stdout
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert all((tmp_path / "o" / t["overlay"]).is_file() for t in manifest["images"][0]["targets"])
