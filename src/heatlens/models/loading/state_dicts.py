"""Weights files into a network built by code: a state dict saved as .safetensors, or with torch.save (read with
torch.load(weights_only=True), so no code from the file runs), checked key by key against the network."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from ...errors import ModelError, first_line

NESTED_KEYS = ("state_dict", "model_state_dict", "model")  # where training checkpoints keep the weights
WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DataParallel and torch.compile put these before every key
SAVE_HINT = "save model.state_dict() with safetensors.torch.save_file, or with torch.save"


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The named tensors of a weights file: a .safetensors file, or a torch.save file of a state dict (also
    one inside a training checkpoint, under 'state_dict' or 'model'), on the CPU."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ModelError(f"no weights file at '{path}'")
    state = _safetensors(file) if file.suffix == ".safetensors" else _torch_save(file)
    return _unwrapped(state, file)


def _safetensors(file: Path) -> Mapping[str, object]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(file), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"'{file}' is not a safetensors file: {first_line(exc)}") from None


def _torch_save(file: Path) -> object:
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = first_line(exc).removeprefix("Weights only load failed. ")
        raise ModelError(f"'{file}' holds Python objects beyond tensors, so heatlens does not unpickle it (it could "
                         f"run code): {refused[:160]}. Load it yourself if you trust it and {SAVE_HINT}") from None
    except Exception as exc:  # torch's own reading of a damaged or foreign file
        raise ModelError(f"'{file}' is not a weights file torch.load reads: {first_line(exc)}") from None


def _unwrapped(state: object, file: Path) -> dict[str, torch.Tensor]:
    """The flat dict of tensors in a loaded file, from a training checkpoint's nesting and wrapper prefixes."""
    if isinstance(state, Mapping) and not _all_tensors(state):
        state = next((state[key] for key in NESTED_KEYS if isinstance(state.get(key), Mapping)), state)
    if not isinstance(state, Mapping) or not state or not _all_tensors(state):
        what = type(state).__name__ if not isinstance(state, Mapping) else "a dict with values other than tensors"
        raise ModelError(f"'{file}' holds {what}, not a state dict of named tensors: {SAVE_HINT}")
    flat = dict(state)
    for prefix in WRAPPER_PREFIXES:
        if all(key.startswith(prefix) for key in flat):
            flat = {key.removeprefix(prefix): value for key, value in flat.items()}
    return flat


def _all_tensors(state: Mapping[object, object]) -> bool:
    return all(isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items())


def mismatch(module: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> str | None:
    """Why `state` does not fit `module` (the first missing, unexpected and wrongly shaped keys), or None."""
    expected = module.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    wrong = [key for key in expected if key in state and tuple(state[key].shape) != tuple(expected[key].shape)]
    reasons = []
    if missing:
        reasons.append(f"{_count(missing, 'key')} of the network missing from the file (first: '{missing[0]}')")
    if unexpected:
        reasons.append(f"{_count(unexpected, 'key')} in the file not in the network (first: '{unexpected[0]}')")
    if wrong:
        key = wrong[0]
        reasons.append(f"{_count(wrong, 'tensor')} of another shape (first: '{key}' is "
                       f"{tuple(state[key].shape)} in the file, {tuple(expected[key].shape)} in the network)")
    return "; ".join(reasons) or None


def classifier_classes(module: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> int | None:
    """The class count of a fine-tuned classifier: when the only difference is the network's last tensors
    having another first dimension in the file (the output layer), that dimension; else None."""
    expected = module.state_dict()
    if set(expected) != set(state):
        return None
    wrong = [key for key in expected if tuple(state[key].shape) != tuple(expected[key].shape)]
    last = [key for key in expected if key.rsplit(".", 1)[-1] in ("weight", "bias")][-len(wrong):] if wrong else []
    sizes = {int(state[key].shape[0]) for key in wrong if state[key].ndim >= 1}
    same_rest = all(tuple(state[key].shape[1:]) == tuple(expected[key].shape[1:]) for key in wrong)
    return sizes.pop() if wrong and wrong == last and len(sizes) == 1 and same_rest else None


def load_weights(module: torch.nn.Module, state: Mapping[str, torch.Tensor], file: str, model: str) -> None:
    """`state` copied into `module`, or a ModelError naming what does not fit. Batch norms' step counters,
    which files saved before torch 0.4.1 lack and which no prediction uses, keep the module's own values."""
    counters = {key: value for key, value in module.state_dict().items() if key.endswith(".num_batches_tracked")}
    state = {**counters, **state}
    reason = mismatch(module, state)
    if reason is not None:
        raise ModelError(f"the weights in '{file}' do not fit {model}: {reason}. Were they saved from another "
                         "architecture (or another variant of it)?")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"the weights in '{file}' do not load into {model}: {first_line(exc)}") from None


def _count(items: list[str], noun: str) -> str:
    return f"1 {noun}" if len(items) == 1 else f"{len(items)} {noun}s"
