"""Which axes of a torch layer's 4-D output are the image's, read on the probing pass.

Torch lays feature maps out NCHW, but Swin's stages, ConvNeXt's and MaxViT's inner blocks and Hugging Face's
ConvNeXt layers compute channels-last (N, H, W, C). A layer's layout is decided, in this order, by:
1. the tensor itself: an output that is a tensor seen before (a container's, an in-place activation's, an
   identity's) has that tensor's layout;
2. the layer's kind: convolutions, batch/group/instance norms, 2-D pools and upsampling put channels at axis 1;
   Linear and LayerNorm act on the last axis, so that axis is channels; torchvision's Permute moves the axes
   of a tensor whose layout is known;
3. the shapes: the image axes keep the input's aspect (h / w = H / W, allowing for rounding and padding); of
   the two readings, (C, h, w) and (h, w, C), the one that fits is the layout. Where both fit (a square input
   with as many channels as positions), a layer whose output has its input's shape keeps the input's layout;
   otherwise NCHW is assumed and the layout is marked uncertain, so the default layer avoids it. In a model
   with no layer that is certainly channels-last (a plain CNN), NCHW is then certain (`settled`).
Outputs whose first axis is not the batch (windows folded into it) or whose axes fit neither reading (an
attention map over tokens) are not per-image maps; they keep torch's order (channels moved last).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from ..base import CHANNELS_FIRST, CHANNELS_LAST

CHANNELS_AT_1 = (
    torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.BatchNorm2d, torch.nn.GroupNorm, torch.nn.InstanceNorm2d,
    torch.nn.LocalResponseNorm, torch.nn.MaxPool2d, torch.nn.AvgPool2d, torch.nn.AdaptiveAvgPool2d,
    torch.nn.AdaptiveMaxPool2d, torch.nn.LPPool2d, torch.nn.Upsample, torch.nn.UpsamplingBilinear2d,
    torch.nn.UpsamplingNearest2d, torch.nn.PixelShuffle, torch.nn.PixelUnshuffle,
)
CHANNELS_LAST_KINDS = (torch.nn.Linear, torch.nn.LayerNorm)
TO_CHANNELS_LAST, TO_CHANNELS_FIRST = (0, 2, 3, 1), (0, 3, 1, 2)


@dataclass(frozen=True)
class Layout:
    """How one 4-D output lies: `order` (CHANNELS_FIRST or CHANNELS_LAST), whether the probe is `certain` of
    it, and whether it is `per_image` (one map per image on the image's axes)."""

    order: str
    certain: bool = True
    per_image: bool = True

    def shape(self, full: tuple[int, ...]) -> tuple[int, ...]:
        """The channels-last shape without the batch axis of an output of shape `full` (N, ., ., .)."""
        return full[1:] if self.order == CHANNELS_LAST else (*full[2:], full[1])


def fits(h: int, w: int, height: int, width: int) -> bool:
    """True where an (h, w) grid keeps the aspect of an (height, width) input: within one position plus 5% of
    the grid (rounding of strided layers, padding to a multiple of the stride)."""
    off = abs(h * width - w * height) / max(height, width)
    return off <= 1 + max(h, w) / 20


class LayoutProbe:
    """Decides the layout of every 4-D output of one probing pass, in call order (see the module's docstring).
    It keeps each 4-D tensor it has seen alive for the pass, so that tensor ids stay unique."""

    def __init__(self, inputs: torch.Tensor) -> None:
        self.height, self.width = int(inputs.shape[2]), int(inputs.shape[3])
        self.batch = int(inputs.shape[0])
        self._seen: dict[int, Layout] = {id(inputs): Layout(CHANNELS_FIRST)}
        self._alive: list[torch.Tensor] = [inputs]

    def see(self, module: torch.nn.Module, args: tuple, out: Any) -> Layout | None:
        """The layout of `module`'s output `out` for the call with arguments `args`; None unless a 4-D tensor."""
        if not isinstance(out, torch.Tensor) or out.ndim != 4:
            return None
        source = next((a for a in args if isinstance(a, torch.Tensor)), None)
        layout = self._seen.get(id(out)) or self._decided(module, source, tuple(out.shape))
        self._seen[id(out)] = layout
        self._alive.append(out)
        return layout

    def _decided(self, module: torch.nn.Module, source: torch.Tensor | None, shape: tuple[int, ...]) -> Layout:
        """Kind first, then shapes (rules 2 and 3); per_image checks the batch axis and the aspect."""
        order, certain = self._by_kind(module, source, shape) or self._by_shape(source, shape)
        h, w = shape[2:] if order == CHANNELS_FIRST else shape[1:3]
        per_image = shape[0] == self.batch and fits(h, w, self.height, self.width)
        return Layout(order, certain, per_image)

    def _by_kind(self, module: torch.nn.Module, source: torch.Tensor | None,
                 shape: tuple[int, ...]) -> tuple[str, bool] | None:
        if isinstance(module, CHANNELS_AT_1):
            return CHANNELS_FIRST, True
        if isinstance(module, torch.nn.Linear) or (
                isinstance(module, torch.nn.LayerNorm) and tuple(module.normalized_shape) == shape[-1:]):
            return CHANNELS_LAST, True
        dims = tuple(getattr(module, "dims", ()) or ())
        known = self._seen.get(id(source)) if source is not None else None
        if dims in (TO_CHANNELS_LAST, TO_CHANNELS_FIRST) and known is not None:
            moved = {CHANNELS_FIRST: CHANNELS_LAST, CHANNELS_LAST: CHANNELS_FIRST}[known.order]
            expected = CHANNELS_LAST if dims == TO_CHANNELS_LAST else CHANNELS_FIRST
            return (moved, known.certain) if moved == expected else (CHANNELS_FIRST, False)
        return None

    def _by_shape(self, source: torch.Tensor | None, shape: tuple[int, ...]) -> tuple[str, bool]:
        first = fits(shape[2], shape[3], self.height, self.width)
        last = fits(shape[1], shape[2], self.height, self.width)
        if first != last:
            return (CHANNELS_FIRST if first else CHANNELS_LAST), True
        if not first:  # neither reading keeps the image's aspect: no per-image map, torch's order kept
            return CHANNELS_FIRST, True
        known = self._seen.get(id(source)) if source is not None else None
        if known is not None and source is not None and tuple(source.shape) == shape:
            return known.order, known.certain
        return CHANNELS_FIRST, False


def settled(layouts: dict[str, Layout]) -> dict[str, Layout]:
    """The layouts of one pass, where a model that computes nothing certainly channels-last has its ambiguous
    layers settled as NCHW: torch's convention, and the only layout it shows."""
    if any(layout.order == CHANNELS_LAST and layout.certain and layout.per_image for layout in layouts.values()):
        return layouts
    return {name: dataclasses.replace(layout, certain=True) for name, layout in layouts.items()}
