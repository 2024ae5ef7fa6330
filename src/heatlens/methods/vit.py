"""Vision-transformer methods over the attention probabilities A_b (N, heads, T, T) of each block b, from
`Network.attention`: attention rollout (class-agnostic) and Chefer's gradient-weighted relevance (class-specific).

Both end on a token-by-token relevance matrix R (T, T); the map is the class token's row over the patch tokens,
laid out on the patch grid (`grid`, `prefix_tokens` as for the CAM methods' token layers). A model without a
class token (prefix_tokens=0: it pools all tokens) gets the mean of all rows instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import MethodError
from ..models.base import Network, token_grid
from ..models.objectives import LOGITS, Softmax
from .registry import MethodOutput, TargetFn, register

HEAD_FUSIONS: dict[str, Callable[..., Any]] = {"mean": np.mean, "max": np.max, "min": np.min}


def _attention_pass(network: Network, x: np.ndarray, targets: TargetFn, gradients: bool,
                    softmax: bool = False) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray,
                                                    list[str]]:
    """One traced pass: per block A (N, heads, T, T) and, with `gradients`, dy/dA (N, K, heads, T, T) for the
    target scores; plus the logits, the target ids and the attention layers' names."""
    view = network.attention(x.shape[1:])
    trace = view.network.trace(x, targets, capture=view.layers, wrt=view.layers if gradients else (),
                               objective=Softmax() if softmax else LOGITS)
    sizes = {trace.activations[name].shape[1:3] for name in view.layers}
    if len(sizes) > 1 or any(rows != columns for rows, columns in sizes):
        raise MethodError(f"the attention layers of {network.name} attend over different token sets {sorted(sizes)}; "
                          "attention_rollout and chefer need the same tokens in every block (plain ViT / DeiT)")
    attention = [np.moveaxis(trace.activations[name], -1, 1) for name in view.layers]
    grads = [np.moveaxis(trace.gradients[name], -1, 2) for name in view.layers] if gradients else []
    return attention, grads, trace.logits, trace.ids, view.layers


def _patch_map(relevance: np.ndarray, grid: tuple[int, int] | None, prefix: int | None) -> tuple[np.ndarray, int]:
    """Relevance (..., T, T) -> the class token's row over the patch tokens on their grid (..., h, w) (all rows'
    mean without prefix tokens), and the number of prefix tokens."""
    lead, h, w = token_grid(relevance.shape[-1], grid, prefix)
    row = relevance[..., 0, :] if lead else relevance.mean(axis=-2)
    return row[..., lead:].reshape(*relevance.shape[:-2], h, w).astype(np.float32), lead


def _check_rollout_options(head_fusion: str, discard_ratio: float) -> None:
    if head_fusion not in HEAD_FUSIONS:
        raise MethodError(f"head_fusion must be one of {tuple(HEAD_FUSIONS)}. Received: {head_fusion!r}")
    if not 0 <= discard_ratio < 1:
        raise MethodError(f"discard_ratio must be a number in [0, 1): the fraction of each block's weakest attention "
                          f"weights set to 0. Received: {discard_ratio!r}")


def _discarded(fused: np.ndarray, ratio: float) -> np.ndarray:
    """`fused` (N, T, T) with the `ratio` fraction of each image's smallest weights set to 0, except entry (0, 0)
    (the class token's attention to itself), as the common rollout implementations do."""
    flat = fused.reshape(len(fused), -1).copy()
    count = int(flat.shape[1] * ratio)
    weakest = np.argsort(flat, axis=1, kind="stable")[:, :count]
    drop = np.zeros(flat.shape, bool)
    np.put_along_axis(drop, weakest, True, axis=1)
    drop[:, 0] = False
    flat[drop] = 0
    return flat.reshape(fused.shape)


def rollout(attention: list[np.ndarray], head_fusion: str = "mean", discard_ratio: float = 0.0) -> np.ndarray:
    """R = Ã_B ... Ã_1 with Ã_b = row-normalised(fuse_heads(A_b) + I): (N, T, T)."""
    fuse = HEAD_FUSIONS[head_fusion]
    n, _, tokens, _ = attention[0].shape
    result = np.broadcast_to(np.eye(tokens), (n, tokens, tokens))
    for a in attention:
        fused = fuse(a, axis=1).astype(np.float64)
        if discard_ratio > 0:
            fused = _discarded(fused, discard_ratio)
        mixed = fused + np.eye(tokens)
        mixed /= mixed.sum(axis=-1, keepdims=True)
        result = mixed @ result
    return result


def chefer_relevance(attention: list[np.ndarray], gradients: list[np.ndarray]) -> np.ndarray:
    """R = I, then per block R <- R + Ā_b R with Ā_b = E_h[(dy/dA_b ⊙ A_b)^+]: (N, K, T, T)."""
    n, k, _, tokens, _ = gradients[0].shape
    relevance = np.broadcast_to(np.eye(tokens), (n, k, tokens, tokens)).copy()
    for a, g in zip(attention, gradients, strict=True):
        weighted = np.maximum(g * a[:, None], 0).mean(axis=2, dtype=np.float64)
        relevance = relevance + weighted @ relevance
    return relevance


@register("attention_rollout", "Attention rollout: head-fused attention plus identity, multiplied through the blocks "
          "(class-agnostic; vision transformers)",
          "Abnar & Zuidema 2020, Quantifying Attention Flow in Transformers", needs_gradients=False, uses_layer=False)
def attention_rollout(network: Network, x: np.ndarray, targets: TargetFn, head_fusion: str = "mean",
                      discard_ratio: float = 0.0, grid: tuple[int, int] | None = None,
                      prefix_tokens: int | None = None) -> MethodOutput:
    """R = Ã_B ... Ã_1, Ã_b = normalise_rows(fuse_h(A_b) + I): Abnar & Zuidema's rollout, the residual
    connection counted as 0.5 A + 0.5 I; the map is R's class-token row over the patch tokens.

    head_fusion: how the heads are fused, 'mean' (the paper) or 'max' / 'min'. discard_ratio: before adding the
    identity, the fraction of each block's smallest fused weights set to 0 (the class token's attention to itself
    is kept), as jacobgil/vit-explain does; 0 keeps all. The map does not depend on the target: every target of an
    image gets the same map."""
    _check_rollout_options(head_fusion, discard_ratio)
    attention, _, logits, ids, layers = _attention_pass(network, x, targets, gradients=False)
    maps, lead = _patch_map(rollout(attention, head_fusion, discard_ratio), grid, prefix_tokens)
    return MethodOutput(np.repeat(maps[:, None], ids.shape[1], axis=1), logits, ids,
                        extras={"attention_layers": layers, "prefix_tokens": lead})


@register("chefer", "Chefer relevance: attention weighted by its positive gradients, accumulated through the "
          "blocks (class-specific; vision transformers)",
          "Chefer, Gur & Wolf 2021, Generic Attention-model Explainability for Interpreting Bi-Modal and "
          "Encoder-Decoder Transformers", needs_gradients=True, uses_layer=False)
def chefer(network: Network, x: np.ndarray, targets: TargetFn, softmax: bool = False,
           grid: tuple[int, int] | None = None, prefix_tokens: int | None = None) -> MethodOutput:
    """R = I; per block b in order, R <- R + Ā_b R with Ā_b = E_h[(∇A_b ⊙ A_b)^+], ∇A_b the gradient of the
    target's logit (softmax=True: its probability) w.r.t. the block's attention probabilities; the map is R's
    class-token row over the patch tokens.

    This is the relevance update for self-attention of Chefer, Gur & Wolf, ICCV 2021 (arXiv:2103.15679), which
    the authors give as the generic form of their CVPR 2021 ViT method (Transformer Interpretability Beyond
    Attention Visualization): gradient x attention, not that paper's LRP relevance of the attention maps."""
    attention, grads, logits, ids, layers = _attention_pass(network, x, targets, gradients=True, softmax=softmax)
    maps, lead = _patch_map(chefer_relevance(attention, grads), grid, prefix_tokens)
    return MethodOutput(maps, logits, ids, extras={"attention_layers": layers, "prefix_tokens": lead})
