"""What loading a named architecture gives: the framework model with its own preprocessing, classes and notes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import ModelError

RANDOM = "random"  # weights='random': an untrained network, for demos and tests
RANDOM_NOTE = "random weights (weights='random'): the maps show an untrained network, nothing it learned"


@dataclass
class Loaded:
    """A model built from a name and local files, and what its library says about its inputs and outputs."""

    model: Any
    preprocess: Callable[[np.ndarray], np.ndarray] | None
    classes: list[str] | None
    notes: list[str] = field(default_factory=list)


def weights_needed(label: str, hint: str = "") -> ModelError:
    """The error for a named architecture loaded without weights=."""
    return ModelError(f"{label} needs its weights from a file, as heatlens never downloads: pass weights=PATH (CLI: "
                      f"--weights PATH), a state dict as .safetensors or .pth{hint}, or weights='random' for an "
                      "untrained network")
