"""`heatlens run` on the command line: the summary, the refusals, Ctrl-C, and the interruption test: a run killed
with SIGKILL mid-way and resumed equals an uninterrupted run row for row, corrupt files recorded in both."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import heatlens.cli_run
from heatlens.cli import app
from heatlens.run.shards import read_rows, shard_files

sys.path.insert(0, str(Path(__file__).parent / "run"))
from run_photos import write_corrupt, write_photos

ROOT = Path(__file__).resolve().parents[1]
SLOW = ["--model", "slow_models:slow_cnn", "--preprocess", "none", "--batch-size", "3", "--shard-size", "6"]
KILL_AFTER_SHARDS = 2
runner = CliRunner()


def test_run_prints_the_summary_and_where_the_run_is(tmp_path: Path) -> None:
    write_photos(tmp_path / "data", 5)
    write_corrupt(tmp_path / "data" / "broken")
    result = runner.invoke(app, ["run", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--model",
                                 "toy_models:tiny_cnn", "--preprocess", "none", "-q"])
    assert result.exit_code == 0, result.output
    assert "5 images explained, 3 failed (listed in errors.csv)" in result.output
    assert "images/s" in result.output and "heatlens report" in result.output
    assert read_rows(tmp_path / "out").num_rows == 5
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["settings"]["model"] == "toy_models:tiny_cnn (preprocess none)"  # only what differs from defaults


@pytest.mark.parametrize(("args", "message"), [
    (["--engine", "spark"], "--engine takes local or ray"),
    (["--address", "ray://x:10001"], "--address is the Ray cluster's: add --engine ray"),
    (["--method", "nope"], "unknown method 'nope'"),
    (["--fit", "stretch"], "--fit takes"),
])
def test_bad_options_are_refused_before_the_model_loads(tmp_path: Path, args: list[str], message: str) -> None:
    write_photos(tmp_path / "data", 1)
    result = runner.invoke(app, ["run", str(tmp_path / "data"), "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2 and message in result.output


def test_ctrl_c_keeps_the_shards_and_says_how_to_resume(tmp_path: Path, monkeypatch) -> None:
    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(heatlens.cli_run, "run", interrupted)
    write_photos(tmp_path / "data", 1)
    result = runner.invoke(app, ["run", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--model",
                                 "toy_models:tiny_cnn"])
    assert result.exit_code == 130 and "with --resume to continue" in result.output


@pytest.mark.slow
def test_a_run_killed_mid_way_and_resumed_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_photos(data, 48)
    bad = write_corrupt(data / "broken")
    cut, whole = tmp_path / "cut", tmp_path / "whole"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "run"), str(ROOT / "tests")])}
    code = "import heatlens.cli_run; from heatlens.cli import app; app()"
    process = subprocess.Popen([sys.executable, "-c", code, "run", str(data), "--out", str(cut), *SLOW, "-q"],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while len(shard_files(cut)) < KILL_AFTER_SHARDS and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode() if process.stderr else ""
    assert not json.loads((cut / "run.json").read_text())["complete"]
    finished = len(shard_files(cut))
    assert KILL_AFTER_SHARDS <= finished < 9
    resumed = runner.invoke(app, ["run", str(data), "--out", str(cut), *SLOW, "-q", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert f"{6 * finished} done before, not redone" in resumed.output
    uninterrupted = runner.invoke(app, ["run", str(data), "--out", str(whole), *SLOW, "-q"])
    assert uninterrupted.exit_code == 0, uninterrupted.output
    assert read_rows(cut).equals(read_rows(whole))
    assert read_rows(cut).num_rows == 48
    errors = (cut / "errors.csv").read_text()
    assert errors == (whole / "errors.csv").read_text()
    assert all(str(path) in errors for path in bad)
    assert json.loads((cut / "run.json").read_text())["complete"]
