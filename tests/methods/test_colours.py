"""Pictures in the photo's RGB whatever the preprocessing: the measured colour map undone for LIME's
segmentation and superpixel picture, against the photo's own crop segmented directly."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import segmentation as skseg

import heatlens
from heatlens.methods.colours import colour_map, photo_pixels, pixel_changes
from heatlens.preprocess import ResizeCrop

CAFFE_MEAN = np.float32([103.939, 116.779, 123.68])
GEOMETRY = ResizeCrop(resize=40, crop=32, mean=(0, 0, 0), std=(1, 1, 1))


def caffe(images: np.ndarray) -> np.ndarray:
    """keras' caffe preprocessing after a resize and crop: RGB to BGR, minus the ImageNet mean (BGR)."""
    return GEOMETRY(images)[..., ::-1] - CAFFE_MEAN


PREPROCESSINGS = {
    "caffe": caffe,
    "mean_std": ResizeCrop(resize=40, crop=32, mean=(123.7, 116.3, 103.5), std=(58.4, 57.1, 57.4)),
    "minus_one_to_one": lambda images: GEOMETRY(images) / 127.5 - 1,
}


def scores(x: np.ndarray) -> np.ndarray:
    """Two classes: the input's first and last channel means (any preprocessing's inputs)."""
    return np.stack([x[..., 0].mean(axis=(1, 2)), x[..., -1].mean(axis=(1, 2))], axis=1)


def crop_of(photo: np.ndarray) -> np.ndarray:
    """The photo's pixels the model sees: the preprocessing's resized crop, as uint8 RGB."""
    return np.round(GEOMETRY(photo[None])).astype(np.uint8)


@pytest.mark.parametrize("name", sorted(PREPROCESSINGS))
def test_lime_segments_the_photos_own_crop(cat, name):
    """The superpixel picture is the crop in its colours, and quickshift segments it as it segments the
    crop itself (skimage on the photo's pixels, lime's default parameters)."""
    net = heatlens.wrap(scores, preprocess=PREPROCESSINGS[name])
    result = heatlens.explain(net, cat, method="lime", target=0, num_samples=8, progress=False)
    crop = crop_of(cat)
    picture = result.extras["segmented_images"]
    assert picture.dtype == np.uint8 and picture.shape == crop.shape
    assert np.abs(picture.astype(int) - crop).max() <= 1
    expected = skseg.quickshift(crop[0], kernel_size=4, max_dist=200, ratio=0.2, rng=0)
    np.testing.assert_array_equal(result.extras["segments"][0], expected)


def test_the_caffe_colour_map_is_measured_as_a_swap_and_a_shift(cat):
    """input = pixels @ M.T + offset with M the BGR permutation and offset minus the caffe mean."""
    matrix, offset = colour_map(heatlens.wrap(scores, preprocess=caffe), (32, 32, 3))
    np.testing.assert_allclose(matrix, np.eye(3)[::-1], atol=1e-6)
    np.testing.assert_allclose(offset, -CAFFE_MEAN, atol=1e-4)


def test_without_preprocessing_pixel_values_are_the_pixels_and_fractions_are_stretched(rng):
    net = heatlens.wrap(scores, preprocess=None)
    pixels = rng.integers(30, 200, (1, 8, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(photo_pixels(net, pixels), pixels.astype(np.uint8))
    fractions = pixels / 400
    shown = photo_pixels(net, fractions)
    assert shown.min() == 0 and shown.max() == 255  # model-ready floats: min-max, as before


def red_square() -> np.ndarray:
    """A blue photo with a red square in its middle."""
    photo = np.zeros((40, 40, 3), np.uint8)
    photo[..., 2] = 200
    photo[12:28, 12:28] = (230, 0, 0)
    return photo


def test_a_non_affine_preprocessing_keeps_red_red():
    """Squared values in BGR order are no affine map: shown min-max scaled, the swap still undone."""
    net = heatlens.wrap(scores, preprocess=lambda images: (GEOMETRY(images)[..., ::-1] / 255) ** 2)
    x = net.prepare(red_square()[None])
    assert colour_map(net, x.shape[1:]) is None
    shown = photo_pixels(net, x)[0].astype(int)
    assert shown[16, 16, 0] > shown[16, 16, 2] + 100 and shown[2, 2, 2] > shown[2, 2, 0] + 100


def test_input_changes_become_pixel_changes():
    """A change of one BGR input channel is a change of the opposite RGB channel; std scales back."""
    delta = np.zeros((1, 32, 32, 3), np.float32)
    delta[0, 5, 5, 0] = 1.0
    swapped = pixel_changes(heatlens.wrap(scores, preprocess=caffe), delta)
    np.testing.assert_allclose(swapped[0, 5, 5], [0, 0, 1], atol=1e-6)
    scaled = pixel_changes(heatlens.wrap(scores, preprocess=PREPROCESSINGS["mean_std"]), delta)
    np.testing.assert_allclose(scaled[0, 5, 5], [58.4, 0, 0], rtol=1e-4)


def test_a_keras_caffe_model_shows_lime_superpixels_in_the_photos_colours(cat, tmp_path):
    """VGG16 with its own preprocess_input (BGR, mean subtracted): the superpixel picture's mean RGB is the
    photo crop's to 1 grey level (the min-max copy of the BGR input made the cat blue)."""
    keras = pytest.importorskip("keras")
    from keras.applications import vgg16

    from heatlens.models.loading.keras_files import AppPreprocess

    keras.utils.set_random_seed(0)
    model = keras.applications.VGG16(weights=None, input_shape=(64, 64, 3), classes=10, classifier_activation=None)
    prep = AppPreprocess(64, vgg16.preprocess_input)
    result = heatlens.explain(heatlens.wrap(model, preprocess=prep), cat, method="lime", target=0, num_samples=4,
                              progress=False)
    crop = np.round(ResizeCrop(resize=73, crop=64, mean=(0, 0, 0), std=(1, 1, 1))(cat[None])).astype(np.uint8)
    picture = result.extras["segmented_images"]
    np.testing.assert_allclose(picture.mean(axis=(0, 1, 2)), crop.mean(axis=(0, 1, 2)), atol=1)
    expected = skseg.quickshift(crop[0], kernel_size=4, max_dist=200, ratio=0.2, rng=0)
    np.testing.assert_array_equal(result.extras["segments"][0], expected)
