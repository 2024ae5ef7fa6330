"""Model-parameter randomisation for torch modules, on a deep copy: the sanity checks' primitive.

Each chosen module is re-initialised by its own `reset_parameters()` after `torch.manual_seed(seed + 1)`, as
Quantus' MPRT does (so the same seed gives the same random weights), inside `torch.random.fork_rng` so the
caller's global random state is left as it was.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from ...errors import ModelError, first_line
from ..base import check_parameter_layers

if TYPE_CHECKING:
    from .torch import TorchNetwork


def parameter_layers(network: TorchNetwork, input_shape: tuple[int, ...] | None = None) -> list[str]:
    """The modules with a `reset_parameters()` that the forward pass runs, in execution order."""
    resettable = set(_resettable(network.module))
    return [info.name for info in network.layers(input_shape) if info.name in resettable]


def randomised(network: TorchNetwork, layers: Sequence[str], seed: int = 0) -> TorchNetwork:
    """A TorchNetwork over a deep copy of the module where each of `layers` is re-initialised (seeded)."""
    layers = check_parameter_layers(network.name, layers, _resettable(network.module))
    try:
        module = copy.deepcopy(network.module)
    except Exception as exc:
        raise ModelError(f"{network.name} cannot be copied to randomise its weights: {type(exc).__name__}: "
                         f"{first_line(exc)}") from exc
    modules = dict(module.named_modules())
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        for name in layers:
            torch.manual_seed(seed + 1)
            modules[name].reset_parameters()
    view = copy.copy(network)
    view.module = module
    view._layers = dict(network._layers)
    view._rests = {}
    return view


def _resettable(module: torch.nn.Module) -> list[str]:
    """The named submodules that can re-initialise themselves (`reset_parameters()`)."""
    return [name for name, sub in module.named_modules() if name and callable(getattr(sub, "reset_parameters", None))]
