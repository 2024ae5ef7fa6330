"""`heatlens app`: it serves the page on 127.0.0.1 by default, warns when asked to listen beyond this machine, and
says how to install Gradio where it is missing."""

from __future__ import annotations

import importlib.util
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from typer.testing import CliRunner

import heatlens.app
import heatlens.cli  # before heatlens.cli_app, which it registers at its end
from heatlens.cli import app

pytest.importorskip("gradio")


class FakeBlocks:
    def block_thread(self) -> None:
        """Return at once: the test is not a person who presses Ctrl+C."""


@pytest.fixture
def served(monkeypatch) -> list[tuple]:
    calls = []

    def serve(network, host, port, block, run_folder=None):
        calls.append((network.name, host, port, block) + ((run_folder,) if run_folder is not None else ()))
        return FakeBlocks()

    monkeypatch.setattr(heatlens.app, "serve", serve)
    return calls


def test_the_app_listens_on_localhost_by_default_and_says_where(served):
    result = CliRunner().invoke(app, ["app", "--port", "7999"])
    assert result.exit_code == 0, result.output
    assert served == [("efficientnet_lite0", "127.0.0.1", 7999, False)]
    assert "http://127.0.0.1:7999/" in result.stdout and "warning" not in result.output


def test_listening_beyond_this_machine_is_warned_about(served):
    result = CliRunner().invoke(app, ["app", "--host", "0.0.0.0"])
    assert result.exit_code == 0, result.output
    assert "--host 0.0.0.0 lets other machines reach the app" in result.stderr
    assert "http://127.0.0.1:7860/" in result.stdout


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                                ("127.0.0.2", True), ("0.0.0.0", False), ("192.168.1.5", False),
                                                ("example.org", False)])
def test_which_hosts_stay_on_this_machine(host, loopback):
    assert heatlens.cli_app._loopback(host) is loopback


def test_a_run_folder_is_opened_once_it_is_a_whole_run(served, app_run):
    result = CliRunner().invoke(app, ["app", "--run", str(app_run.out)])
    assert result.exit_code == 0, result.output
    assert served == [("efficientnet_lite0", "127.0.0.1", 7860, False, app_run.out)]
    assert f"heatlens app for efficientnet_lite0 with the run in {app_run.out}: http://127.0.0.1:7860/" in \
        " ".join(result.stdout.split())


def test_run_folders_that_are_no_whole_run_are_refused_before_the_model_loads(served, tmp_path, monkeypatch,
                                                                                app_run):
    monkeypatch.setattr(heatlens.cli_app, "_network", lambda *a, **k: pytest.fail("the model was loaded"))
    broken = tmp_path / "broken"
    shutil.copytree(app_run.out, broken)
    first = json.loads((broken / "run.json").read_text())["shards"][0]
    (broken / "shards" / first).unlink()
    for folder, message in [(tmp_path / "nowhere", f"there is no folder '{tmp_path / 'nowhere'}'"),
                            (tmp_path, f"'{tmp_path}' holds no heatlens run (no run.json and shards/)"),
                            (broken, f"the run in '{broken}' lacks 1 of its")]:
        result = CliRunner().invoke(app, ["app", "--run", str(folder)])
        assert result.exit_code == 2, result.output
        line = " ".join(result.stderr.split())
        assert line.startswith(f"error: {message}"), line
        assert "Traceback" not in result.output
    assert served == []


def test_without_gradio_the_command_says_how_to_install_it(monkeypatch, served):
    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *rest: None if name == "gradio" else
                        found(name, *rest))
    result = CliRunner().invoke(app, ["app"])
    assert result.exit_code == 2
    assert "error: the app needs Gradio, which is not installed: pip install 'heatlens[app]'" in result.stderr
    assert served == []


def test_the_command_serves_the_page_until_interrupted():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", "from heatlens.cli import app; app()", "app", "--port",
                               str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = server.stdout.readline()  # printed once the page is served
        assert f"http://127.0.0.1:{port}/" in line, line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as page:
            assert page.status == 200 and "heatlens" in page.read().decode()
        server.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        while server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.poll() is not None, "Ctrl+C did not stop the app"
    finally:
        if server.poll() is None:
            server.kill()
        server.wait()
