"""Framework-free preprocessing specs: uint8 RGB photos -> the float input a model was trained on.

Each spec also says which box of the original photo the model input covers, so maps computed on the
model input can be put back onto the photo pixel for pixel (outside the box the model saw nothing).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .errors import ModelError

Box = tuple[float, float, float, float]  # top, left, bottom, right in original pixel coordinates

BICUBIC_SUPPORT = 2  # bicubic reads 2 source pixels either side of a sample (times the downscale factor)
FITS = ("crop", "resize", "pad")
PAD_COLOUR = (124, 116, 104)  # ImageNet's mean RGB: after mean subtraction a padded border is (about) zero


@dataclass(frozen=True)
class ResizeCrop:
    """Bring a photo to crop x crop, then (x - mean) / std per channel. `fit` says how: 'crop' (short side
    to `resize`, bicubic, centre crop: what ImageNet models were trained on), 'resize' (the whole photo
    squeezed to crop x crop, as the Keras tutorials' load_img(target_size=) does) or 'pad' (long side to
    crop, the rest filled with PAD_COLOUR, so nothing of the photo is lost).

    `mean` and `std` apply to 0..255 pixel values, so EfficientNet-Lite's recipe is mean=127, std=128.
    The model input is resampled straight from its box in the photo (the pixels the same sampling positions
    as resizing the whole photo first), so huge or thin photos never make a resized copy of themselves.
    """

    resize: int
    crop: int
    mean: tuple[float, float, float] = (127.0, 127.0, 127.0)
    std: tuple[float, float, float] = (128.0, 128.0, 128.0)
    fit: str = "crop"

    def __post_init__(self) -> None:
        if self.fit not in FITS:
            raise ModelError(f"fit must be one of {', '.join(FITS)}. Received: {self.fit!r}")

    def with_fit(self, fit: str) -> ResizeCrop:
        """The same preprocessing with another way of fitting the photo."""
        return dataclasses.replace(self, fit=fit)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        out = np.empty((len(images), self.crop, self.crop, 3), dtype=np.float32)
        for i, img in enumerate(images):
            out[i] = np.asarray(self._resampled(img), np.float32)
        return (out - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)

    def input_box(self, height: int, width: int) -> Box:
        """The box of the photo (its own pixel coordinates) that the model input covers; with fit='pad'
        it reaches past the photo's edges."""
        if self.fit == "resize":
            return whole_image(height, width)
        if self.fit == "pad":
            rh, rw, top, left = self._padded(height, width)
            sy, sx = height / rh, width / rw
            return (-top * sy, -left * sx, (self.crop - top) * sy, (self.crop - left) * sx)
        rh, rw, top, left = self._geometry(height, width)
        sy, sx = height / rh, width / rw
        return (top * sy, left * sx, (top + self.crop) * sy, (left + self.crop) * sx)

    def _resampled(self, img: np.ndarray) -> Image.Image:
        if self.fit != "pad":
            return self._resampled_crop(img)
        h, w = img.shape[:2]
        rh, rw, top, left = self._padded(h, w)
        canvas = Image.new("RGB", (self.crop, self.crop), PAD_COLOUR)
        canvas.paste(_pil_image(img).resize((rw, rh), Image.Resampling.BICUBIC), (left, top))
        return canvas

    def _padded(self, h: int, w: int) -> tuple[int, int, int, int]:
        """(resized height, width, top, left) of the photo inside the padded square."""
        scale = self.crop / max(h, w)
        rh, rw = max(1, round(h * scale)), max(1, round(w * scale))
        return rh, rw, (self.crop - rh) // 2, (self.crop - rw) // 2

    def _resampled_crop(self, img: np.ndarray) -> Image.Image:
        """The crop box of `img` resampled to crop x crop: only the box and the filter's reach are copied."""
        h, w = img.shape[:2]
        top, left, bottom, right = self.input_box(h, w)
        reach_y = BICUBIC_SUPPORT * max(1.0, (bottom - top) / self.crop) + 1
        reach_x = BICUBIC_SUPPORT * max(1.0, (right - left) / self.crop) + 1
        y0, y1 = max(0, math.floor(top - reach_y)), min(h, math.ceil(bottom + reach_y))
        x0, x1 = max(0, math.floor(left - reach_x)), min(w, math.ceil(right + reach_x))
        region = _pil_image(img[y0:y1, x0:x1])
        box = (left - x0, top - y0, right - x0, bottom - y0)
        return region.resize((self.crop, self.crop), Image.Resampling.BICUBIC, box=box)

    def _geometry(self, h: int, w: int) -> tuple[int, int, int, int]:
        scale = self.resize / min(h, w)
        rh, rw = max(self.crop, round(h * scale)), max(self.crop, round(w * scale))
        return rh, rw, (rh - self.crop) // 2, (rw - self.crop) // 2


def _pil_image(pixels: np.ndarray, strip_pixels: int = 1 << 20) -> Image.Image:
    """An RGB uint8 array (a view, perhaps) as a Pillow image, pasted in strips of rows: no contiguous copy
    of the whole region is made on the way."""
    height, width = pixels.shape[:2]
    picture = Image.new("RGB", (width, height))
    rows = max(1, strip_pixels // width)
    for top in range(0, height, rows):
        picture.paste(Image.fromarray(np.ascontiguousarray(pixels[top : top + rows])), (0, top))
    return picture


def whole_image(height: int, width: int) -> Box:
    """The box for inputs the model sees unchanged (or resized as a whole)."""
    return (0.0, 0.0, float(height), float(width))


def scaled_box(box: Box, factor: float) -> Box:
    """The box in the coordinates of the photo resized by `factor`."""
    top, left, bottom, right = box
    return (top * factor, left * factor, bottom * factor, right * factor)


class AsGiven:
    """No preprocessing for a predict function: it receives the photos as the caller gave them (uint8 RGB at
    their own size, as lime and shap pass them); methods work on float copies, cast back before each call."""

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return images.astype(np.float32)

    def input_box(self, height: int, width: int) -> Box:
        return whole_image(height, width)
