"""Image loading: every odd input is converted or refused with a clear ImageError."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFile, PngImagePlugin

import heatlens.images
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


def test_dark_sixteen_bit_file_stays_dark(tmp_path):
    """The scale comes from the mode (16-bit: 0..65535), never from the brightest pixel."""
    Image.fromarray(np.array([[0, 100, 200, 255]], dtype=np.uint16)).save(tmp_path / "dark.png")
    assert Image.open(tmp_path / "dark.png").mode.startswith("I;16")
    assert list(load_image(tmp_path / "dark.png")[0, :, 0]) == [0, 0, 1, 1]


def test_uint16_arrays_scale_by_65535_whatever_their_values():
    for values in (np.array([[0, 100, 255]], np.uint16), np.array([[0, 257, 40000, 65535]], np.uint16)):
        expected = np.round(values.astype(np.float64) * 255 / 65535)
        np.testing.assert_array_equal(load_image(values)[..., 0], expected)


def test_mode_i_holds_sixteen_bit_values_and_refuses_others():
    assert list(load_image(Image.fromarray(np.array([[0, 514, 65535]], np.int32)))[0, :, 0]) == [0, 2, 255]
    with pytest.raises(ImageError, match=r"mode 'I'.*outside 0\.\.65535"):
        load_image(Image.fromarray(np.array([[-1, 70000]], np.int32)))


def test_mode_f_is_read_as_unit_floats():
    assert list(load_image(Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32)))[0, :, 0]) == [0, 128, 255]
    with pytest.raises(ImageError, match=r"mode 'F'.*float with values"):
        load_image(Image.fromarray(np.array([[0.0, 3.0]], np.float32)))


def test_other_integer_arrays_must_be_eight_bit_values():
    np.testing.assert_array_equal(load_image(np.array([[0, 7, 255]]))[..., 0], [[0, 7, 255]])
    with pytest.raises(ImageError, match=r"int64 with values in \[0, 300\].*uint16"):
        load_image(np.array([[0, 300]]))


def test_exif_orientation_is_applied(tmp_path, rng):
    """Orientation 6 means 'rotate 90 degrees clockwise to show': the loaded photo is the shown one."""
    pixels = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(tmp_path / "turned.png", exif=exif)
    np.testing.assert_array_equal(load_image(tmp_path / "turned.png"), np.rot90(pixels, k=-1))
    np.testing.assert_array_equal(load_image(Image.open(tmp_path / "turned.png")), np.rot90(pixels, k=-1))


@pytest.mark.parametrize("mode", ["La", "RGBa"])
def test_premultiplied_alpha_is_composited_on_white(mode):
    """Pillow's premultiplied modes: a transparent pixel shows white, an opaque one its own colour."""
    rgba = np.array([[[200, 40, 90, 255], [10, 20, 30, 0]]], dtype=np.uint8)
    picture = Image.fromarray(rgba, mode="RGBA")
    picture = picture.convert("LA").convert("La") if mode == "La" else picture.convert("RGBa")
    shown = load_image(picture)
    assert tuple(shown[0, 1]) == (255, 255, 255)
    opaque = (200, 40, 90) if mode == "RGBa" else (round(0.299 * 200 + 0.587 * 40 + 0.114 * 90),) * 3
    assert np.abs(shown[0, 0].astype(int) - opaque).max() <= 1


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="no image file"):
        load_image(tmp_path / "nope.png")


def _png(pixels: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", **options)
    return buffer.getvalue()


def _encoded(pixels: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()


def _damaged_files(rng) -> dict[str, bytes]:
    pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    png, gif, jpeg = _png(pixels), _encoded(pixels, "GIF"), _encoded(pixels, "JPEG")
    idat = png.index(b"IDAT") + 8
    scrambled = png[:idat] + bytes(rng.integers(0, 256, 200, dtype=np.uint8)) + png[idat + 200 :]
    text = PngImagePlugin.PngInfo()
    text.add_text("comment", "x" * (2 << 20), zip=True)
    return {
        "empty.png": b"",
        "notes.png": b"just some text, not pixels",
        "cut.png": png[: len(png) // 2],
        "scrambled.png": scrambled,
        "cut.gif": gif[: len(gif) // 2],
        "header.gif": gif[:20],
        "cut.jpg": jpeg[: len(jpeg) // 3],
        "header.jpg": jpeg[:200],
        "big-text.png": _png(pixels, pnginfo=text),
        "big-icc.png": _png(pixels, icc_profile=bytes(2 << 20)),
    }


def test_damaged_files_give_one_line_naming_the_file(tmp_path, rng):
    for name, data in _damaged_files(rng).items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ImageError) as info:
            load_image(tmp_path / name)
        message = str(info.value)
        assert "\n" not in message and f"'{tmp_path / name}'" in message, (name, message)


def test_damage_is_described(tmp_path, rng):
    files = _damaged_files(rng)
    expected = {"empty.png": "not a readable image", "notes.png": "not a readable image",
                "cut.png": "truncated or damaged", "big-text.png": "metadata chunk", "big-icc.png": "metadata chunk"}
    for name, phrase in expected.items():
        (tmp_path / name).write_bytes(files[name])
        with pytest.raises(ImageError, match=phrase):
            load_image(tmp_path / name)


def test_a_wrong_extension_is_read_by_content(tmp_path, rng):
    pixels = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    (tmp_path / "really-a-png.jpg").write_bytes(_png(pixels))
    np.testing.assert_array_equal(load_image(tmp_path / "really-a-png.jpg"), pixels)


def test_pillow_bomb_limit_no_longer_decides(tmp_path, monkeypatch):
    """Files over Pillow's MAX_IMAGE_PIXELS (89.5 MP by default) load up to heatlens' own limit, and
    Pillow's setting is left as it was."""
    Image.fromarray(np.full((40, 40, 3), 9, dtype=np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert (load_image(tmp_path / "big.png") == 9).all()
    assert Image.MAX_IMAGE_PIXELS == 100


def test_pixel_limit_is_checked_from_the_header(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((40, 50, 3), dtype=np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(heatlens.images, "MAX_PIXELS", 1999)

    def no_decoding(self):
        raise AssertionError("decoded although over the limit")

    with monkeypatch.context() as patch:
        patch.setattr(ImageFile.ImageFile, "load", no_decoding)
        with pytest.raises(ImageError, match=r"50x40 \(0\.0 MP\), over heatlens' limit.*HEATLENS_MAX_PIXELS"):
            load_image(tmp_path / "big.png")
    monkeypatch.setenv("HEATLENS_MAX_PIXELS", "2000")
    assert load_image(tmp_path / "big.png").shape == (40, 50, 3)
    monkeypatch.setenv("HEATLENS_MAX_PIXELS", "lots")
    with pytest.raises(ImageError, match="HEATLENS_MAX_PIXELS must be a positive whole number"):
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


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "L", "CMYK", "LA"])
def test_decoding_in_strips_equals_one_conversion(tmp_path, rng, monkeypatch, mode):
    """Photos reach numpy a strip of rows at a time (Pillow's tobytes holds a photo twice): the strips
    join into exactly what converting the whole image at once gives."""
    picture = Image.fromarray(rng.integers(0, 256, (37, 50, 4), dtype=np.uint8), mode="RGBA")
    picture = picture if mode == "RGBA" else picture.convert(mode)
    if mode == "P":
        picture.info["transparency"] = 7
    whole = load_image(picture)
    monkeypatch.setattr(heatlens.images, "STRIP_PIXELS", 100)
    np.testing.assert_array_equal(load_image(picture), whole)
