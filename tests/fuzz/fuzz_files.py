"""The image files the file campaign feeds heatlens: every PIL mode in every format Pillow writes, EXIF
orientations, 16-bit greys, crafted PNGs (decompression bombs, huge text and ICC chunks, huge and thin
sizes) and odd paths; and the mutations applied to them (truncation, flipped bytes, wrong extensions)."""

from __future__ import annotations

import hashlib
import struct
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fuzz_ledger import Case, time_limit
from PIL import Image, ImageOps

import heatlens

CAMPAIGN = "files"
LIMIT_S = 60.0

MODES = ["1", "L", "P", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "I", "F", "LA", "PA", "RGBX", "RGBa", "La",
         "I;16", "I;16L", "I;16B", "I;16N"]
FORMATS = {"png": "PNG", "jpg": "JPEG", "bmp": "BMP", "gif": "GIF", "tif": "TIFF", "webp": "WEBP", "ppm": "PPM",
           "tga": "TGA", "ico": "ICO", "pcx": "PCX", "sgi": "SGI", "im": "IM", "jp2": "JPEG2000", "qoi": "QOI",
           "dds": "DDS", "xbm": "XBM", "msp": "MSP", "pdf": "PDF", "eps": "EPS", "spi": "SPIDER", "blp": "BLP"}
SIZES = [(5, 3), (64, 48), (1, 1), (1, 300), (300, 1), (33, 65)]  # (height, width)
LOSSLESS = {"png", "bmp", "tif", "ppm", "tga", "pcx", "sgi", "im", "qoi"}


@dataclass
class ImageFile:
    """A file of the corpus: where it is, how it was made, and what a correct reading gives."""

    path: Path
    label: str
    size: tuple[int, int] | None = None  # (H, W) after EXIF orientation; None: no claim
    reference: Callable[[], np.ndarray] | None = None  # the RGB pixels a correct reading gives
    must_refuse: bool = False  # a file no reading may accept (a bomb over any sane limit)


def _pixels(mode: str, h: int, w: int, rng: np.random.Generator) -> Image.Image:
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if mode.startswith("I;16"):
        return Image.fromarray(rng.integers(0, 65536, (h, w)).astype(np.uint16)).convert(mode) \
            if mode != "I;16" else Image.fromarray(rng.integers(0, 65536, (h, w)).astype(np.uint16))
    if mode == "I":
        return Image.fromarray(rng.integers(0, 65536, (h, w)).astype(np.int32))
    if mode == "F":
        return Image.fromarray(rng.random((h, w), dtype=np.float32))
    if mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        rgba = np.concatenate([rgb, rng.integers(0, 256, (h, w, 1), dtype=np.uint8)], axis=-1)
        return Image.fromarray(rgba, "RGBA").convert(mode) if mode != "RGBA" else Image.fromarray(rgba, "RGBA")
    base = Image.fromarray(rgb)
    return base.convert(mode) if mode != "RGB" else base


def pil_images(rng: np.random.Generator) -> list[tuple[str, Image.Image]]:
    """In-memory PIL images of every mode and a few sizes."""
    out = []
    for i, mode in enumerate(MODES):
        for h, w in (SIZES[i % len(SIZES)], (7, 9)):
            try:
                out.append((f"PIL {mode} {w}x{h}", _pixels(mode, h, w, rng)))
            except (ValueError, OSError, TypeError):
                continue
    return out


def reference_rgb(path: Path) -> np.ndarray | None:
    """The pixels a correct reader gives, read by Pillow directly: EXIF-oriented, alpha on white, 16-bit
    greys scaled by the mode's range (65535), others converted by Pillow; None for modes with no one answer."""
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        mode = img.mode
        if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
            grey = np.asarray(img).astype(np.float64) * 255 / 65535
            return np.repeat(np.round(grey).astype(np.uint8)[..., None], 3, axis=-1)
        if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
        if mode in ("1", "L", "P", "RGB", "CMYK", "YCbCr"):
            return np.asarray(img.convert("RGB"))
    return None


def saved_files(folder: Path, rng: np.random.Generator) -> list[ImageFile]:
    """Every (mode, format) pair Pillow can write, in one of SIZES each."""
    files = []
    for i, mode in enumerate(MODES):
        for j, (ext, fmt) in enumerate(FORMATS.items()):
            h, w = SIZES[(i + j) % len(SIZES)]
            path = folder / f"{mode.replace(';', '_')}-{w}x{h}.{ext}"
            try:
                _pixels(mode, h, w, rng).save(path, fmt)
            except (ValueError, OSError, KeyError, TypeError, AttributeError, struct.error):
                path.unlink(missing_ok=True)
                continue
            try:
                reference = reference_rgb(path) if ext in LOSSLESS else None
            except (OSError, ValueError, SyntaxError):
                reference = None
            size = None if ext == "ico" else (h, w)  # ICO files hold standard icon sizes
            files.append(ImageFile(path, f"{mode} {fmt} {w}x{h}", size,
                                   (lambda r=reference: r) if reference is not None else None))
    return files


def exif_files(folder: Path, rng: np.random.Generator) -> list[ImageFile]:
    """A 20 x 40 photo in JPEG and PNG with every EXIF orientation, and invalid ones."""
    files = []
    pixels = rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)
    for fmt, ext in (("JPEG", "jpg"), ("PNG", "png")):
        for orientation in (1, 2, 3, 4, 5, 6, 7, 8, 0, 9, 65535):
            exif = Image.Exif()
            exif[0x0112] = orientation
            path = folder / f"exif-{orientation}.{ext}"
            Image.fromarray(pixels).save(path, fmt, exif=exif)
            turned = orientation in (5, 6, 7, 8)
            reference = reference_rgb(path) if fmt == "PNG" else None
            files.append(ImageFile(path, f"{fmt} EXIF orientation {orientation}", (40, 20) if turned else (20, 40),
                                   (lambda r=reference: r) if reference is not None else None))
    return files


def sixteen_bit_files(folder: Path) -> list[ImageFile]:
    """16-bit greyscale PNGs whose values are low, mid and full range: scaling must follow the mode."""
    files = []
    for top in (200, 255, 256, 40000, 65535):
        values = np.linspace(0, top, 12 * 10).reshape(12, 10).astype(np.uint16)
        path = folder / f"grey16-max{top}.png"
        Image.fromarray(values).save(path)
        files.append(ImageFile(path, f"16-bit grey PNG, values 0..{top}", (12, 10),
                               lambda p=path: reference_rgb(p)))
    return files


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def crafted_png(width: int, height: int, *, bit_depth: int = 8, colour: int = 0, chunks: tuple[bytes, ...] = (),
                rows: bool = True) -> bytes:
    """A PNG written byte by byte: zero rows streamed through zlib (bombs stay small), extra chunks first;
    rows=False writes a short IDAT only (a header that promises more than the file holds)."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    row = (width * channels * bit_depth + 7) // 8 + 1
    packer = zlib.compressobj(9)
    if rows:
        block = b"\0" * min(row * height, 1 << 22)
        left = row * height
        body = []
        while left > 0:
            piece = block[: min(left, len(block))]
            body.append(packer.compress(piece))
            left -= len(piece)
        idat = b"".join(body) + packer.flush()
    else:
        idat = packer.compress(b"\0" * 1000) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + b"".join(chunks) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


def crafted_files(folder: Path) -> list[ImageFile]:
    """Bombs, huge text and ICC chunks, huge and thin sizes, animated files, odd paths and non-images."""
    made: list[ImageFile] = []

    def write(name: str, data: bytes, label: str, size: tuple[int, int] | None = None,
              must_refuse: bool = False) -> None:
        path = folder / name
        path.write_bytes(data)
        made.append(ImageFile(path, label, size, None, must_refuse))

    big_text = zlib.compress(b"a" * (16 << 20), 9)
    big_icc = zlib.compress(b"\0" * (64 << 20), 9)
    write("bomb-20000.png", crafted_png(20000, 20000), "PNG bomb 20000x20000 grey (400 MP)", must_refuse=True)
    write("bomb-1bit-60000.png", crafted_png(60000, 60000, bit_depth=1, rows=False),
          "PNG 1-bit 60000x60000 header, short data", must_refuse=True)
    write("bomb-rgba-header.png", crafted_png(2**31 - 1, 2**31 - 1, colour=6, rows=False),
          "PNG RGBA (2**31-1)^2 header", must_refuse=True)
    write("ztxt-16mb.png", crafted_png(8, 8, chunks=(png_chunk(b"zTXt", b"Comment\0\0" + big_text),)),
          "PNG 8x8 with a zTXt chunk inflating to 16 MB", (8, 8))
    write("itxt-16mb.png", crafted_png(8, 8, chunks=(png_chunk(b"iTXt", b"Comment\0\1\0\0\0" + big_text),)),
          "PNG 8x8 with a compressed iTXt chunk inflating to 16 MB", (8, 8))
    write("text-3mb.png", crafted_png(8, 8, chunks=(png_chunk(b"tEXt", b"Comment\0" + b"b" * (3 << 20)),)),
          "PNG 8x8 with a 3 MB tEXt chunk", (8, 8))
    inflating = zlib.compress(b"c" * 900_000, 9)
    write("many-ztxt.png", crafted_png(8, 8, chunks=tuple(png_chunk(b"zTXt", b"k%d\0\0" % i + inflating)
                                                          for i in range(80))),
          "PNG 8x8 with 80 zTXt chunks inflating to 0.9 MB each", (8, 8))
    write("icc-64mb.png", crafted_png(8, 8, chunks=(png_chunk(b"iCCP", b"icc\0\0" + big_icc),)),
          "PNG 8x8 with an iCCP profile inflating to 64 MB", (8, 8))
    write("bad-crc.png", crafted_png(8, 8)[:-5] + b"\0\0\0\0\0", "PNG with a broken IEND CRC", (8, 8))
    write("zero-width.png", crafted_png(0, 8, rows=False), "PNG 0x8 header")
    write("thin-1x20000.png", crafted_png(20000, 1), "PNG 1x20000 grey", (1, 20000))
    write("thin-20000x1.png", crafted_png(1, 20000), "PNG 20000x1 grey", (20000, 1))
    write("huge-6000.png", crafted_png(6000, 6000, colour=2), "PNG 6000x6000 RGB (36 MP)", (6000, 6000))
    write("gif-screen-bomb.gif", _gif(65535, 65535), "GIF with a 65535x65535 screen and a 1x1 frame",
          must_refuse=True)
    write("tiff-claims.tif", _tiff_header(50000, 50000), "TIFF header claiming 50000x50000, no strips",
          must_refuse=True)
    write("empty.png", b"", "zero-byte .png")
    write("text.png", b"hello, I am not a picture\n" * 20, "text named .png")
    write("html.jpg", b"<!DOCTYPE html><html><body>404</body></html>", "HTML named .jpg")
    write("svg.png", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "SVG named .png")
    write("signature-only.png", b"\x89PNG\r\n\x1a\n", "PNG signature only")
    write("jpeg-soi-only.jpg", b"\xff\xd8\xff", "JPEG start-of-image only")
    write("ünïcødé ².png", _png_bytes(np.full((6, 7, 3), 99, np.uint8)), "unicode file name", (6, 7))
    write("no-extension", _png_bytes(np.full((6, 7, 3), 50, np.uint8)), "PNG without an extension", (6, 7))
    frames = [Image.fromarray(np.full((9, 11, 3), v, np.uint8)) for v in (0, 120, 255)]
    for name, fmt in (("animated.gif", "GIF"), ("animated.png", "PNG"), ("multipage.tif", "TIFF")):
        frames[0].save(folder / name, fmt, save_all=True, append_images=frames[1:])
        made.append(ImageFile(folder / name, f"3-frame {fmt}", (9, 11)))
    palette = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(6, 8)).convert("P")
    palette.save(folder / "palette-transparent.png", transparency=5)
    made.append(ImageFile(folder / "palette-transparent.png", "palette PNG with a transparent index", (6, 8),
                          lambda: reference_rgb(folder / "palette-transparent.png")))
    (folder / "a-folder.png").mkdir(exist_ok=True)
    made.append(ImageFile(folder / "a-folder.png", "a folder named .png"))
    made.append(ImageFile(folder / "missing.png", "a path that does not exist"))
    return made


def _png_bytes(rgb: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()


def _gif(width: int, height: int) -> bytes:
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return screen + frame + b"\x3b"


def _tiff_header(width: int, height: int) -> bytes:
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 0), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, width * height)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\0\0\0\0"
    return b"II*\0" + struct.pack("<I", 8) + ifd


# ---------------------------------------------------------------- mutations

MUTATIONS = ["truncate", "truncate header", "flip bytes", "flip header bytes", "zero bytes", "random bytes",
             "wrong extension", "append garbage", "insert bytes", "swap magic", "duplicate half"]
MAGICS = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"II*\0", b"MM\0*", b"RIFF\0\0\0\0WEBP"]


def mutate(data: bytes, how: str, rng: np.random.Generator) -> tuple[bytes, str, str | None]:
    """(new bytes, a repro label, a new extension or None) for one mutation of a file's bytes."""
    n = len(data)
    if how == "truncate":
        cut = int(rng.integers(0, max(n, 1)))
        return data[:cut], f"truncated to {cut} of {n} bytes", None
    if how == "truncate header":
        cut = int(rng.integers(0, min(n, 64) + 1))
        return data[:cut], f"truncated to {cut} bytes", None
    if how in ("flip bytes", "flip header bytes"):
        out = bytearray(data)
        span = n if how == "flip bytes" else min(n, 64)
        count = int(rng.integers(1, 21))
        for pos in rng.integers(0, max(span, 1), count):
            if pos < n:
                out[pos] ^= int(rng.integers(1, 256))
        return bytes(out), f"{count} random bytes of the first {span} flipped", None
    if how == "zero bytes":
        return b"", "zero bytes", None
    if how == "random bytes":
        size = int(rng.integers(1, 4096))
        return rng.integers(0, 256, size, dtype=np.uint8).tobytes(), f"{size} random bytes", None
    if how == "wrong extension":
        ext = str(rng.choice(["jpg", "png", "gif", "bmp", "tif", "webp", "txt", "npy"]))
        return data, f"renamed to .{ext}", ext
    if how == "append garbage":
        size = int(rng.integers(1, 10000))
        return data + rng.integers(0, 256, size, dtype=np.uint8).tobytes(), f"{size} random bytes appended", None
    if how == "insert bytes":
        pos, size = int(rng.integers(0, max(n, 1))), int(rng.integers(1, 200))
        extra = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        return data[:pos] + extra + data[pos:], f"{size} random bytes inserted at {pos}", None
    if how == "swap magic":
        magic = MAGICS[int(rng.integers(0, len(MAGICS)))]
        return magic + data[len(magic):], f"magic replaced by {magic!r}", None
    half = data[: n // 2]
    return half + half, "first half twice", None


# ---------------------------------------------------------------- one load_image case

def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def load_case(group: str, kind: str, source: Any, repro: str, expect: ImageFile | None = None) -> Case:
    """load_image on a path or PIL image: typed, or (H, W, 3) uint8 of the promised size and pixels."""
    case = Case(CAMPAIGN, group, repro, adapter=kind)
    before = digest(source) if isinstance(source, Path) else None
    pil_before = (source.mode, source.size, source.tobytes()) if isinstance(source, Image.Image) else None
    arr = None
    try:
        with warnings.catch_warnings(), time_limit(LIMIT_S):
            warnings.simplefilter("ignore")
            arr = heatlens.load_image(source)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # classifying every ending is the point
        case.ended_with(exc)
    if arr is not None:
        judge_pixels(case, arr, expect, source)
    if isinstance(source, Path) and digest(source) != before:
        case.flag("input_changed", "the file changed")
    if pil_before is not None and (source.mode, source.size, source.tobytes()) != pil_before:
        case.flag("input_changed", "the PIL image changed")
    return case


def judge_pixels(case: Case, arr: Any, expect: ImageFile | None, source: Any) -> None:
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        case.flag("wrong_shape", f"load_image gave {type(arr).__name__} {getattr(arr, 'shape', '')} "
                  f"{getattr(arr, 'dtype', '')}, expected (H, W, 3) uint8")
        return
    if min(arr.shape[:2]) < 1:
        case.flag("wrong_shape", f"load_image gave an empty image {arr.shape}")
    size = expect.size if expect is not None else (
        (source.height, source.width) if isinstance(source, Image.Image) else None)
    if expect is not None and expect.must_refuse:
        case.flag("wrong_answer", f"decoded a file that must be refused: {arr.shape}")
    elif size is not None and tuple(arr.shape[:2]) != tuple(size):
        turned = tuple(arr.shape[:2]) == tuple(size)[::-1]
        case.flag("wrong_answer", f"decoded {arr.shape[:2]}, expected {tuple(size)}"
                  + (" (EXIF orientation ignored)" if turned else ""))
    elif expect is not None and expect.reference is not None:
        reference = expect.reference()
        if reference is not None and reference.shape == arr.shape:
            worst = int(np.abs(reference.astype(int) - arr.astype(int)).max())
            if worst > 1:
                case.flag("wrong_answer", f"pixels differ from the reference reading by up to {worst}/255")
