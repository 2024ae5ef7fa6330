"""ResizeCrop: the crop is resampled straight from the photo, equal to resizing the whole photo first."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from heatlens.overlay import upsample
from heatlens.preprocess import PAD_COLOUR, ResizeCrop

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
from heatlens.overlay import upsample
from heatlens.preprocess import PAD_COLOUR, ResizeCrop
img = np.full({shape} + (3,), 77, np.uint8)
resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20))
x = ResizeCrop(256, 224, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))(img[None])
assert x.shape == (1, 224, 224, 3) and np.abs(x - 77).max() < 1, (x.shape, x.min(), x.max())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_fit_resize_squeezes_the_whole_photo_as_keras_load_img_does(rng):
    img = rng.integers(0, 256, (300, 451, 3), dtype=np.uint8)
    ours = SPEC.with_fit("resize")(img[None])[0]
    theirs = np.asarray(Image.fromarray(img).resize((224, 224), Image.Resampling.BICUBIC), np.float32)
    assert np.abs(ours - theirs).max() <= 1
    assert SPEC.with_fit("resize").input_box(300, 451) == (0.0, 0.0, 300.0, 451.0)


def test_fit_pad_keeps_the_whole_photo_inside_a_border_that_the_box_reaches_past(rng):
    img = rng.integers(0, 256, (300, 450, 3), dtype=np.uint8)
    padded = SPEC.with_fit("pad")
    ours = padded(img[None])[0]
    inside = np.asarray(Image.fromarray(img).resize((224, 149), Image.Resampling.BICUBIC), np.float32)
    np.testing.assert_array_equal(ours[37 : 37 + 149], inside)
    np.testing.assert_array_equal(ours[:37], np.broadcast_to(np.float32(PAD_COLOUR), (37, 224, 3)))
    top, left, bottom, right = padded.input_box(300, 450)
    np.testing.assert_allclose([top, left, bottom, right], [-37 * 300 / 149, 0, (224 - 37) * 300 / 149, 450])
    ones_on_the_photo = np.zeros((224, 224), np.float32)
    ones_on_the_photo[37 : 37 + 149] = 1
    back = upsample(ones_on_the_photo[None], (300, 450), padded.input_box(300, 450))[0]
    assert back[2:-2].min() > 0.99  # the photo's own part of the input lands on the whole photo


def test_fit_is_checked_and_applies_only_to_heatlens_resizing():
    import heatlens

    with pytest.raises(heatlens.ModelError, match=r"fit must be one of crop, resize, pad\. Received: 'squash'"):
        heatlens.wrap(lambda x: x, preprocess="imagenet", fit="squash")
    with pytest.raises(heatlens.ModelError, match="fit='pad' applies to heatlens' own resizing"):
        heatlens.wrap(lambda x: x.reshape(len(x), -1), fit="pad")
    network = heatlens.wrap(lambda x: x.reshape(len(x), -1), preprocess="imagenet")
    assert heatlens.wrap(network, fit="resize").preprocess.fit == "resize" and network.preprocess.fit == "crop"


def test_a_fitted_network_keeps_its_fit_through_explain(rng):
    import heatlens

    network = heatlens.wrap(lambda x: x.reshape(len(x), -1)[:, :2], preprocess="imagenet", fit="resize")
    result = heatlens.explain(network, rng.integers(0, 256, (30, 50, 3), dtype=np.uint8), method="occlusion",
                              window=112, stride=112, target=0)
    assert result.input_box == (0.0, 0.0, 30.0, 50.0)
