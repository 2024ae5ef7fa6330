"""Perturbation methods: planted signals, the lime package as an oracle, black-box models, batching."""

from __future__ import annotations

import numpy as np
import pytest

import heatlens
from heatlens import MethodError

SIZE = 32
REGION = (slice(8, 16), slice(18, 26))


def planted(x: np.ndarray) -> np.ndarray:
    """Class 0's score depends only on the region's brightness; class 1's on nothing."""
    signal = x[:, REGION[0], REGION[1], :].mean(axis=(1, 2, 3)) * 10
    return np.stack([signal, np.zeros_like(signal)], axis=1)


@pytest.fixture
def photo(rng):
    return rng.uniform(0.2, 0.8, (1, SIZE, SIZE, 3)).astype(np.float32)


def region_first(m: np.ndarray) -> bool:
    """The peak is in the region, and the region stands out from the rest (RISE maps carry an offset)."""
    inside = np.zeros(m.shape, bool)
    inside[REGION] = True
    y, x = np.unravel_index(m.argmax(), m.shape)
    m = m - np.median(m)
    return bool(inside[y, x]) and m[inside].mean() > 5 * np.abs(m[~inside]).mean()


@pytest.mark.parametrize(("method", "options"), [
    ("occlusion", {"window": 4, "stride": 2, "fill": 0.0}),
    ("rise", {"n_masks": 1500, "cells": 8, "fill": 0.0}),
    ("lime", {"num_samples": 600, "hide": 0.0,
              "segments": (np.arange(SIZE)[:, None] // 4) * 8 + (np.arange(SIZE)[None, :] // 4)}),
])
def test_planted_region_ranks_first(photo, method, options):
    net = heatlens.wrap(planted, preprocess=None, name="planted")
    result = heatlens.explain(net, photo, method=method, target=0, progress=False, **options)
    assert region_first(result.maps[0, 0]), method


def test_occlusion_by_hand(photo):
    net = heatlens.wrap(planted, preprocess=None)
    result = heatlens.explain(net, photo, method="occlusion", target=0, window=SIZE, stride=SIZE, fill=0.0)
    expected = planted(photo)[0, 0] - planted(np.zeros_like(photo))[0, 0]
    np.testing.assert_allclose(result.maps[0, 0], expected, rtol=1e-5)


def test_rise_on_a_linear_model_follows_its_weights():
    """RISE blurs a model's weights by the mask correlation; a smooth ramp comes through."""
    weights = np.tile(np.linspace(0, 1, SIZE, dtype=np.float32), (SIZE, 1))

    def linear(x):
        return np.stack([(x[..., 0] * weights).sum(axis=(1, 2)), np.zeros(len(x))], axis=1)

    photo = np.ones((1, SIZE, SIZE, 3), np.float32)
    result = heatlens.explain(heatlens.wrap(linear, preprocess=None), photo, method="rise", target=0, n_masks=4000,
                              fill=0.0, cells=4, seed=1)
    correlation = np.corrcoef(result.maps[0, 0].ravel(), weights.ravel())[0, 1]
    assert correlation > 0.8


def test_lime_equals_the_lime_package(photo):
    lime_image = pytest.importorskip("lime.lime_image")
    segments = (np.arange(SIZE)[:, None] // 8) * 4 + (np.arange(SIZE)[None, :] // 8)
    theirs = lime_image.LimeImageExplainer(random_state=3).explain_instance(
        photo[0].astype(np.float64), planted, labels=(0,), top_labels=None, hide_color=None, num_samples=200,
        segmentation_fn=lambda _img: segments, batch_size=10)
    state = np.random.RandomState(3)
    state.randint(0, high=1000)  # lime draws its segmentation seed first
    samples = state.randint(0, 2, 200 * 16).reshape(200, 16)
    ours = heatlens.explain(heatlens.wrap(planted, preprocess=None), photo, method="lime", target=0,
                            num_samples=200, segments=segments, samples=samples)
    expected = np.zeros(16)
    for feature, weight in theirs.local_exp[0]:
        expected[feature] = weight
    # heatlens scores in float32, lime in float64: agreement to float32 precision (1e-5 of weights ~0.05)
    np.testing.assert_allclose(ours.extras["weights"][0][0], expected, atol=1e-5)
    assert ours.extras["intercept"][0][0] == pytest.approx(theirs.intercept[0], rel=1e-5)
    assert ours.extras["score"][0][0] == pytest.approx(theirs.score, rel=1e-4)


def test_lime_segmentations_and_several_targets(photo):
    net = heatlens.wrap(planted, preprocess=None)
    for segmentation in ("quickshift", "slic", "felzenszwalb"):
        result = heatlens.explain(net, photo, method="lime", target=[0, 1], num_samples=50, segmentation=segmentation,
                                  batch_size=16)
        assert result.maps.shape == (1, 2, SIZE, SIZE) and np.isfinite(result.maps).all()
        assert result.extras["segments"].shape == (1, SIZE, SIZE)
    with pytest.raises(MethodError, match="unknown segmentation"):
        heatlens.explain(net, photo, method="lime", segmentation="watershed")
    with pytest.raises(MethodError, match=r"kernel_width must be a number > 0. Received: 0"):
        heatlens.explain(net, photo, method="lime", kernel_width=0)
    with pytest.raises(MethodError, match=r"num_samples='50' is not valid for lime: num_samples takes an integer"):
        heatlens.explain(net, photo, method="lime", num_samples="50")


def test_black_box_refuses_gradient_methods_clearly(photo):
    net = heatlens.wrap(planted, preprocess=None)
    with pytest.raises(MethodError, match="perturbation methods"):
        heatlens.explain(net, photo, method="saliency")
    with pytest.raises(MethodError, match="black-box"):
        heatlens.explain(net, photo)


def test_black_box_output_errors(photo):
    with pytest.raises(heatlens.ModelError, match=r"shape \(N, classes\)"):
        heatlens.explain(heatlens.wrap(lambda x: x.sum(), preprocess=None), photo, method="occlusion")
    with pytest.raises(heatlens.ModelError, match="NaN or infinite"):
        heatlens.explain(heatlens.wrap(lambda x: np.full((len(x), 2), np.nan), preprocess=None), photo,
                         method="occlusion")


def test_seeds_batch_sizes_and_auto(photo):
    net = heatlens.wrap(planted, preprocess=None)
    a = heatlens.explain(net, photo, method="rise", target=0, n_masks=64, seed=1, batch_size=8).maps
    b = heatlens.explain(net, photo, method="rise", target=0, n_masks=64, seed=1, batch_size="auto").maps
    c = heatlens.explain(net, photo, method="rise", target=0, n_masks=64, seed=2, batch_size=8).maps
    np.testing.assert_allclose(a, b, rtol=1e-6)
    assert not np.allclose(a, c)
    with pytest.raises(MethodError, match="batch_size"):
        heatlens.explain(net, photo, method="rise", batch_size=0)


def test_perturbation_methods_on_framework_models(lite0, cat):
    result = heatlens.explain(lite0, cat, method="occlusion", window=56, stride=56, progress=False)
    assert result.maps.shape == (1, 1, *cat.shape[:2]) and np.isfinite(result.maps).all()


def test_shap_partition_equals_brute_force_owen_values(rng):
    """A 2x2 image, min_block 1, enough evaluations: the hierarchy {{p00, p01}, {p10, p11}} (rows first),
    and Owen values computed here from their definition."""
    weights = rng.normal(size=(2, 2, 3)).astype(np.float32)

    def nonlinear(x):
        s = (x * weights).sum(axis=(1, 2, 3))
        return np.stack([np.tanh(s) + s**2, s], axis=1)

    photo = rng.uniform(0, 1, (1, 2, 2, 3)).astype(np.float32)
    result = heatlens.explain(heatlens.wrap(nonlinear, preprocess=None), photo, method="shap_partition", target=0,
                              max_evals=100, masker=0.0, min_block=1, batch_size=4, upsample=False)

    def value(on: set) -> float:
        x = np.zeros_like(photo)
        for r, c in on:
            x[0, r, c] = photo[0, r, c]
        return float(nonlinear(x)[0, 0])

    unions = [[(0, 0), (0, 1)], [(1, 0), (1, 1)]]
    for j, union in enumerate(unions):
        other = set(unions[1 - j])
        for i, player in enumerate(union):
            sibling = {union[1 - i]}
            expected = sum(0.25 * (value(context | team | {player}) - value(context | team))
                           for context in (set(), other) for team in (set(), sibling))
            assert result.maps[0, 0][player] == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_shap_partition_is_additive_and_finds_the_region(photo):
    def two_outputs(x):
        return np.concatenate([planted(x)[:, :1], x.mean(axis=(1, 2, 3))[:, None]], axis=1)

    net = heatlens.wrap(two_outputs, preprocess=None)
    result = heatlens.explain(net, photo, method="shap_partition", target=[0, 1], max_evals=300, masker=0.0)
    full = np.take_along_axis(result.logits, result.targets.ids, axis=1)
    gap = result.maps.sum(axis=(2, 3)) - (full - result.extras["base_values"])
    assert np.abs(gap).max() <= 1e-6 * np.abs(full).max() + 1e-6
    assert region_first(result.maps[0, 0])
    with pytest.raises(MethodError, match="max_evals"):
        heatlens.explain(net, photo, method="shap_partition", max_evals=1)


def test_lime_superpixel_pictures(photo):
    segments = (np.arange(SIZE)[:, None] // 8) * 4 + (np.arange(SIZE)[None, :] // 8)
    result = heatlens.explain(heatlens.wrap(planted, preprocess=None), photo, method="lime", target=0,
                              num_samples=300, segments=segments, hide=0.0)
    hidden = result.superpixel_images(num_features=2, hide_rest=True, boundaries=False)[0, 0]
    assert hidden.shape == (SIZE, SIZE, 3)
    visible = hidden.any(axis=-1)
    assert visible[REGION].all() and visible.sum() == 2 * 64
    both = result.superpixel_images(num_features=16, positive_only=False)
    assert both.dtype == np.uint8
    with pytest.raises(heatlens.HeatlensError, match="no superpixels"):
        heatlens.explain(heatlens.wrap(planted, preprocess=None), photo, method="occlusion").superpixel_images()


@pytest.mark.parametrize("masker", ["inpaint_telea", "inpaint_ns"])
def test_shap_partition_with_inpainting(photo, masker):
    """Inpainting works on 0..255 pixel values: the photo's, given to a network without preprocessing."""
    pytest.importorskip("cv2")
    net = heatlens.wrap(planted, preprocess=None)
    pixels = (photo * 255).round()
    result = heatlens.explain(net, pixels, method="shap_partition", target=0, max_evals=120, masker=masker)
    full = np.take_along_axis(result.logits, result.targets.ids, axis=1)
    gap = result.maps.sum(axis=(2, 3)) - (full - result.extras["base_values"])
    assert np.abs(gap).max() <= 1e-5 * np.abs(full).max() + 1e-6
    mean_colour = np.broadcast_to(pixels.mean(axis=(1, 2), keepdims=True), pixels.shape)
    np.testing.assert_allclose(result.extras["base_values"][:, 0], planted(mean_colour)[:, 0], rtol=1e-5)
    with pytest.raises(MethodError, match="unknown masker"):
        heatlens.explain(net, pixels, method="shap_partition", masker="inpaint_magic")


@pytest.mark.parametrize("shape", [(4, 4, 3), (3, 5, 3)])
def test_shap_partition_equals_the_shap_package(rng, shape):
    """Same hierarchy (SHAP's Image masker: halves of the longer side, the larger half of an odd side first,
    then the colour channels; heatlens' default), same masking (0), every node expanded: the same Owen values
    (budgets and inpainting: tests/methods/test_shap_partition.py)."""
    shap = pytest.importorskip("shap")
    weights = rng.normal(size=shape)

    def f(x):
        s = (np.asarray(x, np.float64).reshape(len(x), *shape) * weights).sum(axis=(1, 2, 3))
        return np.stack([np.tanh(s) + 0.1 * s**2, s], axis=1)

    photo = rng.uniform(0, 1, (1, *shape)).astype(np.float32)
    explainer = shap.Explainer(f, shap.maskers.Image(0.0, shape), algorithm="partition")
    theirs = explainer(photo.astype(np.float64), max_evals=20000, outputs=[0], silent=True).values[0, ..., 0]
    ours = heatlens.explain(heatlens.wrap(lambda x: f(x).astype(np.float32), preprocess=None), photo,
                            method="shap_partition", target=0, max_evals=20000, masker=0.0, upsample=False)
    np.testing.assert_allclose(ours.attributions[0, 0], theirs, atol=1e-6)


def test_occlusion_with_gaps_between_windows_is_zero_there_not_nan(photo):
    def brightness(x):
        return np.repeat(x.reshape(len(x), -1).sum(axis=1, keepdims=True), 2, axis=1)

    result = heatlens.explain(heatlens.wrap(brightness, preprocess=None), photo, method="occlusion", target=0,
                              window=1, stride=100)
    assert np.isfinite(result.maps).all()
    covered = np.zeros((SIZE, SIZE), bool)
    covered[np.ix_([0, SIZE - 1], [0, SIZE - 1])] = True
    assert (result.maps[0, 0][~covered] == 0).all() and (result.maps[0, 0][covered] != 0).any()


def test_lime_with_a_vanishing_kernel_width_stays_finite(photo):
    result = heatlens.explain(heatlens.wrap(planted, preprocess=None), photo, method="lime", target=0,
                              num_samples=24, kernel_width=1e-300, progress=False)
    assert np.isfinite(result.maps).all()
