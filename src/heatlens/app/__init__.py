"""heatlens app: explain a classifier's predictions in the browser (Gradio, the `app` extra), offline.

Importing this package turns Gradio's analytics and the Hugging Face hub's network calls off before Gradio is
imported; Gradio itself is imported only when the app is built (`build`, `serve`), never by `import heatlens`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

OFFLINE_ENVIRONMENT = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
os.environ.update(OFFLINE_ENVIRONMENT)

if TYPE_CHECKING:
    from ..models import Network


def build(network: Network, run_folder: str | Path | None = None) -> Any:
    """The app's gr.Blocks for a model, with a `heatlens run` output folder open if given (see
    heatlens.app.ui.build)."""
    from .ui import build as build_blocks

    return build_blocks(network, run_folder)


def serve(network: Network, host: str = "127.0.0.1", port: int = 7860, block: bool = True,
          run_folder: str | Path | None = None) -> Any:
    """Serve the app on host:port (localhost by default; never a share link), with `run_folder` open if given;
    see heatlens.app.ui.serve."""
    from .ui import serve as serve_blocks

    return serve_blocks(network, host, port, block, run_folder)


__all__ = ["OFFLINE_ENVIRONMENT", "build", "serve"]
