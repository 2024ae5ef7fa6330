"""SHAP's inpainting maskers, on the photo's own pixel values: a pixel any of whose channels is masked is
filled by OpenCV's inpainting (radius 3) of the 0..255 image, and with every pixel masked the image is its
mean colour, as shap's Image masker does.

Model inputs become pixel values as they were made: unchanged without preprocessing, else through the
inverse of the preprocessing's colour map (colours.py: any per-pixel affine map of RGB after resizing or
cropping: mean/std normalisation, scaling, a channel swap, a mean subtraction).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import MethodError
from ..models.base import Network
from .colours import Affine, colour_map, from_pixels, to_pixels


def inpainting_composer(network: Network, image: np.ndarray, masker: str) -> Callable[[np.ndarray], np.ndarray]:
    """keep masks (B, H, W, C) -> model inputs: the image where a pixel keeps all its channels, inpainted
    pixels elsewhere."""
    inpaint = _inpainter(masker)
    colours = _colour_map(network, image, masker)
    pixels = image.astype(np.float64) if colours is None else to_pixels(image, colours)
    as_uint8 = np.ascontiguousarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8))
    flat = np.broadcast_to(pixels.mean(axis=(0, 1)), pixels.shape)
    mean_colour = (flat if colours is None else from_pixels(flat, colours)).astype(np.float32)

    def compose(keep: np.ndarray) -> np.ndarray:
        holes = np.asarray(~keep.all(axis=-1))
        out = np.empty(keep.shape, np.float32)
        for target, hole in zip(out, holes, strict=True):
            if not hole.any():
                target[:] = image
            elif hole.all():
                target[:] = mean_colour
            else:
                filled = inpaint(as_uint8, hole.astype(np.uint8)).reshape(image.shape).astype(np.float64)
                model = filled if colours is None else from_pixels(filled, colours)
                target[:] = np.where(hole[..., None], model, image)
        return out

    return compose


def _inpainter(masker: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    try:
        import cv2
    except ImportError:
        raise MethodError(f"masker='{masker}' needs OpenCV: pip install 'heatlens[inpaint]'") from None
    flags = {"inpaint_telea": cv2.INPAINT_TELEA, "inpaint_ns": cv2.INPAINT_NS}
    if masker not in flags:
        raise MethodError(f"unknown masker '{masker}': use 'blur', 'black', a number, 'inpaint_telea' or 'inpaint_ns'")
    return lambda image, hole: cv2.inpaint(image, hole, 3, flags[masker])


def _colour_map(network: Network, image: np.ndarray, masker: str) -> Affine | None:
    """None when the model input is the pixel values themselves (checked), else the preprocessing's affine
    colour map (see colours.colour_map)."""
    channels = image.shape[-1]
    if network.preprocess is None:
        if channels not in (1, 3):
            raise MethodError(f"masker='{masker}' inpaints 1- or 3-channel images; the inputs have {channels} "
                              "channels")
        low, high = float(image.min()), float(image.max())
        if low < 0 or high > 255:
            raise MethodError(f"masker='{masker}' inpaints pixel values 0..255, and the inputs range over "
                              f"[{low:.4g}, {high:.4g}]; pass the photo's 0..255 values (do any preprocessing "
                              "inside the predict function, as the shap tutorial does)")
        if high <= 1 and not np.array_equal(image, np.round(image)):
            raise MethodError(f"masker='{masker}' inpaints pixel values 0..255, and the inputs look like 0..1 "
                              f"floats (largest {high:.4g}); pass them times 255")
        return None
    colours = colour_map(network, image.shape)
    if colours is not None:
        return colours
    raise MethodError(f"masker='{masker}' inpaints the photo's own pixel values, and this model's preprocessing "
                      "is not a per-pixel linear colour map that can be undone to recover them; wrap the predict "
                      "function with preprocess=None and do the preprocessing inside it, as the shap tutorial does")
