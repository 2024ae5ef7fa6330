"""Token sequences of vision transformers as grids: how many class/register tokens come first and the grid of
the rest."""

from __future__ import annotations

import math

from ..errors import LayerError

MAX_PREFIX_TOKENS = 8


def token_grid(tokens: int, grid: tuple[int, int] | None = None, prefix: int | None = None) -> tuple[int, int, int]:
    """(prefix tokens, grid height, grid width) for a sequence of `tokens`: the class and register tokens
    come first; without `grid` the grid is the largest square that leaves 0..8 prefix tokens."""
    if prefix is not None and prefix < 0:
        raise LayerError(f"prefix_tokens must be 0 or more. Received: {prefix}")
    if grid is not None:
        h, w = grid
        if min(h, w) < 1:
            raise LayerError(f"grid must be (h, w) with h, w >= 1. Received: {tuple(grid)}")
        prefix = tokens - h * w if prefix is None else prefix
        if prefix < 0 or prefix + h * w != tokens:
            raise LayerError(f"a {h}x{w} grid with {prefix} prefix tokens does not fit {tokens} tokens")
        return prefix, h, w
    for lead in ([prefix] if prefix is not None else range(min(MAX_PREFIX_TOKENS, tokens) + 1)):
        side = math.isqrt(max(tokens - lead, 0))
        if side >= 2 and side * side == tokens - lead:
            return lead, side, side
    raise LayerError(f"cannot lay {tokens} tokens out on a square grid; pass grid=(h, w) and prefix_tokens=")


def is_token_count(tokens: int) -> bool:
    """True for a sequence length that lies on a square grid after 0..8 class/register tokens."""
    try:
        token_grid(tokens)
    except LayerError:
        return False
    return True
