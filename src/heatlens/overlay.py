"""Display helpers: map upsampling onto the photo, normalisation for display, colormaps, blending, grids."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .errors import HeatlensError
from .preprocess import Box

BAND_PIXELS = 1 << 18  # overlays are coloured and blended in row bands of about this many pixels


def upsample(maps: np.ndarray, size: tuple[int, int], box: Box) -> np.ndarray:
    """Bilinearly resample (..., h, w) maps onto an (H, W) photo where the map covers `box`, in float32.

    Pixel centres are aligned (half-pixel convention); pixels outside the box, which the model never saw,
    are 0. Implemented as two small interpolation matrices, so a batch costs two matrix products.
    """
    top, left, bottom, right = box
    rows = _interpolation_matrix(size[0], maps.shape[-2], top, bottom)
    cols = _interpolation_matrix(size[1], maps.shape[-1], left, right)
    return np.einsum("Hh,...hw,Ww->...HW", rows, maps.astype(np.float32, copy=False), cols, optimize=True)


def _interpolation_matrix(n_out: int, n_in: int, start: float, stop: float) -> np.ndarray:
    pixel = np.arange(n_out, dtype=np.float64) + 0.5
    centres = (pixel - start) / (stop - start) * n_in - 0.5
    idx = np.arange(n_out)
    first, last = seen_range(n_out, start, stop)
    inside = (idx >= first) & (idx <= last)
    pos = np.clip(centres, 0, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = pos - lo
    matrix = np.zeros((n_out, n_in), dtype=np.float32)
    np.add.at(matrix, (idx, lo), (1 - frac) * inside)
    np.add.at(matrix, (idx, hi), frac * inside)
    return matrix


def seen_range(n: int, start: float, stop: float) -> tuple[int, int]:
    """First and last of n pixels the span start..stop covers: those whose centres lie inside it, or,
    for a span thinner than a pixel between two centres (a very thin photo), the pixel holding its middle."""
    first, last = max(0, math.ceil(start - 0.5)), min(n - 1, math.floor(stop - 0.5))
    if first > last:
        first = last = min(n - 1, max(0, math.floor((start + stop) / 2)))
    return first, last


def seen_slices(size: tuple[int, int], box: Box) -> tuple[slice, slice]:
    """The rows and columns of an (H, W) photo that `box` covers (see seen_range), as slices."""
    rows = seen_range(size[0], box[0], box[2])
    cols = seen_range(size[1], box[1], box[3])
    return slice(rows[0], rows[1] + 1), slice(cols[0], cols[1] + 1)


def box_mask(size: tuple[int, int], box: Box) -> np.ndarray:
    """Boolean (H, W) mask of the pixels `box` covers (see seen_range)."""
    mask = np.zeros(size, dtype=bool)
    mask[seen_slices(size, box)] = True
    return mask


@dataclass(frozen=True)
class Scaling:
    """How one map is shown in [0, 1], clipped: (m - low) / span, or 0.5 + 0.5 * m / span when `centred`;
    span 0 shows the map as 0 (0.5, the neutral middle, when centred)."""

    low: float = 0.0
    span: float = 0.0
    centred: bool = False

    def __call__(self, m: np.ndarray) -> np.ndarray:
        if self.span == 0:
            return np.full(m.shape, 0.5 if self.centred else 0.0, np.float32)
        if self.centred:
            return np.clip(0.5 + 0.5 * m / np.float32(self.span), 0, 1)
        return np.clip((m - np.float32(self.low)) / np.float32(self.span), 0, 1)


def scaling(m: np.ndarray, scale: str = "peak") -> Scaling:
    """The display scaling of one map (see normalize); for 'minmax' pass only the pixels that count."""
    low, high = m.min(), m.max()
    if scale == "minmax":
        return Scaling(float(low), float(high - low))
    peak = max(float(high), -float(low))  # the largest |value|, without an |m| copy of a photo-sized map
    return Scaling(0.0, peak, centred=peak > 0 and float(low) < 0)


def normalize(maps: np.ndarray, scale: str = "peak", seen: np.ndarray | None = None) -> np.ndarray:
    """Scale each (H, W) map to [0, 1] for display. 'peak': divide by the largest |value| (signed maps centre
    0 at 0.5), so 0 stays 'no evidence'; 'minmax': stretch min..max, for maps with an offset (RISE's are
    expected scores), with the range taken over the `seen` pixels when given. A constant map shows as 0
    either way: no division by zero, no NaN."""
    flat = maps.reshape(-1, *maps.shape[-2:]).astype(np.float32, copy=False)
    out = np.empty(flat.shape, np.float32)
    for i, m in enumerate(flat):
        counted = m[seen] if scale == "minmax" and seen is not None else m
        out[i] = scaling(counted, scale)(m)
    return out.reshape(maps.shape)


class PhotoMap:
    """One (h, w) map as it lies on an (H, W) photo, made in row bands on demand: a photo-sized map is
    sliced, a smaller one upsampled band by band (as `upsample` would), so no photo-sized float map has to
    exist at once."""

    def __init__(self, m: np.ndarray, size: tuple[int, int], box: Box | None = None):
        self.size = size
        self._full = m if m.shape == size else None
        if self._full is None:
            top, left, bottom, right = box or (0.0, 0.0, float(size[0]), float(size[1]))
            self._rows = _interpolation_matrix(size[0], m.shape[0], top, bottom)
            cols = _interpolation_matrix(size[1], m.shape[1], left, right)
            self._right = m.astype(np.float32, copy=False) @ cols.T

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop of the map on the photo, float32 (stop - start, W)."""
        if self._full is not None:
            return self._full[start:stop]
        return self._rows[start:stop] @ self._right

    def bands(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, rows) in bands of about BAND_PIXELS pixels, top to bottom."""
        step = max(1, BAND_PIXELS // max(1, self.size[1]))
        for start in range(0, self.size[0], step):
            yield start, self.rows(start, min(self.size[0], start + step))

    def scaling(self, scale: str = "peak", seen: tuple[slice, slice] | None = None) -> Scaling:
        """The display scaling (see normalize): 'minmax' counts only the `seen` rows and columns."""
        lows, highs = [], []
        rows, cols = seen if scale == "minmax" and seen is not None else (slice(None), slice(None))
        first, last, _ = rows.indices(self.size[0])
        for start, band in self.bands():
            part = band[max(0, first - start) : max(0, last - start), cols]
            if part.size:
                lows.append(part.min())
                highs.append(part.max())
        return scaling(np.array([min(lows), max(highs)], np.float32), scale)


def overlay_bands(photo: np.ndarray, photo_map: PhotoMap, alpha: float = 0.4, cmap: str = "jet",
                  scale: str | Scaling = "peak", box: Box | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """One map coloured and blended over its photo (H, W, 3) uint8, as (first row, uint8 rows) bands; pixels
    outside `box` are left as they are. Colours come from a 256-entry table, blending is float32 per band.
    `scale`: a normalize() name, or a Scaling chosen beforehand (heatlens.display's sign-aware one)."""
    table = color_table(cmap)
    _check_alpha(alpha)
    rows, cols = (slice(0, photo.shape[0]), slice(None)) if box is None else seen_slices(photo.shape[:2], box)
    shown = scale if isinstance(scale, Scaling) else photo_map.scaling(scale, (rows, cols))
    for start, values in photo_map.bands():
        out = photo[start : start + len(values)].copy()
        first, last = max(0, rows.start - start), max(0, rows.stop - start)
        seen = out[first:last, cols]
        if seen.size:
            seen[...] = blend(seen, table[levels(shown(values[first:last, cols]))], alpha)
        yield start, out


def overlay_map(photo: np.ndarray, m: np.ndarray, alpha: float = 0.4, cmap: str = "jet",
                scale: str | Scaling = "peak", box: Box | None = None) -> np.ndarray:
    """One map (H, W), or a smaller one that `box` places, coloured and blended over its photo (H, W, 3)
    uint8 (see overlay_bands)."""
    out = np.empty_like(photo)
    for start, band in overlay_bands(photo, PhotoMap(m, photo.shape[:2], box), alpha, cmap, scale, box):
        out[start : start + len(band)] = band
    return out


ATTRIBUTION_PERCENTILE = 98.0  # pixel attributions are clipped where 98% of their |mass| is reached, as captum
PERCENTILE_SAMPLE = 1 << 20  # percentiles of larger maps are taken on an even subsample of about this many


def attribution_rgb(attributions: np.ndarray, mode: str = "abs",
                    percentile: float = ATTRIBUTION_PERCENTILE) -> np.ndarray:
    """Signed pixel attributions (..., h, w, C) as uint8 images, each (h, w, C) scaled on its own.

    'abs' (the default, captum's visualize_image_attr default): |a summed over the channels|, divided by the
    value where the sorted values' running sum reaches `percentile`% of their total (captum's outlier_perc=2)
    and clipped, grey (black = none, white = at or past it); 'seed': zero mean,
    standard deviation 0.25, shifted to 0.5 and clipped (the guided-backprop tutorials' display); 'signed':
    the channel sum on a blue-white-red scale centred at 0, clipped at the `percentile` of its |values|."""
    a = attributions.astype(np.float32)
    if mode == "seed":
        centred = a - a.mean(axis=(-3, -2, -1), keepdims=True)
        std = centred.std(axis=(-3, -2, -1), keepdims=True)
        shown = np.clip(0.5 + 0.25 * centred / np.where(std > 0, std, 1), 0, 1)
        shown = shown if shown.shape[-1] == 3 else np.repeat(shown.mean(axis=-1, keepdims=True), 3, axis=-1)
        return (shown * 255).round().astype(np.uint8)
    if mode == "abs":
        magnitude = np.abs(a.sum(axis=-1))
        grey = np.stack([clipped_scaling(m, percentile, mass=True)(m)
                         for m in magnitude.reshape(-1, *magnitude.shape[-2:])])
        return np.repeat((grey * 255).round().astype(np.uint8).reshape(magnitude.shape)[..., None], 3, axis=-1)
    if mode == "signed":
        total = a.sum(axis=-1)
        flat = total.reshape(-1, *total.shape[-2:])
        shown = np.stack([clipped_scaling(m, percentile, centred=True, mass=True)(m)
                          for m in flat]).reshape(total.shape)
        return colorize(shown, "bwr")
    raise HeatlensError(f"unknown attribution display '{mode}': use 'abs', 'seed' or 'signed'")


def abs_percentile(m: np.ndarray, percentile: float) -> float:
    """The `percentile`-th percentile of |m| (on an even subsample of very large maps); 0 for an empty or
    all-zero map, and non-finite values are left out."""
    step = max(1, int(np.sqrt(m.size / PERCENTILE_SAMPLE))) if m.ndim == 2 else 1
    values = np.abs(m[::step, ::step] if m.ndim == 2 else m).ravel()
    values = values[np.isfinite(values)]
    return float(np.percentile(values, percentile)) if values.size else 0.0


def mass_threshold(m: np.ndarray, percent: float) -> float:
    """captum's clipping value: the smallest sorted |m| at which their running sum reaches `percent`% of the
    total (so the largest values holding the last 100 - percent % of the mass are clipped); 0 for an all-zero
    map. Non-finite values are left out; very large maps are taken on an even subsample."""
    step = max(1, int(np.sqrt(m.size / PERCENTILE_SAMPLE))) if m.ndim == 2 else 1
    values = np.sort(np.abs(m[::step, ::step] if m.ndim == 2 else m).ravel().astype(np.float64))
    values = values[np.isfinite(values)]
    if not values.size or values[-1] == 0:
        return 0.0
    running = np.cumsum(values)
    return float(values[np.searchsorted(running, running[-1] * 0.01 * percent)])


def clipped_scaling(m: np.ndarray, percentile: float | None, centred: bool = False, mass: bool = False) -> Scaling:
    """Show m in [0, 1] divided by the `percentile`-th percentile of |m| (with `mass`, captum's
    mass_threshold; None: the peak), values beyond it clipped; `centred`: signed, 0 at 0.5. An all-zero map
    gets span 0 and shows as 0 (0.5 centred): no NaN."""
    if percentile is None:
        span = abs_percentile(m, 100.0)
    else:
        span = mass_threshold(m, percentile) if mass else abs_percentile(m, percentile)
    if span == 0 and percentile is not None:
        span = abs_percentile(m, 100.0)  # a sparse map whose percentile is still 0: its peak
    return Scaling(0.0, span, centred=centred)


def superpixel_view(image: np.ndarray, segments: np.ndarray, weights: np.ndarray, num_features: int = 5,
                    positive_only: bool = True, hide_rest: bool = False, boundaries: bool = True) -> np.ndarray:
    """LIME's familiar picture: the `num_features` superpixels with the largest weights (positive only, or
    both signs: green for, red against), the rest shown or hidden, each chosen superpixel outlined in yellow
    (also when every superpixel is chosen)."""
    chosen = lime_selection(weights, positive_only, False, num_features)
    shown = np.zeros_like(image) if hide_rest else image.copy()
    for f, w in chosen:
        area = segments == f
        shown[area] = image[area]
        if not positive_only:
            tint = np.array(POSITIVE if w > 0 else NEGATIVE, np.float32)
            shown[area] = (0.6 * shown[area] + 0.4 * tint).astype(np.uint8)
    if boundaries:
        edges = superpixel_edges(segments, [f for f, _ in chosen])
        shown[edges] = (255, 255, 0)
    return shown


POSITIVE = (0, 200, 0)  # superpixels that speak for the class: green
NEGATIVE = (230, 0, 0)  # against it: red


def lime_selection(weights: np.ndarray, positive_only: bool = True, negative_only: bool = False,
                   num_features: int = 5, min_weight: float = 0.0) -> list[tuple[int, float]]:
    """The superpixels lime's `get_image_and_mask` keeps, as (superpixel, weight), ranked by |weight| (ties
    by superpixel number): the first `num_features` positive (or negative) ones above `min_weight`, or, for
    both signs, those of the first `num_features` whose |weight| reaches `min_weight`."""
    if positive_only and negative_only:
        raise HeatlensError("positive_only and negative_only cannot both be True: choose one, or neither for both "
                            "signs")
    if isinstance(num_features, bool) or not isinstance(num_features, int | np.integer) or num_features < 0:
        raise HeatlensError(f"num_features must be a whole number >= 0. Received: {num_features!r}")
    ranked = [(int(f), float(weights[f])) for f in np.argsort(-np.abs(weights), kind="stable")]
    if positive_only:
        return [(f, w) for f, w in ranked if w > 0 and w > min_weight][:num_features]
    if negative_only:
        return [(f, w) for f, w in ranked if w < 0 and -w > min_weight][:num_features]
    return [(f, w) for f, w in ranked[:num_features] if abs(w) >= min_weight]


def lime_image_and_mask(image: np.ndarray, segments: np.ndarray, chosen: list[tuple[int, float]],
                        signed: bool = False, hide_rest: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """lime's `(image, mask)` for the `chosen` superpixels: mask 1 on them (with `signed`, -1 where the
    weight is negative), the picture with the rest zeroed (as float64) under `hide_rest`; with `signed` the
    chosen superpixels' green (for) or red (against) channel is set to the picture's maximum."""
    mask = np.zeros(segments.shape, segments.dtype if segments.dtype.kind == "i" else np.int64)
    shown = np.zeros(image.shape) if hide_rest else image.copy()
    peak = image.max()
    for f, w in chosen:
        area = segments == f
        shown[area] = image[area]
        mask[area] = -1 if signed and w < 0 else 1
        if signed:
            shown[area, 0 if w < 0 else 1] = peak
    return shown, mask


def superpixel_edges(segments: np.ndarray, chosen: list[int] | np.ndarray, thickness: int = 1) -> np.ndarray:
    """Boolean (h, w): the pixels of the chosen superpixels within `thickness` pixels (chessboard) of another
    superpixel, chosen or not: each is outlined inside itself, so chosen neighbours are still told apart."""
    from scipy.ndimage import maximum_filter, minimum_filter

    size = 2 * max(1, thickness) + 1
    near_other = maximum_filter(segments, size=size) != minimum_filter(segments, size=size)
    return near_other & np.isin(segments, chosen)


def sign_boundaries(image: np.ndarray, segments: np.ndarray, chosen: list[tuple[int, float]], tint: float = 0.25,
                    hide_rest: bool = False, thickness: int | None = None) -> np.ndarray:
    """The chosen superpixels outlined and lightly tinted by the sign of their weight, green (for) or red
    (against), on the picture (H, W, 3) uint8; the rest shown or, with `hide_rest`, black. Edges are drawn
    between every chosen superpixel and its neighbours, chosen or not, so choosing all still shows them."""
    thickness = thickness or max(1, round(min(segments.shape) / 150))
    out = np.zeros_like(image) if hide_rest else image.copy()
    for sign, colour in ((1, POSITIVE), (-1, NEGATIVE)):
        picked = [f for f, w in chosen if (w > 0 if sign > 0 else w < 0)]
        if not picked:
            continue
        area = np.isin(segments, picked)
        out[area] = blend(image[area], np.broadcast_to(np.array(colour, np.uint8), image[area].shape), tint)
        out[superpixel_edges(segments, picked, thickness)] = colour
    return out


def colorize(maps01: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """Map values in [0, 1] to uint8 RGB with a matplotlib colormap (through its 256-colour table)."""
    return color_table(cmap)[levels(maps01)]


def levels(maps01: np.ndarray) -> np.ndarray:
    """Values in [0, 1] as uint8 indices 0..255 of a 256-colour table, as matplotlib picks them (floor(256 x),
    1.0 -> 255)."""
    scaled = np.clip(maps01, 0, 1) * np.float32(256)
    return np.minimum(scaled, 255).astype(np.uint8)


@functools.lru_cache(maxsize=64)
def color_table(cmap: str) -> np.ndarray:
    """A matplotlib colormap as a (256, 3) uint8 table, built once per name: entry k is the colour at the
    middle of the values that `levels` sends to k (exactly matplotlib's entry k for 256-colour maps)."""
    from matplotlib import colormaps  # here, not at import: loading matplotlib costs a tenth of a second

    try:
        colormap = colormaps[cmap]
    except KeyError:
        raise HeatlensError(
            f"unknown colormap '{cmap}'. Use a matplotlib colormap name such as 'jet', 'viridis', 'inferno'"
        ) from None
    table = (colormap((np.arange(256) + 0.5) / 256)[:, :3] * 255).round().astype(np.uint8)
    table.flags.writeable = False
    return table


def blend(images: np.ndarray, heat: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """Alpha-blend colour heatmaps over photos: (1 - alpha) * photo + alpha * heat, as uint8 (float32 maths)."""
    _check_alpha(alpha)
    mixed = (1 - alpha) * images.astype(np.float32) + alpha * heat.astype(np.float32)
    return mixed.round().clip(0, 255).astype(np.uint8)


def _check_alpha(alpha: float) -> None:
    if not 0 <= alpha <= 1:
        raise HeatlensError(f"alpha must be between 0 and 1. Received: {alpha}")


def grid(tiles: np.ndarray, columns: int) -> np.ndarray:
    """Lay out (T, H, W, 3) tiles in rows of `columns`, padding the last row with white."""
    count, h, w, c = tiles.shape
    rows = -(-count // columns)
    canvas = np.full((rows * h, columns * w, c), 255, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, col = divmod(i, columns)
        canvas[r * h : (r + 1) * h, col * w : (col + 1) * w] = tile
    return canvas
