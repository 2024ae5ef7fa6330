"""Display helpers: upsampling checked against scikit-image, normalisation never divides by zero."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.transform import resize

from heatlens import HeatlensError
from heatlens.overlay import blend, box_mask, colorize, grid, normalize, upsample


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
