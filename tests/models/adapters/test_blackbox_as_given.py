"""A plain predict function receives the images as the caller gave them (as lime and shap pass them), so a
score computed on a known region of the photo is explained on that region."""

from __future__ import annotations

import numpy as np
import pytest

import heatlens

SIDE, TOP, LEFT, SQUARE = 64, 20, 36, 16  # the planted square covers 6% of the image
PERTURBATION = {
    "lime": {"num_samples": 300, "segmentation": "felzenszwalb", "hide": 0},  # as the lime tutorial: hide_color=0
    "shap_partition": {"max_evals": 1000, "masker": "black"},
    "occlusion": {"window": 8, "stride": 4},
    "rise": {"n_masks": 8000, "cells": 12},
}


def planted_photo() -> np.ndarray:
    """A textured 64x64 uint8 photo with a bright red square planted at a known place."""
    rng = np.random.default_rng(3)
    photo = (rng.random((SIDE, SIDE, 3)) * 90 + 60).astype(np.uint8)
    photo[TOP : TOP + SQUARE, LEFT : LEFT + SQUARE] = (230, 20, 20)
    return photo


def redness_of_the_square(images: np.ndarray) -> np.ndarray:
    """Two scores that depend only on the planted square: how red it is, and its opposite."""
    assert images.dtype == np.uint8 and images.shape[1:] == (SIDE, SIDE, 3), (images.dtype, images.shape)
    square = images[:, TOP : TOP + SQUARE, LEFT : LEFT + SQUARE].astype(np.float64)
    red = (square[..., 0] - square[..., 1:].mean(axis=-1)).mean(axis=(1, 2)) / 255
    return np.stack([red, -red], axis=1)


@pytest.mark.parametrize("method", list(PERTURBATION))
def test_each_perturbation_method_puts_most_positive_mass_on_the_planted_square(method):
    """Mass above the level of the irrelevant pixels (the map's median: 94% of the pixels are irrelevant),
    which is 0 for LIME, SHAP and occlusion and the mean masked score for RISE, whose maps are all positive."""
    result = heatlens.explain(redness_of_the_square, planted_photo(), method=method, target=0, progress=False,
                              **PERTURBATION[method])
    positive = np.clip(result.maps[0, 0] - np.median(result.maps[0, 0]), 0, None)
    inside = positive[TOP : TOP + SQUARE, LEFT : LEFT + SQUARE].sum()
    assert result.maps.shape == (1, 1, SIDE, SIDE)
    assert inside / positive.sum() > 0.5, f"{method}: {inside / positive.sum():.0%} on the square"


def test_the_function_receives_uint8_photos_at_their_own_size_and_the_result_says_so():
    seen = []

    def predict(images):
        seen.append((images.dtype, images.shape[1:]))
        return images.reshape(len(images), -1)[:, :3].astype(np.float32)

    photo = planted_photo()[:48]
    result = heatlens.explain(predict, photo, method="occlusion", window=16, stride=16, target=0)
    assert set(seen) == {(np.dtype(np.uint8), (48, SIDE, 3))}
    assert result.maps.shape == (1, 1, 48, SIDE)
    assert any("as given: uint8 RGB" in note for note in result.notes)


def test_float_arrays_reach_the_function_as_floats():
    seen = set()

    def predict(images):
        seen.add(images.dtype)
        return images.reshape(len(images), -1)[:, :2]

    floats = planted_photo().astype(np.float32)  # 0..255 floats, as shap's imagenet50 are
    heatlens.explain(predict, floats, method="occlusion", window=16, stride=16, target=0)
    assert seen == {np.dtype(np.float32)}


def test_a_preprocessing_asked_for_is_applied_and_named_in_the_result():
    seen = set()

    def predict(images):
        seen.add((images.dtype, images.shape[1:]))
        return images.reshape(len(images), -1)[:, :2]

    result = heatlens.explain(heatlens.wrap(predict, preprocess="imagenet"), planted_photo(), method="occlusion",
                              window=56, stride=56, target=0)
    assert seen == {(np.dtype(np.float32), (224, 224, 3))}
    assert any("ResizeCrop(resize=256, crop=224" in note for note in result.notes)


def test_photos_of_different_sizes_in_one_call_give_one_result_each():
    shapes = [(48, 64), (64, 40), (48, 64)]
    photos = [planted_photo()[:h, :w] for h, w in shapes]
    results = heatlens.explain(lambda x: x.reshape(len(x), -1)[:, :3].astype(np.float32), photos,
                               method="occlusion", window=16, stride=16, target=[[0], [1, 2], [2]])
    assert [r.maps.shape for r in results] == [(1, 1, 48, 64), (1, 2, 64, 40), (1, 1, 48, 64)]
    assert [r.targets.ids.tolist() for r in results] == [[[0]], [[1, 2]], [[2]]]
    with pytest.raises(heatlens.TargetError, match="one entry per image: 3 images, 2 entries"):
        heatlens.explain(lambda x: x.reshape(len(x), -1)[:, :3], photos, method="occlusion", target=[[0], [1]])


def test_layout_nchw_hands_channels_first_arrays_and_is_checked():
    seen = set()

    def predict(images):
        seen.add(images.shape[1:])
        return images.reshape(len(images), -1)[:, :2].astype(np.float32)

    result = heatlens.explain(heatlens.wrap(predict, layout="NCHW"), planted_photo()[:48], method="occlusion",
                              window=16, stride=16, target=0)
    assert seen == {(3, 48, SIDE)} and "(N, 3, H, W)" in result.notes[0]
    with pytest.raises(heatlens.ModelError, match=r"layout must be 'NHWC' .* Received: 'CHW'"):
        heatlens.wrap(predict, layout="CHW")
