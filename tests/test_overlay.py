"""Display helpers: upsampling checked against scikit-image, colours against matplotlib, normalisation
never divides by zero, overlays in bounded memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from matplotlib import colormaps
from skimage.transform import resize

from heatlens import HeatlensError
from heatlens.overlay import (
    BAND_PIXELS,
    blend,
    box_mask,
    colorize,
    grid,
    normalize,
    overlay_map,
    seen_range,
    upsample,
)


def test_upsample_whole_image_matches_skimage_bilinear(rng):
    maps = rng.random((2, 3, 7, 5)).astype(np.float32)
    ours = upsample(maps, (30, 17), (0.0, 0.0, 30.0, 17.0))
    for n in range(2):
        for k in range(3):
            ref = resize(maps[n, k], (30, 17), order=1, mode="edge", anti_aliasing=False)
            np.testing.assert_allclose(ours[n, k], ref, atol=1e-5)


def test_upsample_into_a_box_leaves_the_outside_zero(rng):
    maps = rng.random((1, 1, 4, 4)).astype(np.float32) + 1
    out = upsample(maps, (10, 20), (0.0, 5.0, 10.0, 15.0))
    assert (out[..., :5] == 0).all() and (out[..., 15:] == 0).all()
    ref = resize(maps[0, 0], (10, 10), order=1, mode="edge", anti_aliasing=False)
    np.testing.assert_allclose(out[0, 0, :, 5:15], ref, atol=1e-5)


def test_box_mask_counts_pixels():
    assert box_mask((10, 20), (0.0, 5.0, 10.0, 15.0)).sum() == 100


def test_normalize_keeps_zero_maps_zero_and_scales_by_peak():
    maps = np.zeros((2, 3, 3), np.float32)
    maps[1, 0, 0] = 4.0
    maps[1, 2, 2] = 2.0
    out = normalize(maps)
    assert np.isfinite(out).all() and (out[0] == 0).all()
    assert out[1, 0, 0] == 1.0 and out[1, 2, 2] == 0.5


def test_normalize_signed_maps_centre_zero():
    out = normalize(np.array([[-2.0, 0.0, 1.0]], np.float32))
    np.testing.assert_allclose(out, [[0.0, 0.5, 0.75]])


def test_colorize_blend_grid():
    heat = colorize(np.array([[0.0, 1.0]]), "gray")
    np.testing.assert_array_equal(heat[0], [[0, 0, 0], [255, 255, 255]])
    mixed = blend(np.full((1, 2, 3), 100, np.uint8), np.full((1, 2, 3), 200, np.uint8), alpha=0.25)
    assert (mixed == 125).all()
    assert grid(np.zeros((3, 2, 2, 3), np.uint8), columns=2).shape == (4, 4, 3)
    with pytest.raises(HeatlensError, match="unknown colormap"):
        colorize(np.zeros((1, 1)), "nope")
    with pytest.raises(HeatlensError, match="alpha"):
        blend(np.zeros((1, 1, 3), np.uint8), np.zeros((1, 1, 3), np.uint8), alpha=2)


def test_minmax_display_stretches_maps_with_an_offset():
    out = normalize(np.array([[[10.0, 11.0, 12.0]]], np.float32), "minmax")
    np.testing.assert_allclose(out, [[[0.0, 0.5, 1.0]]])
    assert (normalize(np.full((1, 2, 2), 3.0, np.float32), "minmax") == 0).all()


@pytest.mark.parametrize("cmap", ["jet", "viridis", "gray", "inferno", "bwr"])
def test_colour_table_equals_matplotlib_within_one_level(rng, cmap):
    values = np.concatenate([rng.random(20000), [0.0, 1.0, 0.5, 1 / 256, 255 / 256]]).astype(np.float32)
    theirs = (colormaps[cmap](values)[:, :3] * 255).round()
    assert np.abs(colorize(values, cmap).astype(int) - theirs).max() <= 1


def test_overlay_map_equals_a_float64_reference_blend(rng):
    """Normalise, colour with matplotlib and blend in float64, the plain way; unseen pixels untouched."""
    photo = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    m = rng.standard_normal((60, 80)).astype(np.float32)
    box = (5.0, 10.0, 55.0, 70.0)
    ours = overlay_map(photo, m, alpha=0.3, cmap="jet", box=box)
    shown = 0.5 + 0.5 * m.astype(np.float64) / np.abs(m).max()
    heat = (colormaps["jet"](shown)[..., :3] * 255).round()
    reference = np.where(box_mask((60, 80), box)[..., None], (0.7 * photo + 0.3 * heat).round(), photo)
    assert np.abs(ours.astype(int) - reference).max() <= 1
    np.testing.assert_array_equal(ours[:5], photo[:5])
    np.testing.assert_array_equal(ours[:, 70:], photo[:, 70:])


def test_overlay_of_a_grid_map_equals_overlay_of_its_upsampled_map(rng):
    photo = rng.integers(0, 256, (50, 90, 3), dtype=np.uint8)
    grid_map = rng.random((7, 7)).astype(np.float32)
    box = (2.0, 20.0, 48.0, 66.0)
    whole = overlay_map(photo, upsample(grid_map, (50, 90), box), scale="minmax", box=box)
    banded = overlay_map(photo, grid_map, scale="minmax", box=box)
    assert np.abs(whole.astype(int) - banded).max() <= 1


def test_a_box_thinner_than_a_pixel_still_covers_one():
    """A 1 x 3000 photo's centre crop spans 0.875 pixels between two pixel centres: the pixel holding its
    middle is the one the model saw (it was refused before: an empty mask, then min() of nothing)."""
    box = (0.0625, 1499.5625, 0.9375, 1500.4375)
    assert seen_range(3000, box[1], box[3]) == (1500, 1500)
    assert box_mask((1, 3000), box).sum() == 1
    out = upsample(np.full((1, 1, 7, 7), 2.0, np.float32), (1, 3000), box)
    assert out[0, 0, 0, 1500] == 2.0 and out.sum() == 2.0
    photo = np.full((1, 3000, 3), 100, np.uint8)
    shown = overlay_map(photo, np.arange(49, dtype=np.float32).reshape(7, 7), scale="minmax", box=box)
    assert (shown[0, 1500] != 100).any() and (np.delete(shown, 1500, axis=1) == 100).all()


def test_overlay_memory_stays_near_one_photo(rng):
    """No float64 RGBA (32 bytes a pixel) at photo resolution: the peak of new numpy memory is the output
    photo plus a band (about 50 bytes a band pixel), with the map given at the layer's grid."""
    photo = np.zeros((2000, 3000, 3), np.uint8)
    grid_map = rng.random((7, 7)).astype(np.float32)
    tracemalloc.start()
    overlay_map(photo, grid_map, box=(0.0, 0.0, 2000.0, 3000.0))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < photo.nbytes + 64 * BAND_PIXELS, peak / photo.nbytes  # the old way: 30 photos


def test_superpixel_edges_are_skimage_s_inner_boundaries(rng):
    from skimage.segmentation import find_boundaries

    from heatlens.overlay import superpixel_edges

    seeds = rng.uniform(0, 50, (12, 2))
    y, x = np.mgrid[:40, :50]
    segments = np.hypot(y[..., None] - seeds[:, 0], x[..., None] - seeds[:, 1]).argmin(axis=-1)  # Voronoi cells
    # (+ 1 below: find_boundaries takes label 0 for background)
    everything = np.unique(segments)
    np.testing.assert_array_equal(superpixel_edges(segments, everything),
                                  find_boundaries(segments + 1, connectivity=2, mode="inner"))
    some = everything[::3]
    np.testing.assert_array_equal(superpixel_edges(segments, some),
                                  find_boundaries(segments + 1, connectivity=2, mode="inner") & np.isin(segments, some))
    thin, thick = superpixel_edges(segments, everything), superpixel_edges(segments, everything, thickness=3)
    assert (thick >= thin).all() and thick.sum() > 2 * thin.sum()
