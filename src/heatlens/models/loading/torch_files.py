"""Torch models from files and import paths: 'package.module:factory', torch.export programs (.pt2) and
TorchScript files, placed on the device asked for. Model files are programs, so they load only when the
caller trusts them; whole pickled modules and bare weight files are never loaded."""

from __future__ import annotations

import inspect
from pathlib import Path

import torch

from ...errors import HeatlensError, ModelError, first_line
from ...user_imports import current_folder_on_path, import_user_object
from .pt2_archive import hidden_code

MODEL_FILE_SUFFIXES = {".pt2", ".pt", ".ts", ".jit"}
WEIGHT_SUFFIXES = {".pth", ".safetensors", ".bin", ".ckpt", ".npz", ".npy"}
SUPPORTED = ("a zoo name (`heatlens models`), keras:NAME, a .keras or .h5 file, a torch.export .pt2 file, a "
             "TorchScript file (.pt, .ts, .jit) or 'package.module:factory'")
SAFE_ALTERNATIVE = ("a state_dict saved as .safetensors, or as .pth read with torch.load(weights_only=True), "
                    "loaded into your network by a factory 'package.module:factory'")


def load_torch(spec: str, device: str = "cpu", trust: bool | str = False) -> torch.nn.Module:
    """A user model: 'package.module:factory' (a callable returning a module, called with no arguments),
    a torch.export program (.pt2, unflattened so its layers can be hooked) or a TorchScript file
    (predictions only). Files load only with trust=True; trust='pickle' also admits
    a .pt2 with pickles or other code beside its graph."""
    path = Path(spec)
    unknown = bool(path.suffix) and path.suffix not in MODEL_FILE_SUFFIXES | WEIGHT_SUFFIXES and ":" not in spec
    if unknown and not (trust and path.is_file()):
        raise _unsupported(path)
    if path.suffix in MODEL_FILE_SUFFIXES | WEIGHT_SUFFIXES or path.is_file():
        if not path.is_file():
            raise ModelError(f"no model file at '{spec}'")
        return place(_load_file(path, trust, unknown), device)
    if ":" not in spec:
        raise ModelError(f"unknown model '{spec}': expected {SUPPORTED}")
    if trust:
        raise ModelError(f"trust= is for .pt2 and TorchScript files; '{spec}' is your own Python code, so drop it")
    return place(_build(spec), device)


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
    onnx = " (for ONNX: onnxruntime's session.run in it, with layout='NCHW')" if path.suffix == ".onnx" else ""
    return ModelError(f"heatlens cannot load '{path.name}': {path.suffix} is not a model format it reads; give "
                      f"{SUPPORTED}, or wrap your own predict(images) -> scores function with heatlens.wrap{onnx}")


def _load_file(path: Path, trust: bool | str, unknown: bool = False) -> torch.nn.Module:
    """A trusted model file; `unknown`: its extension is none of heatlens' (tried as TorchScript)."""
    if path.suffix in WEIGHT_SUFFIXES:
        raise ModelError(f"'{path}' holds weights, not a network: load them into your network in a factory "
                         "'package.module:factory' (torch.load(path, weights_only=True) or "
                         "safetensors.torch.load_file) and pass the factory as the model")
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
