"""The layer CAM methods use when none is named, chosen from the probed layer list (no table of architectures).

- Convolutional networks, and transformers whose last stage is a spatial map (Swin, MaxViT, ConvNeXt): the last
  spatial (h, w, C) layer before global pooling, skipping a final local pooling (VGG's last max pool: the conv
  before it has twice the resolution) and layers that only pass their input on (Identity, Permute).
- Vision transformers (token layers after the last spatial layer, which is the patch embedding): the last
  token layer whose patch tokens the scores depend on, laid out on the patch grid. With a class token, the
  tokens leaving the last block reach the scores only through the class token, so Grad-CAM there is zero
  everywhere; the default is then the last block's input norm (its attention's input: torchvision's `ln_1`,
  timm's `norm1`, Hugging Face's `layernorm_before`). With pooled tokens it is the final token output. One
  gradient pass at the probe shape finds which layers the scores depend on; projections (Linear / Dense
  layers, e.g. an attention's query, key and value) are never chosen.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..errors import LayerError
from .tokens import MAX_PREFIX_TOKENS, is_token_count, token_grid

if TYPE_CHECKING:
    from .base import LayerInfo, Network

PASS_THROUGH = ("Identity", "Permute")  # named by the layer that computed their output
PROJECTIONS = ("Linear", "Dense", "EinsumDense")
log = logging.getLogger(__name__)


def described(infos: Sequence[LayerInfo]) -> list[LayerInfo]:
    """The probed layers with what needs the whole list: token layers get their grid (prefix, h, w) from the
    patch embedding (the last spatial layer before them, when its h x w positions plus 0..8 class/register
    tokens make the sequence), and square maps whose side is a sequence length of the model (attention
    probabilities, tokens x tokens) are marked as no per-image map."""
    lengths = {length for info in infos if (length := _length(info)) is not None and is_token_count(length)}
    result: list[LayerInfo] = []
    grid: tuple[int, int] | None = None
    for info in infos:
        shape = info.output_shape
        if info.spatial and shape is not None and shape[0] == shape[1] and shape[0] in lengths:
            info = dataclasses.replace(info, per_image=False)
        elif info.spatial and shape is not None:
            grid = (shape[0], shape[1])
        elif (length := _length(info)) is not None and grid is not None:
            lead = length - grid[0] * grid[1]
            if 0 <= lead <= MAX_PREFIX_TOKENS:
                info = dataclasses.replace(info, token_layout=(lead, *grid))
        result.append(info)
    return result


def default_layer(network: Network, shape: tuple[int, ...]) -> str:
    """The default CAM layer of `network` for inputs of `shape` (see the module's docstring)."""
    infos = network.layers(shape)
    last = max((n for n, info in enumerate(infos) if info.spatial), default=-1)
    tokens = [info for info in infos[last + 1 :] if info.tokens]
    if tokens:
        return token_default(network, tokens, shape)
    chosen = spatial_default(infos)
    if chosen is None:
        raise LayerError(f"{network.name} has no layer with a spatial (h, w, C) output")
    return chosen


def spatial_default(infos: Sequence[LayerInfo]) -> str | None:
    """The last spatial layer before global pooling (see the module's docstring), None without one. Of the last
    stage's layers (those with its output shape) one whose layout the probe is certain of is preferred."""
    spatial = [info for info in infos if info.spatial and info.kind not in PASS_THROUGH]
    if not spatial:
        return None
    unpooled = [info for info in spatial if not info.pooling] or spatial
    stage = [info for info in unpooled if info.output_shape == unpooled[-1].output_shape]
    certain = [info for info in stage if info.certain_layout]
    if not certain:
        log.warning("the layout of '%s' %s is ambiguous (as many channels as positions); it is read as "
                    "channels-first: name the layer if its map looks scrambled", stage[-1].name, stage[-1].output_shape)
    return (certain or stage)[-1].name


def token_default(network: Network, tokens: Sequence[LayerInfo], shape: tuple[int, ...]) -> str:
    """The last token layer whose patch tokens the scores depend on, found by one gradient pass on a fixed
    random input (class 0); projections and pass-through layers are left out."""
    chosen = [info for info in tokens if info.kind not in PROJECTIONS + PASS_THROUGH]
    stream = chosen[-1].output_shape if chosen else None
    candidates = [info for info in chosen if info.output_shape == stream]
    names = ", ".join(info.name for info in tokens[-3:])
    if not candidates:
        raise LayerError(f"{network.name} has no layer with a spatial (h, w, C) output, and its token layers "
                         f"are projections heatlens does not pick by itself: name one, e.g. {names}")
    x = np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)
    wrt = [info.name for info in candidates]
    gradients = network.trace(x, np.zeros((1, 1), np.int64), wrt=wrt).gradients
    reaching = [info.name for info in candidates if np.any(_patches(gradients[info.name][0, 0], info) != 0)]
    if reaching:
        return reaching[-1]
    if not any(np.any(gradients[name] != 0) for name in wrt):
        raise LayerError(f"the scores of {network.name} do not change with any of its token layers ({names}, ...): "
                         "is its head untrained, with zero weights? Name the layer to explain")
    raise LayerError(f"the scores of {network.name} depend on the patch tokens of none of its token layers "
                     f"({names}, ...): name the layer to explain")


def _patches(tokens: np.ndarray, info: LayerInfo) -> np.ndarray:
    """The non-prefix rows of a (T, C) token array."""
    lead = info.token_layout[0] if info.token_layout else token_grid(len(tokens))[0]
    return tokens[lead:]


def _length(info: LayerInfo) -> int | None:
    """T for a per-image (T, C) output, else None."""
    shape = info.output_shape
    return shape[0] if info.per_image and shape is not None and len(shape) == 2 else None
