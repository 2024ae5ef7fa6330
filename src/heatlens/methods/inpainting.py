"""SHAP's inpainting maskers, on the photo's own pixel values: a pixel any of whose channels is masked is
filled by OpenCV's inpainting (radius 3) of the 0..255 image, and with every pixel masked the image is its
mean colour, as shap's Image masker does.

Model inputs become pixel values as they were made: unchanged without preprocessing, else through the
inverse of the preprocessing's colour map, found by running it on flat colours (any per-pixel affine map
of RGB after resizing or cropping: mean/std normalisation, scaling, a channel swap, a mean subtraction).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import MethodError
from ..models.base import Network

Affine = tuple[np.ndarray, np.ndarray]  # model input = pixels @ matrix.T + offset
PROBE_COLOURS = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [37, 142, 201], [250, 3, 99]], np.uint8)


def inpainting_composer(network: Network, image: np.ndarray, masker: str) -> Callable[[np.ndarray], np.ndarray]:
    """keep masks (B, H, W, C) -> model inputs: the image where a pixel keeps all its channels, inpainted
    pixels elsewhere."""
    inpaint = _inpainter(masker)
    colours = _colour_map(network, image, masker)
    pixels = image.astype(np.float64) if colours is None else _to_pixels(image, colours)
    as_uint8 = np.ascontiguousarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8))
    flat = np.broadcast_to(pixels.mean(axis=(0, 1)), pixels.shape)
    mean_colour = (flat if colours is None else _from_pixels(flat, colours)).astype(np.float32)

    def compose(keep: np.ndarray) -> np.ndarray:
        holes = ~keep.all(axis=-1)
        out = np.empty(keep.shape, np.float32)
        for target, hole in zip(out, holes, strict=True):
            if not hole.any():
                target[:] = image
            elif hole.all():
                target[:] = mean_colour
            else:
                filled = inpaint(as_uint8, hole.astype(np.uint8)).reshape(image.shape).astype(np.float64)
                model = filled if colours is None else _from_pixels(filled, colours)
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
    colour map, measured on flat photos and verified on two more colours."""
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
    measured = _flat_colour_inputs(network, image.shape)
    if measured is not None:
        offset = measured[0]
        matrix = (measured[1:4] - offset).T / 255
        predicted = PROBE_COLOURS[4:] @ matrix.T + offset
        square = matrix.shape == (3, 3) and np.linalg.cond(matrix) < 1e6
        if square and np.abs(predicted - measured[4:]).max() <= 1e-4 * (np.abs(measured).max() + 1):
            return matrix, offset
    raise MethodError(f"masker='{masker}' inpaints the photo's own pixel values, and this model's preprocessing "
                      "is not a per-pixel linear colour map that can be undone to recover them; wrap the predict "
                      "function with preprocess=None and do the preprocessing inside it, as the shap tutorial does")


def _flat_colour_inputs(network: Network, shape: tuple[int, ...]) -> np.ndarray | None:
    """The model input (colours, C) the preprocessing makes of each flat probe colour photo, or None when
    it fails on them or does not make flat inputs of them."""
    photos = np.ascontiguousarray(np.broadcast_to(PROBE_COLOURS[:, None, None], (len(PROBE_COLOURS), *shape[:2], 3)))
    try:
        out = np.asarray(network.prepare(photos), np.float64)
    except Exception:
        return None
    if out.ndim != 4 or len(out) != len(PROBE_COLOURS) or out.shape[-1] != shape[-1] or not np.isfinite(out).all():
        return None
    measured = out.mean(axis=(1, 2))
    flat = np.abs(out - measured[:, None, None]).max() <= 1e-4 * (np.abs(measured).max() + 1)
    return measured if flat else None


def _to_pixels(inputs: np.ndarray, colours: Affine) -> np.ndarray:
    matrix, offset = colours
    return (inputs.astype(np.float64) - offset) @ np.linalg.inv(matrix).T


def _from_pixels(pixels: np.ndarray, colours: Affine) -> np.ndarray:
    matrix, offset = colours
    return pixels @ matrix.T + offset
