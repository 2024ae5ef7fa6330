"""Every Python block of README.md runs as pasted, offline, each in a fresh interpreter of its own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = [textwrap.dedent(code) for code in re.findall(r"^ *```python\n(.*?)^ *```", README.read_text(),
                                                          flags=re.MULTILINE | re.DOTALL)]
NEEDS = {"onnxruntime": "onnxruntime", "keras": "keras", "torch": "torch"}


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_a_readme_block_runs_as_pasted(code, tmp_path):
    for module in sorted(m for m in NEEDS if re.search(rf"^import {m}\b", code, re.MULTILINE)):
        pytest.importorskip(module)
    env = {**os.environ, "HEATLENS_NO_NETWORK": "1", "KERAS_HOME": str(tmp_path / "keras-home")}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, f"README block failed:\n{code}\n--- stderr ---\n{done.stderr[-3000:]}"
