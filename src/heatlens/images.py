"""Loading and validating images: whatever comes in leaves as (N, H, W, 3) uint8 RGB."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from .errors import HeatlensError, ImageError, first_line

ImageLike = str | os.PathLike | Image.Image | np.ndarray

MAX_PIXELS = 250_000_000
"""Files that decode to more pixels are refused from their header (an ImageError), before any decoding:
250 MP is about 750 MB as RGB. Raise it here or with the environment variable HEATLENS_MAX_PIXELS."""

STRIP_PIXELS = 1 << 20  # decoded photos reach numpy in strips of about this many pixels

_PIXEL_LIMIT_LOCK = threading.Lock()


def load_image(source: ImageLike) -> np.ndarray:
    """Read one image (path, PIL image or array) as an (H, W, 3) uint8 RGB array.

    Grayscale, palette, RGBA (composited on white), CMYK and 16-bit images are converted, not rejected;
    EXIF orientation is applied (the photo as viewers show it). Arrays: see _to_uint8 for the ranges.
    """
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source, "image array")
    if isinstance(source, Image.Image):
        try:
            return _pil_to_rgb(_upright(source))
        except HeatlensError:
            raise
        except (ValueError, OSError) as exc:
            raise ImageError(f"cannot convert a PIL image of mode {source.mode!r} to RGB ({first_line(exc)}); "
                             "convert it to RGB first") from None
    if isinstance(source, str | os.PathLike):
        return _read_file(Path(source))
    raise ImageError(
        f"expected an image path, a PIL image or a numpy array. Received: {type(source).__name__}"
    )


def as_batch(images: ImageLike | Sequence[ImageLike]) -> np.ndarray:
    """Turn one image, a list of images or an (N, H, W, 3) array into an (N, H, W, 3) uint8 batch."""
    if isinstance(images, np.ndarray):
        if images.ndim == 4:
            if not len(images):
                raise ImageError(f"expected at least one image. Received: an empty batch of shape {images.shape}")
            return np.stack([_array_to_rgb(img, f"image {i}") for i, img in enumerate(images)])
        return _array_to_rgb(images, "image array")[None]
    if isinstance(images, str | os.PathLike | Image.Image):
        return load_image(images)[None]
    if isinstance(images, Sequence) and not isinstance(images, bytes):
        if not images:
            raise ImageError("expected at least one image. Received: an empty list")
        loaded = [load_image(img) for img in images]
        shapes = {img.shape for img in loaded}
        if len(shapes) > 1:
            raise ImageError(
                f"images in one batch must share a size. Received sizes {sorted(shapes)}; "
                "explain them one at a time or resize them first"
            )
        return np.stack(loaded)
    raise ImageError(f"expected an image or a list of images. Received: {type(images).__name__}")


def as_float_batch(x: Any) -> np.ndarray:
    """Validate model-ready float input (for networks wrapped with preprocess=None): (N, H, W, C) float32."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiu" or arr.ndim not in (3, 4):
        raise ImageError(
            "expected a model-ready float array of rank 3 (H, W, C) or 4 (N, H, W, C). "
            f"Received: shape={arr.shape}, dtype={arr.dtype}"
        )
    if arr.ndim == 4 and not len(arr):
        raise ImageError(f"expected at least one input. Received: an empty batch of shape {arr.shape}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise ImageError("the input array contains NaN or infinite values; clean it before explaining")
    return arr if arr.ndim == 4 else arr[None]


def to_display(x: np.ndarray) -> np.ndarray:
    """Scale any (N, H, W, C) array to uint8 RGB for display (min-max per image; a flat image is grey)."""
    if x.dtype == np.uint8 and x.shape[-1] == 3:
        return x
    x = x.astype(np.float32)
    if x.shape[-1] != 3:
        x = np.repeat(x.mean(axis=-1, keepdims=True), 3, axis=-1)
    lo = x.min(axis=(1, 2, 3), keepdims=True)
    span = x.max(axis=(1, 2, 3), keepdims=True) - lo
    scaled = np.where(span > 0, (x - lo) / np.where(span > 0, span, 1), 0.5)
    return (scaled * 255).round().astype(np.uint8)


def output_folder(directory: str | os.PathLike) -> Path:
    """The folder results are written into, created if missing; a clear error where it cannot be."""
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise ImageError(f"cannot write results into '{out}': it is a file, not a folder; choose another path")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImageError(f"cannot create the output folder '{out}': {exc.strerror or exc}") from None
    return out


def max_pixels() -> int:
    """The most pixels (width x height) a file may decode to: $HEATLENS_MAX_PIXELS, else MAX_PIXELS."""
    text = os.environ.get("HEATLENS_MAX_PIXELS")
    if text is None:
        return MAX_PIXELS
    try:
        limit = int(text.replace("_", ""))
    except ValueError:
        limit = 0
    if limit < 1:
        raise ImageError(f"HEATLENS_MAX_PIXELS must be a positive whole number of pixels. Received: {text!r}")
    return limit


def _read_file(path: Path) -> np.ndarray:
    """Decode a file, refusing from its header alone images over max_pixels(); every decoder failure
    (corrupt, truncated, oversized metadata) becomes one ImageError line that names the file."""
    if not path.is_file():
        raise ImageError(f"no image file at '{path}': check the path")
    limit = max_pixels()
    try:
        with _open_without_pillow_limit(path) as img:
            width, height = img.size
            if width * height > limit:
                raise ImageError(
                    f"'{path}' is {width}x{height} ({width * height / 1e6:.1f} MP), over heatlens' limit of "
                    f"{limit / 1e6:.1f} MP decoded pixels: downscale it, or raise HEATLENS_MAX_PIXELS"
                )
            img.load()
            return _pil_to_rgb(_upright(img), f"'{path}'")
    except HeatlensError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"'{path}' is not a readable image (unknown or corrupt format)") from None
    except MemoryError:
        raise ImageError(f"'{path}' is too large to decode in the memory available: downscale it first") from None
    except Exception as exc:  # Pillow's decoders raise many types (OSError, SyntaxError, ...) on damaged files
        if isinstance(exc, ValueError) and "too large" in str(exc).lower():
            raise ImageError(f"'{path}' has a metadata chunk (text or ICC profile) over Pillow's safety limit: "
                             "re-save the image without its metadata") from None
        raise ImageError(f"'{path}' could not be decoded, the file looks truncated or damaged: "
                         f"{first_line(exc)}") from None


def _open_without_pillow_limit(path: Path) -> Image.Image:
    """Image.open with Pillow's process-wide decompression-bomb limit lifted for the call (it refuses files
    over 89.5 MP before their size can be read); heatlens applies max_pixels() from the header instead."""
    with _PIXEL_LIMIT_LOCK:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _upright(img: Image.Image) -> Image.Image:
    """The image as viewers show it: turned by its EXIF orientation where it has one (a new image then;
    without one the same image, not a photo-sized copy)."""
    if img.getexif().get(ExifTags.Base.Orientation, 1) == 1:
        return img
    return ImageOps.exif_transpose(img)


def _pil_to_rgb(img: Image.Image, what: str = "image") -> np.ndarray:
    """Any Pillow mode -> RGB uint8. 16-bit modes scale by 65535; 'I' (32-bit) must hold 16-bit values;
    'F' (32-bit float) must be 0..1, as float arrays."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return _array_to_rgb(np.asarray(img).astype(np.uint16), what)
    if img.mode == "I":
        return _array_to_rgb(_sixteen_bit(np.asarray(img), f"{what} (32-bit integer mode 'I')"), what)
    if img.mode == "F":
        return _array_to_rgb(np.asarray(img), f"{what} (float mode 'F')")
    return _in_strips(img, _rgb_strip)


def _rgb_strip(img: Image.Image) -> np.ndarray:
    if img.mode == "La":  # premultiplied grey + alpha: Pillow converts it only to LA
        img = img.convert("LA")
    if img.mode in ("RGBA", "RGBa", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(img if img.mode == "RGB" else img.convert("RGB"))


def _in_strips(img: Image.Image, convert: Callable[[Image.Image], np.ndarray]) -> np.ndarray:
    """convert(img) done in strips of rows into one array: Pillow's converted copies and tobytes() (which
    holds the pixels twice) then cost a strip, not the photo."""
    width, height = img.size
    rows = max(1, STRIP_PIXELS // width)
    if height <= rows:
        return convert(img)
    out = np.empty((height, width, 3), dtype=np.uint8)
    for top in range(0, height, rows):
        out[top : top + rows] = convert(img.crop((0, top, width, min(height, top + rows))))
    return out


def _sixteen_bit(arr: np.ndarray, what: str) -> np.ndarray:
    """Pillow's 'I' mode holds 16-bit files (and 32-bit ones): values must fit 0..65535 to be read as 16-bit."""
    if arr.min(initial=0) < 0 or arr.max(initial=0) > 65535:
        raise ImageError(f"{what} has values outside 0..65535; convert it to 8- or 16-bit first")
    return arr.astype(np.uint16)


def _array_to_rgb(arr: np.ndarray, what: str) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) of a supported dtype (see _to_uint8) -> (H, W, 3) uint8."""
    if arr.ndim == 3 and arr.shape[-1] in (1, 3, 4):
        channels = arr.shape[-1]
    elif arr.ndim == 2:
        channels = 0
    else:
        raise ImageError(
            f"expected {what} of shape (H, W), (H, W, 3) or (N, H, W, 3). Received: shape={arr.shape}"
        )
    if min(arr.shape[:2]) < 1:
        raise ImageError(f"{what} is empty: shape={arr.shape}")
    arr = _to_uint8(arr, what)
    if channels == 0:
        arr = arr[..., None]
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    if arr.shape[-1] == 4:
        alpha = arr[..., 3:].astype(np.float32) / 255
        arr = (arr[..., :3] * alpha + 255 * (1 - alpha)).round().astype(np.uint8)
    return np.ascontiguousarray(arr)


def _to_uint8(arr: np.ndarray, what: str) -> np.ndarray:
    """The dtype sets the range, never the data: uint8 as is; uint16 is 16-bit (0..65535 -> 0..255, so a dark
    16-bit image stays dark); other integers must be 0..255; bool is 0/255; floats must be 0..1."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if arr.dtype == np.uint16:
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if arr.dtype.kind in "ui":
        if arr.min(initial=0) < 0 or arr.max(initial=0) > 255:
            raise ImageError(
                f"{what} is {arr.dtype} with values in [{arr.min()}, {arr.max()}]; expected 0..255 "
                "(convert 16-bit data to uint16, anything else to uint8 RGB)"
            )
        return arr.astype(np.uint8)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ImageError(f"{what} contains NaN or infinite values")
        if arr.min() < 0 or arr.max() > 1:
            raise ImageError(
                f"{what} is float with values in [{arr.min():.3g}, {arr.max():.3g}]; expected uint8 0..255 "
                "or float 0..1 (for model-ready inputs wrap the model with preprocess=None)"
            )
        return (arr * 255).round().astype(np.uint8)
    raise ImageError(f"{what} has unsupported dtype {arr.dtype}: expected uint8 RGB")
