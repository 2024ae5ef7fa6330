"""--engine ray against the local engine on 200 generated images: identical rows (predictions, targets, float16
maps) and errors, also after a Ray shard is lost and the run resumed; an actor pool that would take every CPU is
refused. Ray runs in a subprocess inside a network namespace this test creates (only loopback up), so its start-up
probes never leave the machine."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from run_photos import write_corrupt, write_photos
from typer.testing import CliRunner

import heatlens.cli_run  # noqa: F401 - registers `heatlens run`
from heatlens.cli import app
from heatlens.run.shards import read_rows, shard_files

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--model", "toy_models:tiny_cnn", "--preprocess", "none", "--batch-size", "8", "--shard-size", "64", "-q"]
RAY_SCRIPT = """
import sys
from pathlib import Path
from typer.testing import CliRunner
import heatlens.cli_run
from heatlens.cli import app
from heatlens.run.shards import shard_files

data, out, *options = sys.argv[1:]
first = CliRunner().invoke(app, ["run", data, "--out", out, "--engine", "ray", *options])
assert first.exit_code == 0, first.output
shard_files(Path(out))[1].unlink()
again = CliRunner().invoke(app, ["run", data, "--out", out, "--engine", "ray", "--resume", *options])
assert again.exit_code == 0, again.output
print(again.output)
crowded = CliRunner().invoke(app, ["run", data, "--out", out + "-crowded", "--engine", "ray", "--actors", "10000",
                                   *options])
assert crowded.exit_code == 2 and "CPUs in the Ray cluster and it has" in crowded.output, crowded.output
"""
needs = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None or shutil.which("unshare") is None or os.geteuid() != 0,
    reason="needs ray (extra 'scale') and root for `unshare -n`, which keeps Ray's network probes on this machine")


def assert_same_rows(found, expected) -> None:
    """Equal rows; the float columns to float16 precision (an actor's one model thread sums in another order)."""
    assert found.column_names == expected.column_names and found.num_rows == expected.num_rows == 200
    for name in found.column_names:
        if name.startswith("map_"):
            np.testing.assert_allclose(found[name].combine_chunks().to_numpy_ndarray().astype(np.float32),
                                       expected[name].combine_chunks().to_numpy_ndarray().astype(np.float32),
                                       rtol=2 ** -10, atol=2 ** -24)
        elif name.endswith("_probs"):
            np.testing.assert_allclose(found[name].to_pylist(), expected[name].to_pylist(), rtol=1e-5)
        else:
            assert found[name].equals(expected[name]), name


@needs
@pytest.mark.slow
def test_ray_and_local_engines_write_the_same_rows(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_photos(data, 200)
    write_corrupt(data / "broken")
    local, ray_out = tmp_path / "local", tmp_path / "ray"
    assert CliRunner().invoke(app, ["run", str(data), "--out", str(local), *TINY]).exit_code == 0
    ray_temp = tempfile.mkdtemp(prefix="hlray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "RAY_TMPDIR": ray_temp,
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "run"), str(ROOT / "tests")])}
    command = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', sys.executable, "-c",
               RAY_SCRIPT, str(data), str(ray_out), *TINY]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
    finally:
        shutil.rmtree(ray_temp, ignore_errors=True)
    assert process.returncode == 0, output[-3000:]
    assert "done before, not redone" in output
    assert len(shard_files(ray_out)) >= 4
    assert_same_rows(read_rows(ray_out), read_rows(local))
    assert (ray_out / "errors.csv").read_text() == (local / "errors.csv").read_text()
