"""Torch models from files and import paths: 'package.module:factory' (with weights from a state dict file if
asked), torch.export programs (.pt2) and TorchScript files, placed on the device asked for. Model files are
programs, so they load only when the caller trusts them; whole pickled modules are never loaded."""

from __future__ import annotations

import inspect
from pathlib import Path

import torch

from ...errors import HeatlensError, ModelError, first_line
from ...user_imports import current_folder_on_path, import_user_object
from .pt2_archive import hidden_code
from .state_dicts import load_weights, read_weights

MODEL_FILE_SUFFIXES = {".pt2", ".pt", ".ts", ".jit"}
WEIGHT_SUFFIXES = {".pth", ".safetensors", ".bin", ".ckpt", ".npz", ".npy"}
SUPPORTED = ("a zoo name (`heatlens models`), keras:NAME, torchvision:NAME, timm:NAME, hf:FOLDER, an .onnx file, a "
             ".keras or .h5 file, a torch.export .pt2 file, a TorchScript file (.pt, .ts, .jit) or "
             "'package.module:factory'")
SAFE_ALTERNATIVE = ("a state_dict saved as .safetensors, or as .pth read with torch.load(weights_only=True), "
                    "loaded into your network by a factory 'package.module:factory'")


def load_torch(spec: str, device: str = "cpu", trust: bool | str = False,
               weights: str | None = None) -> torch.nn.Module:
    """A user model: 'package.module:factory' (a callable returning a module, called with no arguments; its
    state dict then read from `weights`, a .safetensors or torch.save file, if given), a torch.export program
    (.pt2, unflattened so its layers can be hooked) or a TorchScript file (predictions only). Files load only
    with trust=True; trust='pickle' also admits a .pt2 with pickles or other code beside its graph."""
    path = Path(spec)
    unknown = bool(path.suffix) and path.suffix not in MODEL_FILE_SUFFIXES | WEIGHT_SUFFIXES and ":" not in spec
    if unknown and not (trust and path.is_file()):
        raise _unsupported(path)
    if path.suffix in MODEL_FILE_SUFFIXES | WEIGHT_SUFFIXES or path.is_file():
        if not path.is_file():
            raise ModelError(f"no model file at '{spec}'")
        if weights is not None:
            raise ModelError(f"weights= is for keras:, torchvision:, timm: and factory models; '{path.name}' "
                             "holds its own weights, so drop it")
        return place(_load_file(path, trust, unknown), device)
    if ":" not in spec:
        raise ModelError(f"unknown model '{spec}': expected {SUPPORTED}")
    if trust:
        raise ModelError(f"trust= is for .pt2 and TorchScript files; '{spec}' is your own Python code, so drop it")
    module = _build(spec)
    if weights is not None:
        load_weights(module, read_weights(weights), weights, spec)
    return place(module, device)


def place(model: torch.nn.Module, device: str) -> torch.nn.Module:
    """The model moved to `device`, or a clear ModelError when that device does not exist here."""
    try:
        return model.to(torch.device(device))
    except (RuntimeError, AssertionError) as exc:
        raise ModelError(f"cannot place the model on device '{device}': {first_line(exc)}") from None


def _build(spec: str) -> torch.nn.Module:
    """The module a factory spec names (its module importable, or a .py file in the current folder): the
    object itself, or what calling it with no arguments returns."""
    factory = import_user_object(spec)
    if callable(factory) and not isinstance(factory, torch.nn.Module):
        try:
            inspect.signature(factory).bind()
        except TypeError as exc:
            raise ModelError(f"the factory '{spec}' must be callable with no arguments ({exc}); "
                             "wrap it in a function that passes them") from None
        except ValueError:
            pass  # no signature to read (a builtin): calling it tells
        try:
            with current_folder_on_path():  # a factory may import its own helpers from the same folder
                factory = factory()
        except HeatlensError:
            raise
        except Exception as exc:
            raise ModelError(f"calling the factory '{spec}' failed: {type(exc).__name__}: {first_line(exc)}") from None
    if not isinstance(factory, torch.nn.Module):
        raise ModelError(f"'{spec}' returned {type(factory).__name__}, not a torch.nn.Module")
    return factory


def _unsupported(path: Path) -> ModelError:
    """The error for a file whose extension is no model format heatlens reads (.onnx, .tflite, .pb, ...)."""
    return ModelError(f"heatlens cannot load '{path.name}': {path.suffix} is not a model format it reads; give "
                      f"{SUPPORTED}, or wrap your own predict(images) -> scores function with heatlens.wrap")


def _load_file(path: Path, trust: bool | str, unknown: bool = False) -> torch.nn.Module:
    """A trusted model file; `unknown`: its extension is none of heatlens' (tried as TorchScript)."""
    if path.suffix in WEIGHT_SUFFIXES:
        raise ModelError(f"'{path}' holds weights, not a network: name the network and pass the file as weights=, "
                         "e.g. load_model('torchvision:resnet50', weights=PATH) or your own factory "
                         "'package.module:factory' (CLI: --model NAME --weights PATH)")
    kind = "is a torch.export program" if path.suffix == ".pt2" else "would load as TorchScript"
    if not trust:
        raise ModelError(f"'{path}' {kind}, a format that can run code when it is loaded, so heatlens loads it "
                         "only if you trust the file: pass trust=True (CLI: --trust-model-file). "
                         f"Safe alternative: {SAFE_ALTERNATIVE}")
    if path.suffix == ".pt2":
        return _load_program(path, scan=trust != "pickle")
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        if unknown:
            raise _unsupported(path) from None
        raise ModelError(
            f"'{path}' is not a TorchScript file ({first_line(exc)}); heatlens never unpickles whole modules: "
            "point the model at a factory 'package.module:factory' that builds it and loads its state_dict"
        ) from None


def _load_program(path: Path, scan: bool) -> torch.nn.Module:
    """A torch.export program, unflattened; first checked for code beside its graph unless trusted too."""
    if scan:
        try:
            reason = hidden_code(path)
        except ValueError as exc:
            raise ModelError(f"'{path}' is not a torch.export program: {exc}") from None
        if reason is not None:
            raise ModelError(f"'{path}' holds code that runs when torch loads it, beyond what trust=True admits: "
                             f"{reason}. heatlens loads it only if asked twice: trust='pickle' "
                             "(CLI: --trust-model-file --trust-model-file)")
    try:
        return torch.export.unflatten(torch.export.load(str(path)))
    except Exception as exc:
        raise ModelError(f"'{path}' is not a torch.export program: {first_line(exc)}") from None
