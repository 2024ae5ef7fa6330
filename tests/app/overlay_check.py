"""An independent reading of a shown overlay: the blend (1 - alpha) * photo + alpha * colour is undone with
matplotlib's own colour table, giving back the map level each pixel shows, to compare with heatlens.explain's map."""

from __future__ import annotations

import math

import numpy as np
from matplotlib import colormaps


def shown_levels(shown: np.ndarray, photo: np.ndarray, alpha: float, cmap: str = "jet") -> np.ndarray:
    """Per pixel, the colour map position in [0, 1] whose colour, blended over the photo with `alpha`, is
    nearest to what is shown."""
    table = colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255
    heat = (shown.astype(np.float64) - (1 - alpha) * photo.astype(np.float64)) / alpha
    distance = ((heat[..., None, :] - table) ** 2).sum(axis=-1)
    return distance.argmin(axis=-1) / 255


def check_overlay(shown: np.ndarray, photo: np.ndarray, heat_map: np.ndarray, box: tuple[float, ...],
                  alpha: float = 0.4) -> None:
    """Assert that `shown` (the photo-sized top of a tile) is the photo with `heat_map` blended where the model
    saw it (box: top, left, bottom, right): levels = map / peak there, cold colours where the map is lowest,
    visibly different from the photo where it is high, and the photo itself, untouched, outside the box."""
    h, w = photo.shape[:2]
    assert shown.shape == photo.shape, f"shown tile {shown.shape} is not photo-sized {photo.shape}"
    top, left, bottom, right = box
    inside = (slice(math.ceil(top) + 1, math.floor(bottom) - 1), slice(math.ceil(left) + 1, math.floor(right) - 1))
    outside = np.ones((h, w), bool)
    rows = slice(max(0, math.floor(top) - 1), math.ceil(bottom) + 1)
    outside[rows, max(0, math.floor(left) - 1) : math.ceil(right) + 1] = False
    assert outside.any(), "the model saw the whole photo: nothing to compare outside its crop"
    assert np.array_equal(shown[outside], photo[outside]), "the photo changed where the model never looked"
    expected = np.clip(heat_map[inside] / heat_map[inside].max(), 0, 1)
    levels = shown_levels(shown[inside][::3, ::3], photo[inside][::3, ::3], alpha)
    error = np.abs(levels - expected[::3, ::3])
    assert error.mean() < 0.02 and np.quantile(error, 0.99) < 0.08, (error.mean(), np.quantile(error, 0.99))
    high, low = expected >= 0.8, expected <= np.quantile(expected, 0.05)
    assert high.any(), "the map should have a hot region"
    difference = np.abs(shown[inside].astype(int) - photo[inside].astype(int)).sum(axis=-1)
    assert difference[high].mean() > 60, "the overlay hardly differs from the photo where the map is high"
    assert np.all(levels[low[::3, ::3]] <= expected[low].max() + 0.05), "the coldest part of the map shows hot"
