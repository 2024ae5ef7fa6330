"""Spearman rank correlation and SSIM of maps against scipy's spearmanr and scikit-image's structural_similarity
called directly, and the conventions for constant maps (never a NaN)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

from heatlens.errors import MethodError
from heatlens.metrics.similarity import compare, spearman, ssim


@pytest.fixture
def maps() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2, 3, 12, 10))
    b = 0.6 * a + rng.normal(size=a.shape)
    b[0, 0, :4] = b[0, 0, 0, 0]  # ties
    return a.astype(np.float32), b.astype(np.float32)


def test_spearman_is_scipys(maps):
    a, b = maps
    out = spearman(a, b)
    assert out.shape == (2, 3)
    for i in range(2):
        for k in range(3):
            assert out[i, k] == pytest.approx(spearmanr(a[i, k].ravel(), b[i, k].ravel())[0], abs=1e-12)
    assert spearman(a, a) == pytest.approx(np.ones((2, 3)))
    assert spearman(a, -a) == pytest.approx(-np.ones((2, 3)))


def test_ssim_is_scikit_images_with_the_range_of_both_maps(maps):
    a, b = maps
    out = ssim(a, b)
    assert out.shape == (2, 3)
    for i in range(2):
        for k in range(3):
            one, other = a[i, k].astype(np.float64), b[i, k].astype(np.float64)
            span = max(one.max(), other.max()) - min(one.min(), other.min())
            assert out[i, k] == pytest.approx(structural_similarity(one, other, data_range=span), abs=1e-12)
    assert ssim(a, a) == pytest.approx(np.ones((2, 3)))


def test_constant_maps_give_numbers_not_nan():
    flat, ramp = np.zeros((1, 8, 8)), np.arange(64.0).reshape(1, 8, 8)
    assert spearman(flat, flat)[0] == 1.0 and spearman(flat, ramp)[0] == 0.0 and spearman(flat, flat + 1)[0] == 0.0
    assert ssim(flat, flat)[0] == 1.0
    assert np.isfinite(ssim(flat, ramp)).all()


def test_small_maps_use_the_largest_window_that_fits():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 6)), rng.normal(size=(5, 6))
    span = max(a.max(), b.max()) - min(a.min(), b.min())
    assert ssim(a, b) == pytest.approx(structural_similarity(a, b, win_size=5, data_range=span))
    with pytest.raises(MethodError, match="at least 3x3"):
        ssim(np.zeros((2, 2)), np.ones((2, 2)))


def test_compare_picks_by_name(maps):
    a, b = maps
    np.testing.assert_array_equal(compare("ssim", a, b), ssim(a, b))
    np.testing.assert_array_equal(compare("spearman", a, b), spearman(a, b))
    with pytest.raises(MethodError, match="similarity must be one of spearman, ssim"):
        compare("pearson", a, b)
