"""Image loading: every odd input is converted or refused with a clear ImageError."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from heatlens import ImageError, load_image
from heatlens.images import as_batch, as_float_batch, to_display


def test_rgb_png_round_trips(tmp_path, rng):
    pixels = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), pixels)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4), mode="L").save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png")
    assert img.shape == (3, 4, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[..., 0], img[..., 2])
    assert img[2, 3, 1] == 11


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "t.png")
    img = load_image(tmp_path / "t.png")
    assert tuple(img[0, 0]) == (255, 0, 0)
    assert tuple(img[1, 1]) == (255, 255, 255)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16)).save(tmp_path / "d.png")
    img = load_image(tmp_path / "d.png")
    assert list(img[0, :, 0]) == [0, 128, 255]


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="no image file"):
        load_image(tmp_path / "nope.png")


def test_corrupt_file(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"definitely not an image")
    with pytest.raises(ImageError, match="not a readable image"):
        load_image(tmp_path / "bad.png")


def test_truncated_file(tmp_path, rng):
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated or damaged"):
        load_image(tmp_path / "cut.png")


def test_decompression_bomb(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageError, match="too large to decode safely"):
        load_image(tmp_path / "big.png")


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4, 5, 6), (4, 4, 2)])
def test_wrong_shapes_are_named(shape):
    with pytest.raises(ImageError, match=r"Received: shape="):
        load_image(np.zeros(shape, dtype=np.uint8))


def test_float_arrays_in_unit_range_are_accepted_and_others_refused():
    np.testing.assert_array_equal(load_image(np.full((2, 2, 3), 1.0)), np.full((2, 2, 3), 255))
    with pytest.raises(ImageError, match="float with values"):
        load_image(np.full((2, 2, 3), 3.0))
    with pytest.raises(ImageError, match="NaN"):
        load_image(np.full((2, 2, 3), np.nan))


def test_empty_batches_are_refused():
    with pytest.raises(ImageError, match="empty batch of shape"):
        as_batch(np.zeros((0, 4, 4, 3), np.uint8))
    with pytest.raises(ImageError, match="empty batch of shape"):
        as_float_batch(np.zeros((0, 4, 4, 3), np.float32))


def test_batch_of_mixed_sizes_is_refused():
    with pytest.raises(ImageError, match="share a size"):
        as_batch([np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 3), np.uint8)])


def test_batch_forms(rng):
    one = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    assert as_batch(one).shape == (1, 4, 5, 3)
    assert as_batch([one, one]).shape == (2, 4, 5, 3)
    assert as_batch(np.stack([one, one, one])).shape == (3, 4, 5, 3)
    with pytest.raises(ImageError, match="empty"):
        as_batch([])


def test_float_batch_checks():
    assert as_float_batch(np.zeros((4, 4, 2))).shape == (1, 4, 4, 2)
    with pytest.raises(ImageError, match="NaN or infinite"):
        as_float_batch(np.full((1, 2, 2, 3), np.inf))


def test_to_display_flat_image_is_grey():
    shown = to_display(np.zeros((1, 2, 2, 3), np.float32))
    assert shown.dtype == np.uint8 and (shown == 128).all()
