"""EfficientNet-Lite's layout and its published checkpoints' key names, shared by the torch and Keras builds.

The stages are EfficientNet-B0's; the Lite sizes scale width and depth but keep the stem (32), the head
(1280) and the first and last stage's repeats fixed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

STEM = 32
HEAD = 1280
BN_EPS = 1e-3
# expand ratio, kernel, stride, repeats, output channels
_STAGES = [(1, 3, 1, 1, 16), (6, 3, 2, 2, 24), (6, 5, 2, 2, 40), (6, 3, 2, 3, 80),
           (6, 5, 1, 3, 112), (6, 5, 2, 4, 192), (6, 3, 1, 1, 320)]
# width, depth, image size
SIZES = {"lite0": (1.0, 1.0, 224), "lite1": (1.0, 1.1, 240), "lite2": (1.1, 1.2, 260),
         "lite3": (1.2, 1.4, 280), "lite4": (1.4, 1.8, 300)}
_TOP_KEYS = {"_conv_stem": "stem.0", "_bn0": "stem.1", "_conv_head": "head.0", "_bn1": "head.1", "_fc": "classifier"}
_BLOCK_KEYS = {"_expand_conv": "expand.0", "_bn0": "expand.1", "_depthwise_conv": "depthwise.0",
               "_bn1": "depthwise.1", "_project_conv": "project.0", "_bn2": "project.1"}


@dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual block: channels in and out, expansion, kernel and stride."""

    cin: int
    cout: int
    expand: int
    kernel: int
    stride: int

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.cin == self.cout


def block_specs(size: str) -> list[BlockSpec]:
    """The blocks of an EfficientNet-Lite size ('lite0' ... 'lite4'), in order."""
    width, depth, _ = SIZES[size]
    specs, cin = [], STEM
    for index, (expand, kernel, stride, repeats, cout) in enumerate(_STAGES):
        cout = _round_filters(cout, width)
        fixed = index in (0, len(_STAGES) - 1)
        for r in range(repeats if fixed else math.ceil(depth * repeats)):
            specs.append(BlockSpec(cin, cout, expand, kernel, stride if r == 0 else 1))
            cin = cout
    return specs


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def rename_checkpoint(original: dict) -> dict:
    """Rename the published checkpoint's keys (`_conv_stem`, `_blocks.3._bn1`, `_fc`, ...) to ours
    (`stem.0`, `blocks.3.depthwise.1`, `classifier`, ...); batch-norm step counters are dropped."""
    renamed = {}
    for key, value in original.items():
        if key.endswith("num_batches_tracked"):
            continue
        parts = key.split(".")
        if parts[0] == "_blocks":
            renamed[f"blocks.{parts[1]}.{_BLOCK_KEYS[parts[2]]}.{parts[3]}"] = value
        else:
            renamed[_TOP_KEYS[parts[0]] + "." + parts[1]] = value
    return renamed
