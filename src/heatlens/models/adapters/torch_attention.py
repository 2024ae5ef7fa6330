"""The attention probabilities of torch vision transformers, for the attention methods (attention_rollout, chefer).

Torch's attention modules never hand their probabilities out: torchvision calls nn.MultiheadAttention with
need_weights=False, timm and Hugging Face call the fused scaled_dot_product_attention. For one call, the view
below runs each attention module it knows with an explicit softmax(Q K^T / sqrt(d)) whose probabilities pass
through a module that the adapter's hooks capture and differentiate like any layer's output:
- torch.nn.MultiheadAttention (torchvision's ViT, nn.TransformerEncoderLayer): a temporary identity submodule;
- timm's Attention (ViT, DeiT): its own explicit path (`fused_attn` off), whose `attn_drop` the probabilities
  pass through (an identity in eval mode);
- Hugging Face's ViTAttention and DeiTAttention: a temporary identity submodule.
Forward methods, flags and submodules are restored after every pass, also when an exception flies.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional

from ...errors import MethodError
from ..base import AttentionView, LayerInfo, Trace, TraceRequest
from .torch import TorchNetwork

PROBE = "heatlens_probabilities"  # the temporary identity submodule the probabilities pass through
HF_ATTENTION = {("transformers.models.vit.modeling_vit", "ViTAttention"),
                ("transformers.models.deit.modeling_deit", "DeiTAttention")}
Undo = Callable[[], None]
_EXPLICIT: set[int] = set()  # ids of the models whose attention is explicit right now


@dataclass(frozen=True)
class Tap:
    """One attention module (its dotted name and kind) and the name of the module its probabilities pass through."""

    attention: str
    kind: str

    @property
    def probabilities(self) -> str:
        leaf = "attn_drop" if self.kind == "timm" else PROBE
        return f"{self.attention}.{leaf}" if self.attention else leaf


def attention_view(network: TorchNetwork, input_shape: tuple[int, ...] | None) -> AttentionView:
    """The network with explicit attention, and the names of its attention probabilities in execution order;
    a MethodError for models with no attention module heatlens knows."""
    taps = [Tap(name, kind) for name, module in network.module.named_modules() if (kind := _kind(module))]
    if not taps:
        raise MethodError(f"{network.name} has no attention layers heatlens can read: attention_rollout and chefer "
                          "explain torch vision transformers (torchvision, timm or Hugging Face ViT / DeiT); pick "
                          "another method (see heatlens methods)")
    view = AttentionNetwork(network, taps)
    wanted = {tap.probabilities for tap in taps}
    ran = [info.name for info in view.layers(input_shape) if info.name in wanted]
    if not ran:
        raise MethodError(f"the attention layers of {network.name} ({taps[0].attention}, ...) are not called by its "
                          "forward pass, so attention_rollout and chefer have nothing to read")
    return AttentionView(view, ran)


class AttentionNetwork(TorchNetwork):
    """A view of a TorchNetwork (the same module, preprocessing, classes and scores) whose every pass runs the
    attention modules explicitly, so their probabilities are layers: (N, T, T, heads) channels-last, the query
    token first, the key token second."""

    def __init__(self, network: TorchNetwork, taps: list[Tap]) -> None:
        vars(self).update(vars(network))
        self._layers = {}
        self._rests = {}
        self._custom_views = {}
        self.taps = taps

    @contextlib.contextmanager
    def _session(self) -> Iterator[None]:
        with explicit_attention(self.module, self.taps), super()._session():
            yield

    def _trace_chunk(self, request: TraceRequest) -> Trace:
        with explicit_attention(self.module, self.taps):  # before the adapter looks the probes up to hook them
            return super()._trace_chunk(request)

    def _probe(self, shape: tuple[int, ...]) -> list[LayerInfo]:
        with explicit_attention(self.module, self.taps):
            return super()._probe(shape)


@contextlib.contextmanager
def explicit_attention(model: torch.nn.Module, taps: list[Tap]) -> Iterator[None]:
    """Every tapped attention module of `model` explicit for the `with` block, restored afterwards whatever happens
    (also torch's fused fast path of nn.TransformerEncoderLayer, which would skip the attention module). Nested
    blocks on the same model (a trace opens sessions inside its own) change nothing more."""
    if id(model) in _EXPLICIT:
        yield
        return
    modules = dict(model.named_modules())
    undo: list[Undo] = []
    fast_path = torch.backends.mha.get_fastpath_enabled()
    _EXPLICIT.add(id(model))
    try:
        torch.backends.mha.set_fastpath_enabled(False)
        for tap in taps:
            undo.extend(_make_explicit(modules[tap.attention], tap.kind))
        yield
    finally:
        for step in reversed(undo):
            step()
        torch.backends.mha.set_fastpath_enabled(fast_path)
        _EXPLICIT.discard(id(model))


def _kind(module: torch.nn.Module) -> str | None:
    """'mha', 'timm' or 'hf' for the attention modules heatlens can make explicit, None for anything else."""
    if isinstance(module, torch.nn.MultiheadAttention):
        return "mha"
    timm_attention = getattr(sys.modules.get("timm.layers.attention"), "Attention", None)
    if timm_attention is not None and getattr(type(module), "forward", None) is timm_attention.forward:
        return "timm"
    if (type(module).__module__, type(module).__name__) in HF_ATTENTION:
        return "hf"
    return None


def _make_explicit(module: torch.nn.Module, kind: str) -> list[Undo]:
    """Make one attention module explicit; the steps that undo it."""
    if kind == "timm":
        return [_set_attribute(module, "fused_attn", False)]
    probe = torch.nn.Identity().eval()
    undo = [_add_probe(module, probe)]
    if isinstance(module, torch.nn.MultiheadAttention):
        undo.append(_set_attribute(module, "forward", _mha_forward(module, probe)))
    else:
        undo.append(_set_attribute(module, "forward", _hf_forward(module, probe)))
    return undo


def _set_attribute(module: torch.nn.Module, name: str, value: Any) -> Undo:
    """Set an instance attribute; the step that puts back the old one (or removes it, so the class's shows again)."""
    own = vars(module)
    had, old = name in own, own.get(name)
    setattr(module, name, value)

    def undo() -> None:
        if had:
            setattr(module, name, old)
        else:
            delattr(module, name)

    return undo


def _add_probe(module: torch.nn.Module, probe: torch.nn.Module) -> Undo:
    """Register the probe as a submodule (so hooks and layer names reach it); the step that removes it."""
    if PROBE in module._modules:
        raise MethodError(f"{type(module).__name__} already has a submodule named {PROBE!r}; rename it to use "
                          "attention_rollout or chefer")
    module.add_module(PROBE, probe)
    return lambda: delattr(module, PROBE)


def _probabilities(query: torch.Tensor, key: torch.Tensor, scale: float, mask: torch.Tensor | None,
                   probe: torch.nn.Module) -> torch.Tensor:
    """softmax(Q K^T * scale + mask) over the keys, in float32, through the probe: (N, heads, T_query, T_key)."""
    scores = torch.matmul(query, key.transpose(-2, -1)).float() * scale
    if mask is not None:
        scores = scores + mask
    return probe(torch.softmax(scores, dim=-1).to(query.dtype))


def _mha_forward(mha: torch.nn.MultiheadAttention, probe: torch.nn.Module) -> Callable[..., tuple[torch.Tensor, Any]]:
    """nn.MultiheadAttention's forward (eval mode) with explicit probabilities; masked calls are refused."""

    def forward(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key_padding_mask: Any = None,
                need_weights: bool = True, attn_mask: Any = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[torch.Tensor, Any]:
        unsupported = ("a key padding mask" if key_padding_mask is not None else "an attention mask"
                       if attn_mask is not None or is_causal else "unbatched inputs" if query.dim() != 3
                       else "bias_k / add_zero_attn" if mha.bias_k is not None or mha.add_zero_attn else None)
        if unsupported:
            raise MethodError(f"attention_rollout and chefer read batched, unmasked self-attention; this model's "
                              f"MultiheadAttention is called with {unsupported}")
        if not mha.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        if mha._qkv_same_embed_dim:
            weights = mha.in_proj_weight.chunk(3)
        else:
            weights = (mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight)
        biases = mha.in_proj_bias.chunk(3) if mha.in_proj_bias is not None else (None, None, None)
        heads, size = mha.num_heads, mha.head_dim

        def split(t: torch.Tensor, index: int) -> torch.Tensor:
            projected = functional.linear(t, weights[index], biases[index])
            return projected.view(t.shape[0], t.shape[1], heads, size).transpose(1, 2)

        q, k, v = split(query, 0), split(key, 1), split(value, 2)
        probabilities = _probabilities(q, k, 1 / math.sqrt(size), None, probe)
        out = torch.matmul(probabilities, v).transpose(1, 2).reshape(q.shape[0], q.shape[2], heads * size)
        out = functional.linear(out, mha.out_proj.weight, mha.out_proj.bias)
        if not mha.batch_first:
            out = out.transpose(0, 1)
        averaged = probabilities.mean(dim=1) if average_attn_weights else probabilities
        return out, averaged if need_weights else None

    return forward


def _hf_forward(attention: Any, probe: torch.nn.Module) -> Callable[..., tuple[torch.Tensor, Any]]:
    """Hugging Face ViTAttention's forward (eval mode) with explicit probabilities, whatever `attn_implementation`."""

    def forward(hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                **_kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        heads_shape = (*hidden_states.shape[:-1], -1, attention.head_dim)
        q, k, v = (projection(hidden_states).view(heads_shape).transpose(1, 2)
                   for projection in (attention.q_proj, attention.k_proj, attention.v_proj))
        probabilities = _probabilities(q, k, attention.scaling, attention_mask, probe)
        out = torch.matmul(probabilities, v).transpose(1, 2).reshape(*hidden_states.shape[:-1], -1)
        return attention.o_proj(out), probabilities

    return forward
