"""`heatlens app`: it serves the page on 127.0.0.1 by default, warns when asked to listen beyond this machine, and
says how to install Gradio where it is missing."""

from __future__ import annotations

import importlib.util
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

    def serve(network, host, port, block):
        calls.append((network.name, host, port, block))
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
