"""Torch models from files and import paths: 'package.module:factory', torch.export programs (.pt2) and
TorchScript files, placed on the device asked for. Whole pickled modules are never loaded."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ModelError, first_line
from ..imports import import_object


def load_torch(spec: str, device: str = "cpu") -> torch.nn.Module:
    """A user model: 'package.module:factory' (a callable returning a module), a torch.export program
    (.pt2, unflattened so its layers can be hooked) or a TorchScript file (predictions only)."""
    path = Path(spec)
    if path.suffix in {".pt2", ".pt", ".pth", ".ts", ".jit"} or path.is_file():
        if not path.is_file():
            raise ModelError(f"no model file at '{spec}'")
        return place(_load_file(path), device)
    if ":" not in spec:
        raise ModelError(
            f"unknown model '{spec}': expected a zoo name (see `heatlens models`), "
            "'package.module:factory', a torch.export .pt2 file or a TorchScript file"
        )
    factory = import_object(spec)
    model = factory() if callable(factory) and not isinstance(factory, torch.nn.Module) else factory
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"'{spec}' returned {type(model).__name__}, not a torch.nn.Module")
    return place(model, device)


def place(model: torch.nn.Module, device: str) -> torch.nn.Module:
    """The model moved to `device`, or a clear ModelError when that device does not exist here."""
    try:
        return model.to(torch.device(device))
    except (RuntimeError, AssertionError) as exc:
        raise ModelError(f"cannot place the model on device '{device}': {first_line(exc)}") from None


def _load_file(path: Path) -> torch.nn.Module:
    if path.suffix == ".pt2":
        try:
            return torch.export.unflatten(torch.export.load(str(path)))
        except Exception as exc:
            raise ModelError(f"'{path}' is not a torch.export program: {first_line(exc)}") from None
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except RuntimeError as exc:
        raise ModelError(
            f"'{path}' is not a TorchScript file ({first_line(exc)}); save models with torch.export.save (.pt2) "
            "or torch.jit.save; heatlens never unpickles whole modules"
        ) from None
