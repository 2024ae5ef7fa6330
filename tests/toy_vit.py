"""A hand-built tiny vision transformer for tests: what torchvision's ViT is, at a size that runs in milliseconds."""

from __future__ import annotations

import torch
from torch import nn


class Block(nn.Module):
    """Pre-norm encoder block: x + attention(norm(x)), then x + MLP(norm(x)); the attention is torch's own
    nn.MultiheadAttention called as torchvision calls it (need_weights=False, so its fused path runs)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """Patch embedding (a strided convolution) -> class token and positions -> blocks -> norm -> linear head on
    the class token. 24x24 inputs with 4x4 patches give a 6x6 grid: 37 tokens."""

    def __init__(self, size: int = 24, patch: int = 4, dim: int = 16, heads: int = 2, depth: int = 2,
                 classes: int = 4) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, 1 + (size // patch) ** 2, dim))
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, H, W) -> tokens (N, 1 + patches, dim): the class token first."""
        patches = self.patch(x).flatten(2).transpose(1, 2)
        return torch.cat([self.cls.expand(len(x), -1, -1), patches], dim=1) + self.pos

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x)
        for block in self.blocks:
            tokens = block(tokens)
        return self.head(self.norm(tokens[:, 0]))


def tiny_vit(seed: int = 0, **sizes: int) -> TinyViT:
    """A TinyViT with seeded random weights, in eval mode."""
    torch.manual_seed(seed)
    return TinyViT(**sizes).eval()


def tiny_vit_224() -> TinyViT:
    """Factory for `--model toy_vit:tiny_vit_224`: a TinyViT for the 224x224 inputs of the default preprocessing."""
    return tiny_vit(size=224, patch=32)
