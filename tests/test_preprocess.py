"""ResizeCrop: the crop is resampled straight from the photo, equal to resizing the whole photo first."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from heatlens.preprocess import ResizeCrop

SPEC = ResizeCrop(resize=256, crop=224, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def _resize_then_crop(img: np.ndarray) -> np.ndarray:
    """The recipe done the plain way with Pillow: short side to 256 (bicubic), centre crop 224."""
    h, w = img.shape[:2]
    rh, rw = max(224, round(h * 256 / min(h, w))), max(224, round(w * 256 / min(h, w)))
    top, left = (rh - 224) // 2, (rw - 224) // 2
    resized = Image.fromarray(img).resize((rw, rh), Image.Resampling.BICUBIC)
    return np.asarray(resized.crop((left, top, left + 224, top + 224)), np.float32)


@pytest.mark.parametrize("shape", [(300, 451), (480, 640), (37, 100), (1100, 1500), (5, 900), (257, 256), (900, 3)])
def test_crop_matches_resizing_the_whole_photo(rng, shape):
    """Equal within one grey level (Pillow's two-pass rounding), nearly everywhere exactly."""
    img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    ours = SPEC(img[None])[0]
    plain = _resize_then_crop(img)
    assert np.abs(ours - plain).max() <= 1
    assert np.mean(ours != plain) < 1e-3


def test_input_box_is_where_the_crop_comes_from(rng):
    """A photo with one bright square in the box's corner: the model input sees it at the corner."""
    img = np.zeros((400, 600, 3), np.uint8)
    top, left, *_ = SPEC.input_box(400, 600)
    img[round(top) : round(top) + 40, round(left) : round(left) + 40] = 255
    x = SPEC(img[None])[0]
    assert x[3:20, 3:20].min() > 250 and x[40:, 40:].max() < 5 and x[:, 30:].max() < 5


@pytest.mark.parametrize("shape", [(1, 30000), (30000, 1), (1, 10000), (2, 7000)])
def test_thin_photos_make_no_huge_resize(shape):
    """Resizing a 1 x 30000 photo's short side to 256 first would need about 6 GB; in a process capped at
    1.5 GB of address space beyond numpy and Pillow, the crop must still be made, and be the photo's colour."""
    code = f"""
import resource, numpy as np
from heatlens.preprocess import ResizeCrop
img = np.full({shape} + (3,), 77, np.uint8)
resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))
x = ResizeCrop(256, 224, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))(img[None])
assert x.shape == (1, 224, 224, 3) and np.abs(x - 77).max() < 1, (x.shape, x.min(), x.max())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
