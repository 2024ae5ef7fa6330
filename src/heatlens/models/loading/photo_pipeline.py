"""The preprocessing torchvision, timm and Hugging Face ship with a model, pixel for pixel: resize (short side or
exact size, with their interpolation), centre crop, rescale and normalise, and the box of the photo it keeps.

ResizeCrop (heatlens.preprocess) has one recipe (bicubic, its own rounding); these libraries differ in the filter,
in how the long side and the crop offset are rounded, and in the resampler (Pillow, or torch's tensor resize for
Hugging Face's default image processors), and a model is explained best on exactly the inputs it was made for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ...errors import ModelError
from ...preprocess import Box

INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS, "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING,
}
CROP_OFFSETS = ("round", "floor")  # torchvision rounds (half to even) the crop's offset; Hugging Face floors it
RESAMPLERS = ("pil", "torch")


@dataclass(frozen=True)
class PhotoPipeline:
    """Resize, centre crop, then (x * scale - mean) / std per channel, as the model's own library does it.

    resize: the short side (the long one scaled and truncated, as torchvision's Resize), an exact (h, w), or
    None. crop_size: the centre crop's (h, w), or None. scale, mean and std act on 0..255 pixels (scale 1/255
    gives torchvision's 0..1 inputs). resampler: 'pil' (Pillow, what torchvision and timm use on photos) or
    'torch' (torchvision's tensor resize with antialiasing, what Hugging Face's default processors use).
    """

    resize: int | tuple[int, int] | None
    crop_size: tuple[int, int] | None
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    scale: float = 1 / 255
    crop_offset: str = "round"
    resampler: str = "pil"
    source: str = ""  # where the recipe came from, for the notes and the manifest

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ModelError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}. "
                             f"Received: {self.interpolation!r}")
        if self.crop_offset not in CROP_OFFSETS or self.resampler not in RESAMPLERS:
            raise ModelError(f"crop_offset must be one of {CROP_OFFSETS} and resampler one of {RESAMPLERS}. "
                             f"Received: {self.crop_offset!r}, {self.resampler!r}")

    @property
    def crop(self) -> int | None:
        """The side of the square model input, when the pipeline always makes one (else None): the input size
        heatlens probes layers at, as for ResizeCrop."""
        out = self.crop_size or (self.resize if isinstance(self.resize, tuple) else None)
        return out[0] if out is not None and out[0] == out[1] else None

    @property
    def fit(self) -> str:
        """How the photo becomes the model input, in heatlens' words (see heatlens.wrap's fit=)."""
        return "resize" if isinstance(self.resize, tuple) and self.crop_size is None else "crop"

    def __call__(self, images: np.ndarray) -> np.ndarray:
        pixels = np.stack([self._resampled(img) for img in images]).astype(np.float32)
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        return (pixels * np.float32(self.scale) - mean) / std

    def input_box(self, height: int, width: int) -> Box:
        """The box of the photo (its own pixel coordinates) that the model input covers."""
        rh, rw = self._resized(height, width)
        top, left, ch, cw = self._crop_box(rh, rw)
        sy, sx = height / rh, width / rw
        return (top * sy, left * sx, (top + ch) * sy, (left + cw) * sx)

    def _resized(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) after the resize step: torchvision's rule for a short side (the long side truncated)."""
        if self.resize is None:
            return height, width
        if isinstance(self.resize, tuple):
            return self.resize
        short, long = min(height, width), max(height, width)
        other = int(self.resize * long / short)
        return (self.resize, other) if height <= width else (other, self.resize)

    def _crop_box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, crop height, crop width) in the resized photo; negative offsets where the crop pads."""
        if self.crop_size is None:
            return 0, 0, height, width
        ch, cw = self.crop_size
        return _offset(height, ch, self.crop_offset), _offset(width, cw, self.crop_offset), ch, cw

    def _resampled(self, img: np.ndarray) -> np.ndarray:
        """One photo resized and cropped, uint8 (h, w, 3), by the pipeline's resampler."""
        rh, rw = self._resized(*img.shape[:2])
        resized = self._pil_resized(img, rh, rw) if self.resampler == "pil" else self._torch_resized(img, rh, rw)
        top, left, ch, cw = self._crop_box(rh, rw)
        if top < 0 or left < 0:  # a crop larger than the resized photo pads it with black, as both libraries do
            padded = np.zeros((max(ch, rh), max(cw, rw), 3), np.uint8)
            pad_top, pad_left = max(0, -top), max(0, -left)
            padded[pad_top : pad_top + rh, pad_left : pad_left + rw] = resized
            resized, top, left = padded, max(0, top), max(0, left)
        return resized[top : top + ch, left : left + cw]

    def _pil_resized(self, img: np.ndarray, height: int, width: int) -> np.ndarray:
        if (height, width) == img.shape[:2]:
            return img
        picture = Image.fromarray(np.ascontiguousarray(img))
        return np.asarray(picture.resize((width, height), INTERPOLATIONS[self.interpolation]))

    def _torch_resized(self, img: np.ndarray, height: int, width: int) -> np.ndarray:
        from .torch_resize import resized

        return resized(img, height, width, self.interpolation)


def _offset(size: int, crop: int, rule: str) -> int:
    """Where a centre crop starts: half the difference, rounded (torchvision) or floored (Hugging Face); a crop
    larger than the image starts before it, by the padding both libraries put on the near side."""
    if crop > size:
        return -((crop - size) // 2)
    return round((size - crop) / 2) if rule == "round" else (size - crop) // 2
