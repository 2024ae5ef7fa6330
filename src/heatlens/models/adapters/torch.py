"""Adapter for any torch.nn.Module: forward hooks that live for one call, autograd.grad, eval mode.

Gradients are computed only where asked: for a layer, the network runs without recording a graph up
to that layer, whose output becomes a fresh leaf; only the rest of the network is recorded. So Grad-CAM
costs about one inference pass, and no parameter or input gradients are ever computed or stored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ...errors import HeatlensError, LayerError, ModelError, close_matches, first_line
from ...targets import check_ids, check_scores
from ..arrays import NUMPY
from ..base import (
    CHANNELS_FIRST,
    CHANNELS_LAST,
    AttentionView,
    LayerInfo,
    LayerRecorder,
    Network,
    Preprocess,
    Trace,
    TraceRequest,
)
from ..objectives import channel_layer
from . import torch_layout, torch_positions, torch_randomise
from .lrp_torch import relevance_rules
from .torch_arrays import TorchOps
from .torch_rectifiers import Rectifiers
from .torch_split import rest_of_network

_SCRIPTED = (
    "TorchScript models cannot be hooked, so their layers are out of reach for layer methods (e.g. Grad-CAM); "
    "load the Python module instead (--model my_pkg.my_module:factory)"
)


class TorchNetwork(Network):
    """A torch.nn.Module seen through the Network primitives. The module is left exactly as it came.

    On CUDA the work runs in full float32 by default (`precise=True`): cuDNN's TF32 convolutions change
    gradients by up to ~10% of their peak on Ampere and later GPUs, which would make maps differ from
    the CPU's. `precise=False` keeps whatever TF32 setting the process has, for speed.

    `device_arrays`: whether traces asked `keep_on_device` (the CAM family, the gradient methods) leave their
    activations and gradients as tensors on the model's device, reduced there with `TorchOps`, so that only the
    maps are copied to the host. None (the default) does so on CUDA only; True forces it on the CPU too (the
    tests run the device path so), False never does.

    A `torch.compile`d or `DataParallel` module is explained through the module it wraps, so layer names
    are the model's own ('layer4', not '_orig_mod.layer4') and hooks run eagerly, without recompiling."""

    def __init__(
        self,
        module: torch.nn.Module,
        preprocess: Preprocess | None = None,
        classes: Sequence[str] | None = None,
        name: str | None = None,
        input_size: tuple[int, ...] | None = None,
        batch_size: int = 32,
        precise: bool = True,
        device_arrays: bool | None = None,
    ) -> None:
        if not isinstance(module, torch.nn.Module):
            raise ModelError(f"expected a torch.nn.Module. Received: {type(module).__name__}")
        self.module = _unwrapped(module)
        self.preprocess = preprocess
        self.classes = list(classes) if classes is not None else None
        self.name = name or type(module).__name__
        self.input_size = input_size
        self.batch_size = batch_size
        self.precise = precise
        self.device_arrays = device_arrays
        self._layers: dict[tuple[int, ...], list[LayerInfo]] = {}
        self._rests: dict[str, torch.nn.Module | None] = {}

    tensor_type = torch.Tensor
    device_arrays: bool | None = None

    @property
    def device(self) -> torch.device:
        tensor: torch.Tensor | None = next(self.module.parameters(), None)
        tensor = tensor if tensor is not None else next(self.module.buffers(), None)
        return tensor.device if tensor is not None else torch.device("cpu")

    def keeps_arrays(self) -> bool:
        """Whether traces that allow it keep their arrays on the device (see device_arrays)."""
        return self.device.type == "cuda" if self.device_arrays is None else bool(self.device_arrays)

    @property
    def scripted(self) -> bool:
        return isinstance(self.module, torch.jit.ScriptModule)

    def layers(self, input_shape: tuple[int, ...] | None = None) -> list[LayerInfo]:
        if self.scripted:
            raise ModelError(_SCRIPTED)
        return super().layers(input_shape)

    def _predict_chunk(self, x: np.ndarray) -> np.ndarray:
        with self._session(), torch.no_grad():
            return self._scores_of(self._run(self._to_tensor(x))).float().cpu().numpy()

    def layer_at(self, index: int, end: str, input_shape: tuple[int, ...] | None = None) -> str:
        if self.scripted:
            raise ModelError(_SCRIPTED)
        shape = tuple(input_shape) if input_shape is not None else self._probe_shape()
        with self._session(), torch.no_grad():
            return torch_positions.layer_at(self.module, index, end,
                                            lambda: self._run(self._to_tensor(np.zeros((1, *shape), np.float32))))

    def attention(self, input_shape: tuple[int, ...] | None = None) -> AttentionView:
        from .torch_attention import attention_view  # imported here: it subclasses this adapter

        return attention_view(self, input_shape)

    def parameter_layers(self, input_shape: tuple[int, ...] | None = None) -> list[str]:
        return torch_randomise.parameter_layers(self, input_shape)

    def randomised(self, layers: Sequence[str], seed: int = 0) -> TorchNetwork:
        return torch_randomise.randomised(self, layers, seed)

    def _fast_tail(self, layer: str) -> Callable[[np.ndarray], np.ndarray] | None:
        names = [name for name, _ in self.module.named_modules() if name]
        if layer not in names:
            raise LayerError(f"unknown layer '{layer}' in {self.name}.{close_matches(layer, names)}")
        rest = self._rest(layer)
        if rest is None:
            return None

        layout = self._probed(layer).layout

        def tail(activation: np.ndarray) -> np.ndarray:
            replacement = self._to_tensor(activation, layout) if activation.ndim == 4 else torch.as_tensor(activation)
            with self._session(), torch.no_grad():
                out = self._run_module(rest, replacement.to(self.device))
            return self._scores_of(out).float().cpu().numpy()

        return tail

    def _trace_chunk(self, request: TraceRequest) -> Trace:
        x, targets, capture, wrt, inject = request.x, request.targets, request.capture, request.wrt, request.inject
        relu, objective = request.relu, request.objective
        grad_layers = {w for w in wrt if w != "input"}
        held: dict[str, torch.Tensor] = {}
        live: dict[str, torch.Tensor] = {}
        by_layer = channel_layer(objective)
        calls = {name: self.layer(name, x.shape[1:]).calls for name in inject}
        layouts = {name: self.layer(name, x.shape[1:]).layout for name in request.layers}
        seen = dict.fromkeys(inject, 0)

        def make_hook(name: str) -> Callable[..., torch.Tensor]:
            def hook(_mod: torch.nn.Module, _inp: Any, out: Any) -> torch.Tensor:
                out = _as_tensor(out, name)
                if name == by_layer:
                    live[name] = out.permute(0, 3, 1, 2) if layouts[name] == CHANNELS_LAST and out.ndim == 4 else out
                if name in inject:
                    seen[name] += 1
                    if seen[name] == calls[name]:
                        out = self._to_tensor(inject[name], layouts[name]).to(out.dtype)
                if name in grad_layers:
                    if not torch.is_grad_enabled():
                        out = out.detach().requires_grad_()
                        torch.set_grad_enabled(True)
                    held[name] = out
                    return out.clone()
                held[name] = out.detach().clone()
                return out

            return hook

        scored = [by_layer] if by_layer else []
        hooks = {self._module(name): make_hook(name)
                 for name in dict.fromkeys([*capture, *grad_layers, *inject, *scored])}
        inputs = self._to_tensor(x)
        rectifiers = Rectifiers(relu) if relu != "normal" else None
        rules = relevance_rules(self.module, request.rules) if request.rules is not None else contextlib.nullcontext()
        with self._session():
            with _hooked(hooks), torch.set_grad_enabled("input" in wrt), rectifiers or contextlib.nullcontext(), rules:
                if "input" in wrt:
                    inputs.requires_grad_()
                logits = self._scores_of(self._run(inputs.clone() if "input" in wrt else inputs))
            if rectifiers is not None and rectifiers.calls == 0:
                raise ModelError(f"{self.name} calls no ReLU or ReLU6, so the '{relu}' rule has nothing to change")
            scores = check_scores(logits.detach().float().cpu().numpy(), len(x))
            self._check_reached([*capture, *grad_layers], held)
            outputs = self._objective_scores(objective, logits, live)
            chosen: np.ndarray | None = (targets(outputs.detach().float().cpu().numpy() if by_layer else scores)
                                         if callable(targets) else targets)
            ids = None if chosen is None else check_ids(chosen, len(x), outputs.shape[1])
            layouts["input"] = CHANNELS_FIRST
            kept = request.keep_on_device and self.keeps_arrays()
            convert = _channels_last if kept else _to_numpy
            gradients = self._gradients(outputs, ids, [inputs if w == "input" else held[w] for w in wrt], wrt,
                                        layouts, convert)
        return Trace(
            logits=scores,
            targets=ids,
            activations={name: convert(held[name].detach(), layouts[name]) for name in capture},
            gradients=gradients,
            ops=TorchOps(self.device) if kept else NUMPY,
        )

    def _gradients(
        self, logits: torch.Tensor, targets: np.ndarray | None, tensors: list[torch.Tensor], wrt: Sequence[str],
        layouts: dict[str, str], convert: Callable[[torch.Tensor, str], Any],
    ) -> dict[str, Any]:
        """The gradients of each target's scores w.r.t. `tensors`, one per name in `wrt`, channels-last
        (`layouts`: each name's LayerInfo.layout), each made numpy or kept as a tensor by `convert`."""
        if not wrt or targets is None:
            return {}
        if not logits.requires_grad:
            raise self._independent(wrt[0])
        ids = torch.as_tensor(np.asarray(targets, dtype=np.int64), device=logits.device)
        per_target: list[list[Any]] = [[] for _ in wrt]
        for k in range(ids.shape[1]):
            score = logits.gather(1, ids[:, k : k + 1]).sum()
            try:
                grads = torch.autograd.grad(score, tensors, retain_graph=k < ids.shape[1] - 1, allow_unused=True)
            except RuntimeError as exc:
                raise ModelError(f"the gradients of {self.name} could not be computed: {first_line(exc)}") from exc
            for slot, (name, grad) in enumerate(zip(wrt, grads, strict=True)):
                if grad is None:
                    raise self._independent(name)
                per_target[slot].append(convert(grad, layouts[name]))
        stack = torch.stack if convert is _channels_last else np.stack
        return {name: stack(grads, 1) if len(grads) > 1 else grads[0][:, None]
                for name, grads in zip(wrt, per_target, strict=True)}

    def _probe(self, shape: tuple[int, ...]) -> list[LayerInfo]:
        """Every layer's output shape, channels-last, and its layout (torch_layout), from one pass on zeros."""
        recorder = LayerRecorder()
        inputs = self._to_tensor(np.zeros((1, *shape), dtype=np.float32))
        probe = torch_layout.LayoutProbe(inputs)
        layouts: dict[str, torch_layout.Layout] = {}

        def make_hook(name: str) -> Callable[..., None]:
            def hook(mod: torch.nn.Module, args: tuple, out: Any) -> None:
                layout = probe.see(mod, args, out)
                out_shape = tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else None
                if layout is not None:
                    layouts[name] = layout
                    out_shape = layout.shape(tuple(out.shape))
                elif out_shape is not None and out.shape[0] != inputs.shape[0]:
                    layouts[name] = torch_layout.Layout(CHANNELS_LAST, per_image=False)
                recorder.see(name, type(mod).__name__, out, out_shape)

            return hook

        hooks = {m: make_hook(name) for name, m in self.module.named_modules() if name}
        with self._session(), torch.no_grad(), _hooked(hooks):
            self._run(inputs)
        layouts = torch_layout.settled(layouts)
        return [_with_layout(info, layouts.get(info.name)) for info in recorder.infos()]

    def _probed(self, name: str) -> LayerInfo:
        """A layer's LayerInfo from the latest probe that listed it (the layout does not change with the size)."""
        for infos in reversed(self._layers.values()):
            for info in infos:
                if info.name == name:
                    return info
        return self.layer(name)

    def _rest(self, layer: str) -> torch.nn.Module | None:
        """The network after `layer` as its own module (cached), or None where it cannot be cut cleanly."""
        if layer not in self._rests:
            with self._session():  # traced in eval mode: fx records `self.training` (dropout) as a constant
                self._rests[layer] = rest_of_network(self.module, layer)
        return self._rests[layer]

    def _logits_of(self, out: Any) -> torch.Tensor:
        return _logits(out)

    def _probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits.float(), dim=1)

    def _channel_scores(self, activation: torch.Tensor, strongest: bool) -> torch.Tensor:
        flat = activation.flatten(2) if activation.ndim > 2 else activation[..., None]
        return flat.amax(dim=2) if strongest else flat.mean(dim=2)

    def _run(self, inputs: torch.Tensor) -> Any:
        """The whole model's forward (see _run_module)."""
        return self._run_module(self.module, inputs)

    def _run_module(self, module: torch.nn.Module, inputs: torch.Tensor) -> Any:
        """A forward; the model's own failures become one-line ModelErrors naming the input shape."""
        try:
            return module(inputs)
        except HeatlensError:
            raise
        except Exception as exc:
            shape = (inputs.shape[0], *inputs.shape[2:], inputs.shape[1]) if inputs.ndim == 4 else tuple(inputs.shape)
            raise ModelError(
                f"{self.name} failed on an input of shape {tuple(shape)} (N, H, W, C): {first_line(exc)}"
            ) from exc

    def _module(self, name: str) -> torch.nn.Module:
        return dict(self.module.named_modules())[name]

    def _to_tensor(self, x: np.ndarray, layout: str = CHANNELS_FIRST) -> torch.Tensor:
        """Channels-last numpy -> a tensor on the model's device: NCHW in the model's memory format, or kept
        channels-last for a layer whose `layout` is CHANNELS_LAST. The layout change runs there and is the one
        copy, also for strided arrays (e.g. from broadcasting np.where); the tensor never shares memory with
        `x`, so a model that writes into its input cannot change it."""
        first = next(self.module.parameters(), None)
        dtype = first.dtype if first is not None and first.dtype.is_floating_point else torch.float32
        arr = np.asarray(x, dtype=np.float32)
        if not all(s > 0 for s in arr.strides):
            arr = arr.copy(order="C")  # also where numpy calls it contiguous: a flipped size-1 axis keeps its sign
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "The given NumPy array is not writable", UserWarning)
            tensor = torch.from_numpy(arr).to(self.device, dtype)
        if tensor.ndim != 4 or layout == CHANNELS_LAST:
            return tensor.clone()
        return tensor.permute(0, 3, 1, 2).clone(memory_format=self._memory_format())

    def _memory_format(self) -> torch.memory_format:
        """channels_last for models whose convolution weights are laid out so (the zoo's inference build),
        so inputs are copied straight into the layout the model computes in; otherwise torch's default NCHW."""
        kernels = (p for p in self.module.parameters() if p.ndim == 4 and p.shape[1] > 1 and p.shape[2:].numel() > 1)
        weight = next(kernels, None)
        if weight is not None and not weight.is_contiguous() and weight.is_contiguous(
                memory_format=torch.channels_last):
            return torch.channels_last
        return torch.contiguous_format

    @contextlib.contextmanager
    def _session(self) -> Iterator[None]:
        """Eval mode for the call, and on CUDA full float32 (no TF32) unless `precise=False`; every
        module's train/eval flag and the TF32 switches are restored afterwards, whatever happens."""
        modes = [(m, m.training) for m in self.module.modules() if m.training]
        switches = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        for m, _ in modes:
            m.training = False
        if self.precise and self.device.type == "cuda":
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        try:
            yield
        finally:
            for m, _ in modes:
                m.training = True
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = switches

@contextlib.contextmanager
def _hooked(hooks: dict[torch.nn.Module, Callable[..., Any]]) -> Iterator[None]:
    """Forward hooks that exist for the duration of one `with` block only."""
    handles = []
    try:
        for module, fn in hooks.items():
            handles.append(module.register_forward_hook(fn))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _as_tensor(out: Any, name: str) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        raise LayerError(f"layer '{name}' returns {type(out).__name__}, not a tensor; pick another layer")
    return out


def _unwrapped(module: torch.nn.Module) -> torch.nn.Module:
    """The model inside torch.compile's OptimizedModule and (Distributed)DataParallel wrappers."""
    while True:
        if hasattr(module, "_orig_mod") and isinstance(module._orig_mod, torch.nn.Module):
            module = module._orig_mod
        elif isinstance(module, torch.nn.DataParallel | torch.nn.parallel.DistributedDataParallel):
            module = module.module
        else:
            return module


def _logits(out: Any) -> torch.Tensor:
    """The score tensor of a model output: a tensor, the first of a tuple, or `.logits` / ['logits']."""
    if isinstance(out, torch.Tensor):
        scores = out
    elif isinstance(out, dict) and "logits" in out:
        scores = out["logits"]
    elif hasattr(out, "logits"):
        scores = out.logits
    elif isinstance(out, tuple | list) and out and isinstance(out[0], torch.Tensor):
        scores = out[0]
    else:
        raise ModelError(f"the model returned {type(out).__name__}; expected a tensor of scores (N, classes)")
    if scores.ndim != 2:
        raise ModelError(f"expected model scores of shape (N, classes). Received: shape={tuple(scores.shape)}")
    return scores


def _to_numpy(t: torch.Tensor, layout: str = CHANNELS_FIRST) -> np.ndarray:
    """A tensor -> contiguous channels-last numpy: a 4-D NCHW one is permuted (on the tensor's device), a
    CHANNELS_LAST one or any other passes as it is."""
    return _channels_last(t, layout).contiguous().cpu().numpy()


def _channels_last(t: torch.Tensor, layout: str = CHANNELS_FIRST) -> torch.Tensor:
    """A float32 tensor seen channels-last where it stays: a 4-D NCHW one as a permuted view (no copy), a
    CHANNELS_LAST one or any other as it is."""
    t = t.detach().float()
    return t.permute(0, 2, 3, 1) if t.ndim == 4 and layout == CHANNELS_FIRST else t


def _with_layout(info: LayerInfo, layout: torch_layout.Layout | None) -> LayerInfo:
    """A probed LayerInfo with its layout; a 4-D torch output is CHANNELS_FIRST unless the probe read otherwise."""
    if layout is None:
        return info
    return dataclasses.replace(info, layout=layout.order, certain_layout=layout.certain, per_image=layout.per_image)
