"""Framework-free preprocessing specs: uint8 RGB photos -> the float input a model was trained on.

Each spec also says which box of the original photo the model input covers, so maps computed on the
model input can be put back onto the photo pixel for pixel (outside the box the model saw nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

Box = tuple[float, float, float, float]  # top, left, bottom, right in original pixel coordinates


@dataclass(frozen=True)
class ResizeCrop:
    """Resize the short side to `resize` (bicubic), centre-crop `crop`, then (x - mean) / std per channel.

    `mean` and `std` apply to 0..255 pixel values, so EfficientNet-Lite's recipe is mean=127, std=128.
    """

    resize: int
    crop: int
    mean: tuple[float, float, float] = (127.0, 127.0, 127.0)
    std: tuple[float, float, float] = (128.0, 128.0, 128.0)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        out = np.empty((len(images), self.crop, self.crop, 3), dtype=np.float32)
        for i, img in enumerate(images):
            h, w = img.shape[:2]
            rh, rw, top, left = self._geometry(h, w)
            resized = Image.fromarray(img).resize((rw, rh), Image.Resampling.BICUBIC)
            out[i] = np.asarray(resized.crop((left, top, left + self.crop, top + self.crop)), np.float32)
        return (out - np.float32(self.mean)) / np.float32(self.std)

    def input_box(self, height: int, width: int) -> Box:
        rh, rw, top, left = self._geometry(height, width)
        sy, sx = height / rh, width / rw
        return (top * sy, left * sx, (top + self.crop) * sy, (left + self.crop) * sx)

    def _geometry(self, h: int, w: int) -> tuple[int, int, int, int]:
        scale = self.resize / min(h, w)
        rh, rw = max(self.crop, round(h * scale)), max(self.crop, round(w * scale))
        return rh, rw, (rh - self.crop) // 2, (rw - self.crop) // 2


def whole_image(height: int, width: int) -> Box:
    """The box for inputs the model sees unchanged (or resized as a whole)."""
    return (0.0, 0.0, float(height), float(width))
