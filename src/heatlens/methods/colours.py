"""The photo's own colours behind a model input: the preprocessing's per-pixel colour map, measured by
running it on flat probe colours, and undone so that pictures and segmentations are made in RGB pixels
whatever the preprocessing (mean/std normalisation, scaling, a channel swap, a caffe mean subtraction).

A preprocessing that resizes or crops and then maps each pixel's RGB affinely gives
model input = pixels @ matrix.T + offset, which is inverted exactly. Without preprocessing, inputs that
are 0..255 values are the pixels; anything else is shown min-max scaled, in RGB order where a channel
swap can still be measured.
"""

from __future__ import annotations

import numpy as np

from ..images import to_display
from ..models.base import Network

Affine = tuple[np.ndarray, np.ndarray]  # model input = pixels @ matrix.T + offset
PROBE_SIDE = 512
PROBE_COLOURS = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [37, 142, 201], [250, 3, 99]], np.uint8)


def colour_map(network: Network, shape: tuple[int, ...]) -> Affine | None:
    """The preprocessing's affine colour map for model inputs of `shape` (h, w, C), measured on flat
    photos and verified on two more colours; None without preprocessing or where it is no such map."""
    if network.preprocess is None:
        return None
    measured = _flat_colour_inputs(network, shape)
    if measured is None:
        return None
    offset = measured[0]
    matrix = (measured[1:4] - offset).T / 255
    predicted = PROBE_COLOURS[4:] @ matrix.T + offset
    square = matrix.shape == (3, 3) and np.linalg.cond(matrix) < 1e6
    if square and np.abs(predicted - measured[4:]).max() <= 1e-4 * (np.abs(measured).max() + 1):
        return matrix, offset
    return None


def to_pixels(inputs: np.ndarray, colours: Affine) -> np.ndarray:
    """Model inputs (..., 3) -> the float RGB pixel values they were made of."""
    matrix, offset = colours
    return (inputs.astype(np.float64) - offset) @ np.linalg.inv(matrix).T


def from_pixels(pixels: np.ndarray, colours: Affine) -> np.ndarray:
    """RGB pixel values (..., 3) -> the model inputs the preprocessing makes of them."""
    matrix, offset = colours
    return pixels @ matrix.T + offset


def are_pixels(network: Network, x: np.ndarray) -> bool:
    """True when model inputs without preprocessing are pixel values themselves: three channels within
    0..255, not 0..1 fractions (some value above 1, or whole numbers only)."""
    if network.preprocess is not None or x.shape[-1] != 3 or not x.size:
        return False
    low, high = float(x.min()), float(x.max())
    return low >= 0 and high <= 255 and (high > 1 or bool(np.array_equal(x, np.round(x))))


def photo_pixels(network: Network, x: np.ndarray) -> np.ndarray:
    """Model inputs (N, h, w, C) as uint8 RGB pictures (N, h, w, 3) in the photo's colours: the colour map
    undone where it is affine, the inputs themselves where they are pixels; else min-max scaled, with a
    measured channel swap undone first."""
    if are_pixels(network, x):
        return np.clip(np.round(x), 0, 255).astype(np.uint8)
    colours = colour_map(network, x.shape[1:])
    if colours is not None:
        return np.clip(np.round(to_pixels(x, colours)), 0, 255).astype(np.uint8)
    order = _channel_order(network, x.shape[1:])
    return to_display(x if order is None else x[..., order])


def pixel_changes(network: Network, delta: np.ndarray) -> np.ndarray:
    """Changes of the model input (..., C) (a deconvnet projection, a grown pattern's offset) as changes of
    RGB pixel values: through the inverse colour map's linear part where it is affine; in RGB order where
    a channel swap is measured; as they are otherwise."""
    shape = (*delta.shape[-3:-1], delta.shape[-1])
    colours = colour_map(network, shape)
    if colours is not None:
        return delta.astype(np.float64) @ np.linalg.inv(colours[0]).T
    order = _channel_order(network, shape)
    return delta if order is None else delta[..., order]


def _channel_order(network: Network, shape: tuple[int, ...]) -> np.ndarray | None:
    """For a per-pixel colour map that is not affine: the model channel holding R, G and B, when each
    channel rises with exactly one of them (a permutation); None where that cannot be measured."""
    if network.preprocess is None or shape[-1] != 3:
        return None
    measured = _flat_colour_inputs(network, shape)
    if measured is None:
        return None
    response = measured[1:4] - measured[0]  # (red, green, blue probes, model channels)
    strongest = np.abs(response).argmax(axis=1)
    rest = np.abs(response).copy()
    rest[np.arange(3), strongest] = 0
    alone = rest.max() <= 1e-3 * np.abs(response).max()
    rising = (response[np.arange(3), strongest] > 0).all()
    return strongest if alone and rising and sorted(strongest) == [0, 1, 2] else None


def _flat_colour_inputs(network: Network, shape: tuple[int, ...]) -> np.ndarray | None:
    """The model input (colours, C) the preprocessing makes of each flat probe colour photo, or None when
    it fails on them or does not make flat inputs of them. Probes of large inputs (a predict function fed
    photos as given) are at most PROBE_SIDE a side: a flat photo stays flat at any size."""
    side = tuple(min(n, PROBE_SIDE) for n in shape[:2])
    photos = np.ascontiguousarray(np.broadcast_to(PROBE_COLOURS[:, None, None], (len(PROBE_COLOURS), *side, 3)))
    try:
        out = np.asarray(network.prepare(photos), np.float64)
    except Exception:
        return None
    if out.ndim != 4 or len(out) != len(PROBE_COLOURS) or out.shape[-1] != shape[-1] or not np.isfinite(out).all():
        return None
    measured = out.mean(axis=(1, 2))
    flat = np.abs(out - measured[:, None, None]).max() <= 1e-4 * (np.abs(measured).max() + 1)
    return measured if flat else None
