"""Photo resizing as torchvision's tensor ops do it (uint8, antialiased): the resampler of Hugging Face's default
image processors, which differs from Pillow's by a grey level here and there."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional

MODES = {
    "nearest": InterpolationMode.NEAREST_EXACT, "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC, "lanczos": InterpolationMode.LANCZOS, "box": InterpolationMode.BOX,
    "hamming": InterpolationMode.HAMMING,
}


def resized(img: np.ndarray, height: int, width: int, interpolation: str) -> np.ndarray:
    """A uint8 (H, W, 3) photo resized to (height, width) by torchvision on the CPU, as uint8 (h, w, 3)."""
    if (height, width) == img.shape[:2]:
        return img
    tensor = torch.from_numpy(np.require(img, requirements=["C", "W"])).permute(2, 0, 1)  # torch wants it writable
    out = functional.resize(tensor, [height, width], interpolation=MODES[interpolation], antialias=True)
    return out.permute(1, 2, 0).numpy()
