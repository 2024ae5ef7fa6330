"""Display helpers: map upsampling onto the photo, normalisation for display, colormaps, blending, grids."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps

from .errors import HeatlensError
from .preprocess import Box


def upsample(maps: np.ndarray, size: tuple[int, int], box: Box) -> np.ndarray:
    """Bilinearly resample (..., h, w) maps onto an (H, W) photo where the map covers `box`.

    Pixel centres are aligned (half-pixel convention); pixels outside the box, which the model never saw,
    are 0. Implemented as two small interpolation matrices, so a batch costs two matrix products.
    """
    top, left, bottom, right = box
    rows = _interpolation_matrix(size[0], maps.shape[-2], top, bottom)
    cols = _interpolation_matrix(size[1], maps.shape[-1], left, right)
    return np.einsum("Hh,...hw,Ww->...HW", rows, maps.astype(np.float32), cols, optimize=True)


def _interpolation_matrix(n_out: int, n_in: int, start: float, stop: float) -> np.ndarray:
    pixel = np.arange(n_out, dtype=np.float64) + 0.5
    centres = (pixel - start) / (stop - start) * n_in - 0.5
    inside = (pixel >= start) & (pixel <= stop)
    pos = np.clip(centres, 0, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = pos - lo
    matrix = np.zeros((n_out, n_in), dtype=np.float32)
    idx = np.arange(n_out)
    np.add.at(matrix, (idx, lo), (1 - frac) * inside)
    np.add.at(matrix, (idx, hi), frac * inside)
    return matrix


def box_mask(size: tuple[int, int], box: Box) -> np.ndarray:
    """Boolean (H, W) mask of the pixels whose centres lie inside `box`."""
    rows = np.arange(size[0]) + 0.5
    cols = np.arange(size[1]) + 0.5
    return ((rows >= box[0]) & (rows <= box[2]))[:, None] & ((cols >= box[1]) & (cols <= box[3]))[None, :]


def normalize(maps: np.ndarray, scale: str = "peak", seen: np.ndarray | None = None) -> np.ndarray:
    """Scale each (H, W) map to [0, 1] for display. 'peak': divide by the largest |value| (signed maps centre
    0 at 0.5), so 0 stays 'no evidence'; 'minmax': stretch min..max, for maps with an offset (RISE's are
    expected scores), with the range taken over the `seen` pixels when given. A constant map shows as 0
    either way: no division by zero, no NaN."""
    flat = maps.reshape(-1, *maps.shape[-2:]).astype(np.float32)
    out = np.zeros_like(flat)
    for i, m in enumerate(flat):
        if scale == "minmax":
            values = m[seen] if seen is not None else m
            low, span = float(values.min()), float(values.max() - values.min())
            out[i] = np.clip((m - low) / span, 0, 1) if span > 0 else 0
            continue
        peak = float(np.abs(m).max())
        if peak == 0:
            continue
        out[i] = m / peak if m.min() >= 0 else 0.5 + 0.5 * m / peak
    return out.reshape(maps.shape)


def attribution_rgb(attributions: np.ndarray, mode: str = "seed") -> np.ndarray:
    """Signed pixel attributions (..., h, w, C) as uint8 images, each (h, w, C) scaled on its own.

    'seed': zero mean, standard deviation 0.25, shifted to 0.5 and clipped (the guided-backprop
    tutorials' display); 'abs': |a| over the channels, scaled by its peak, grey; 'signed': the
    channel sum on a blue-white-red scale centred at 0."""
    a = attributions.astype(np.float32)
    if mode == "seed":
        centred = a - a.mean(axis=(-3, -2, -1), keepdims=True)
        std = centred.std(axis=(-3, -2, -1), keepdims=True)
        shown = np.clip(0.5 + 0.25 * centred / np.where(std > 0, std, 1), 0, 1)
        shown = shown if shown.shape[-1] == 3 else np.repeat(shown.mean(axis=-1, keepdims=True), 3, axis=-1)
        return (shown * 255).round().astype(np.uint8)
    if mode == "abs":
        magnitude = np.abs(a).max(axis=-1)
        return np.repeat((normalize(magnitude) * 255).round().astype(np.uint8)[..., None], 3, axis=-1)
    if mode == "signed":
        return colorize(normalize(a.sum(axis=-1)) if (a.sum(axis=-1) < 0).any() else
                        0.5 + 0.5 * normalize(a.sum(axis=-1)), "bwr")
    raise HeatlensError(f"unknown attribution display '{mode}': use 'seed', 'abs' or 'signed'")


def superpixel_view(image: np.ndarray, segments: np.ndarray, weights: np.ndarray, num_features: int = 5,
                    positive_only: bool = True, hide_rest: bool = False, boundaries: bool = True) -> np.ndarray:
    """LIME's familiar picture: the `num_features` superpixels with the largest weights (positive only, or
    both signs: green for, red against), the rest shown or hidden, superpixel boundaries drawn."""
    from skimage.segmentation import mark_boundaries

    order = np.argsort(-weights if positive_only else -np.abs(weights))[:num_features]
    chosen = [f for f in order if weights[f] > 0 or not positive_only]
    shown = np.zeros_like(image) if hide_rest else image.copy()
    for f in chosen:
        area = segments == f
        shown[area] = image[area]
        if not positive_only:
            tint = np.array([0, 255, 0] if weights[f] > 0 else [255, 0, 0], np.float32)
            shown[area] = (0.6 * shown[area] + 0.4 * tint).astype(np.uint8)
    if boundaries:
        keep = np.isin(segments, chosen).astype(int)
        shown = (mark_boundaries(shown, keep, color=(1, 1, 0)) * 255).round().astype(np.uint8)
    return shown


def colorize(maps01: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """Map values in [0, 1] to uint8 RGB with a matplotlib colormap."""
    try:
        colormap = colormaps[cmap]
    except KeyError:
        raise HeatlensError(
            f"unknown colormap '{cmap}'. Use a matplotlib colormap name such as 'jet', 'viridis', 'inferno'"
        ) from None
    return (colormap(np.clip(maps01, 0, 1))[..., :3] * 255).round().astype(np.uint8)


def blend(images: np.ndarray, heat: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """Alpha-blend colour heatmaps over photos: (1 - alpha) * photo + alpha * heat, as uint8."""
    if not 0 <= alpha <= 1:
        raise HeatlensError(f"alpha must be between 0 and 1. Received: {alpha}")
    mixed = (1 - alpha) * images.astype(np.float32) + alpha * heat.astype(np.float32)
    return mixed.round().clip(0, 255).astype(np.uint8)


def grid(tiles: np.ndarray, columns: int) -> np.ndarray:
    """Lay out (T, H, W, 3) tiles in rows of `columns`, padding the last row with white."""
    count, h, w, c = tiles.shape
    rows = -(-count // columns)
    canvas = np.full((rows * h, columns * w, c), 255, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, col = divmod(i, columns)
        canvas[r * h : (r + 1) * h, col * w : (col + 1) * w] = tile
    return canvas
