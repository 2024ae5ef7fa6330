"""`heatlens app`: serve the browser app (heatlens.app, on Gradio) for one model, on localhost by default."""

from __future__ import annotations

import importlib.util
import ipaddress
from pathlib import Path
from typing import Annotated

import typer

from .cli import (
    ClassesOption,
    DeviceOption,
    FrameworkOption,
    ModelOption,
    PreprocessOption,
    TrustOption,
    WeightsOption,
    _network,
    _user_errors,
    _warn,
    out_console,
)
from .errors import HeatlensError
from .models import DEFAULT_MODEL


@_user_errors
def app_command(
    model: ModelOption = DEFAULT_MODEL,
    host: Annotated[str, typer.Option(help="Address to listen on; 127.0.0.1 keeps the app on this machine")] =
        "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on")] = 7860,
    preprocess: PreprocessOption = "auto",
    classes: ClassesOption = None,
    device: DeviceOption = "cpu",
    weights: WeightsOption = None,
    framework: FrameworkOption = None,
    trust_model_file: TrustOption = 0,
    run: Annotated[Path | None, typer.Option(
        "--run", help="A `heatlens run` output folder (its --out) to open in the app's 'Open a run' tab")] = None,
) -> None:
    """Open the browser app: upload a photo, see its top classes, compare methods' maps, score and download them;
    with --run, browse a `heatlens run` output folder. Runs offline (no analytics, never a share link); stop it
    with Ctrl+C."""
    if importlib.util.find_spec("gradio") is None:
        raise HeatlensError("the app needs Gradio, which is not installed: pip install 'heatlens[app]'")
    if run is not None:
        from .app.runs import check_run

        run = check_run(run)  # a folder that is not a whole run is refused before the model loads
    network = _network(model, preprocess, classes, device=device, weights=weights, framework=framework,
                       trust=trust_model_file)
    if not _loopback(host):
        _warn(f"--host {host} lets other machines reach the app, which has no login; use 127.0.0.1 to keep it here")
    from .app import serve

    blocks = serve(network, host, port, block=False, run_folder=run)
    opened = f" with the run in {run}" if run is not None else ""
    out_console.print(f"heatlens app for {network.name}{opened}: http://{_shown_host(host)}:{port}/ (Ctrl+C stops "
                      "it)", highlight=False)
    blocks.block_thread()


def _loopback(host: str) -> bool:
    """Whether `host` is this machine only (localhost, 127.x, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _shown_host(host: str) -> str:
    """The address to open in a browser: 0.0.0.0 / :: listen everywhere, and this machine is one of them."""
    return "127.0.0.1" if host in ("0.0.0.0", "::") else host
