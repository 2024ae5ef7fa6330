"""Torch layers by position: `layers[k]` is the k-th of the model's top-level `named_children()`;
`.output` is its output, `.input` the output of the module that computed what it was called with, found
on one probing forward pass (not always layers[k - 1]: forward code may reorder, branch or transform)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ...errors import LayerError
from ..base import pick_position


def layer_at(module: torch.nn.Module, index: int, end: str, run: Callable[[], Any]) -> str:
    """The name (as heatlens lists it) of the module whose output `layers[index].<end>` is, `end` being
    'input' or 'output'; `run()` makes one forward pass of `module` on a probe input."""
    children = list(module.named_children())
    name, child = pick_position(children, index, type(module).__name__)
    if end == "output":
        return name
    where = f"layers[{index}] ('{name}')"
    producers = _producers(module, child, run)
    if not producers:
        raise LayerError(f"{where} is not called in the forward pass of {type(module).__name__}, so it has no "
                         "input; pick another position or name a layer (see `heatlens layers`)")
    if len(set(producers)) > 1:
        raise LayerError(f"{where} is called {len(producers)} times on different inputs, so it has no one input; "
                         "name the layer whose output you mean (see `heatlens layers`)")
    found = producers[0]
    if found == "":
        raise LayerError(f"the input of {where} is the model's own input, not a layer's output; leave layer= out "
                         "to explain at the input")
    if found is None:
        raise LayerError(f"the input of {where} is computed by the model's forward code (e.g. torch.flatten), "
                         "not by a module; name a layer's output instead (see `heatlens layers`)")
    return found


def _producers(module: torch.nn.Module, child: torch.nn.Module, run: Callable[[], Any]) -> list[str | None]:
    """For each call of `child` in one pass: the name of the module whose output its first tensor argument
    is ('' for the model's input, None for a tensor no module returned). Containers are hooked after their
    contents, so a container's name wins over its last layer's, and an in-place layer's over its input's."""
    made: dict[int, str] = {}
    held: list[Any] = []  # every tensor seen stays alive, so an id names one tensor for the whole pass
    calls: list[str | None] = []

    def model_input(_mod: torch.nn.Module, args: tuple) -> None:
        held.extend(args)
        made.update({id(a): "" for a in args if isinstance(a, torch.Tensor)})

    def called(_mod: torch.nn.Module, args: tuple) -> None:
        first = next((a for a in args if isinstance(a, torch.Tensor)), None)
        calls.append(made.get(id(first)) if first is not None else None)

    def returned(name: str) -> Callable[..., None]:
        def hook(_mod: torch.nn.Module, _args: tuple, out: Any) -> None:
            if isinstance(out, torch.Tensor):
                held.append(out)
                made[id(out)] = name

        return hook

    handles = [module.register_forward_pre_hook(model_input), child.register_forward_pre_hook(called)]
    handles += [m.register_forward_hook(returned(n)) for n, m in module.named_modules() if n]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return calls
