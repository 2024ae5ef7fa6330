"""LIME's (image, mask) against the lime package's get_image_and_mask on the same image, segments and samples;
superpixels outlined by sign, also when every superpixel is chosen."""

from __future__ import annotations

import numpy as np
import pytest

import heatlens
from heatlens import HeatlensError, TargetError
from heatlens.overlay import NEGATIVE, POSITIVE, blend

SIZE, CELL = 48, 8
SEGMENTS = (np.arange(SIZE)[:, None] // CELL) * (SIZE // CELL) + (np.arange(SIZE)[None, :] // CELL)
COUNT = (SIZE // CELL) ** 2


def predict(images: np.ndarray) -> np.ndarray:
    """Three classes: red on the left minus green on the right; the top half's brightness; blue at the centre
    minus the rest. Each superpixel shown (not black) pushes a class up or down."""
    x = np.asarray(images, np.float64) / 255
    half = SIZE // 2
    first = x[:, :, :half, 0].mean(axis=(1, 2)) - x[:, :, half:, 1].mean(axis=(1, 2))
    second = x[:, :half].mean(axis=(1, 2, 3))
    third = x[:, 16:32, 16:32, 2].mean(axis=(1, 2)) - 0.5 * x[..., 2].mean(axis=(1, 2))
    return np.stack([first, second, third], axis=1)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    image = np.random.default_rng(5).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    image[0, 0], image[0, 1] = 0, 255  # spans 0..255, so any display of it is the photo itself
    return image


@pytest.fixture(scope="module")
def both(photo):
    """lime's explanation and heatlens' of the same photo, segments and sample matrix (black for hidden)."""
    lime_image = pytest.importorskip("lime.lime_image")
    explainer = lime_image.LimeImageExplainer(random_state=0)
    drawn = {}
    original = explainer.data_labels

    def recording(*args, **kwargs):
        drawn["samples"], labels = original(*args, **kwargs)
        return drawn["samples"], labels

    explainer.data_labels = recording
    theirs = explainer.explain_instance(photo, predict, labels=(0, 1, 2), top_labels=None, hide_color=0,
                                        num_samples=100, segmentation_fn=lambda _image: SEGMENTS, batch_size=10,
                                        random_seed=0, num_features=COUNT)
    ours = heatlens.explain(heatlens.wrap(predict, preprocess=None, classes=["left", "top", "centre"]), photo,
                            method="lime", target=[2, 0, 1], num_samples=100, segments=SEGMENTS,
                            samples=drawn["samples"], hide=0.0, progress=False)
    return theirs, ours


def test_the_weights_are_lime_s(both):
    theirs, ours = both
    for k, label in enumerate((2, 0, 1)):
        expected = np.zeros(COUNT)
        for feature, weight in theirs.local_exp[label]:
            expected[feature] = weight
        np.testing.assert_allclose(ours.extras["weights"][0][k], expected, atol=1e-6)
        assert (expected > 0).any() and (expected < 0).any()


@pytest.mark.parametrize("options", [
    {},
    {"positive_only": False},
    {"positive_only": True, "num_features": 3, "hide_rest": True},
    {"positive_only": False, "num_features": 8, "hide_rest": True},
    {"positive_only": False, "negative_only": True, "num_features": 4},
    {"positive_only": False, "num_features": COUNT},
    {"positive_only": True, "num_features": COUNT, "hide_rest": True},
    {"positive_only": False, "num_features": 10, "min_weight": 0.004},
    {"positive_only": True, "num_features": 10, "min_weight": 0.004},
])
def test_lime_mask_equals_get_image_and_mask(both, options):
    theirs, ours = both
    for k, label in enumerate((2, 0, 1)):
        image, mask = theirs.get_image_and_mask(label, **options)
        mine, my_mask = ours.lime_mask(k, **options)
        assert mine.dtype == image.dtype and my_mask.dtype == mask.dtype
        np.testing.assert_array_equal(my_mask, mask)
        np.testing.assert_array_equal(mine, image)


def test_min_weight_lies_between_weights(both):
    """The min_weight cases above test a threshold, not float rounding: no weight sits near it."""
    weights = np.abs(np.concatenate(both[1].extras["weights"][0]))
    assert np.abs(weights - 0.004).min() > 1e-5
    assert (weights > 0.004).sum() > 3 and (weights < 0.004).sum() > 3


def test_targets_by_name_and_clear_errors(both, photo):
    _, ours = both
    by_position = ours.lime_mask(1, positive_only=False)
    for name in ("left", "LEFT"):
        by_name = ours.lime_mask(name, positive_only=False)
        np.testing.assert_array_equal(by_name[1], by_position[1])
    with pytest.raises(TargetError, match=r"target 'cat' is not one of the explained targets: pass a position "
                                          r"0..2 or one of the names \['centre', 'left', 'top'\]"):
        ours.lime_mask("cat")
    with pytest.raises(TargetError, match="not one of the explained targets"):
        ours.lime_mask(3)
    with pytest.raises(HeatlensError, match=r"image must be a position 0..0 among the explained images. Received: 1"):
        ours.lime_mask(0, image=1)
    with pytest.raises(HeatlensError, match="positive_only and negative_only cannot both be True"):
        ours.lime_mask(0, negative_only=True)
    with pytest.raises(HeatlensError, match=r"num_features must be a whole number >= 0. Received: -1"):
        ours.lime_boundaries(0, num_features=-1)
    occlusion = heatlens.explain(heatlens.wrap(predict, preprocess=None), photo, method="occlusion", target=0)
    with pytest.raises(HeatlensError, match="has no superpixels; use method='lime'"):
        occlusion.lime_mask()


def test_boundaries_per_sign_also_when_every_superpixel_is_chosen(both, photo):
    _, ours = both
    weights = ours.extras["weights"][0][1]
    picture = ours.lime_boundaries(1, num_features=COUNT)
    labels = SEGMENTS
    for f in range(COUNT):
        cell = picture[labels == f].reshape(CELL, CELL, 3)
        colour = POSITIVE if weights[f] > 0 else NEGATIVE
        ring = np.ones((CELL, CELL), bool)
        ring[1:-1, 1:-1] = False
        row, col = divmod(f, SIZE // CELL)
        # edges lie inside each superpixel, towards its neighbours only (not along the photo's border)
        inner = ring & ~_on_border(row, col, SIZE // CELL)
        assert (cell[inner] == colour).all(), f
        middle = photo[labels == f].reshape(CELL, CELL, 3)[2:-2, 2:-2]
        tinted = blend(middle, np.broadcast_to(np.array(colour, np.uint8), middle.shape), 0.25)
        np.testing.assert_array_equal(cell[2:-2, 2:-2], tinted)
    y, x = np.mgrid[:SIZE, :SIZE]
    near = [((v % CELL == CELL - 1) & (v < SIZE - 1)) | ((v % CELL == 0) & (v > 0)) for v in (y, x)]
    shown = ours.superpixel_images(num_features=COUNT, positive_only=False)[0, 1]
    np.testing.assert_array_equal((shown == (255, 255, 0)).all(axis=-1), near[0] | near[1])


def test_boundaries_of_some_superpixels_leave_the_rest_as_is(both, photo):
    _, ours = both
    weights = ours.extras["weights"][0][0]
    picture = ours.lime_boundaries(0, num_features=2, positive_only=True, hide_rest=True)
    best = np.argsort(-weights)[:2]
    chosen = np.isin(SEGMENTS, best)
    assert (picture[~chosen] == 0).all()
    assert (picture[chosen] == POSITIVE).all(axis=-1).any() and not (picture == NEGATIVE).all(axis=-1).any()


def _on_border(row: int, col: int, cells: int) -> np.ndarray:
    """The pixels of a cell that lie on the photo's border."""
    border = np.zeros((CELL, CELL), bool)
    border[0, :] |= row == 0
    border[-1, :] |= row == cells - 1
    border[:, 0] |= col == 0
    border[:, -1] |= col == cells - 1
    return border


@pytest.mark.parametrize("kind", ["uint8", "float"])
def test_selection_and_mask_equal_lime_s_on_any_picture(kind):
    """lime's ImageExplanation fed our weights: pictures that do not reach 255, or are floats in -1..1 (the
    InceptionV3 tutorial's), come out the same."""
    lime_image = pytest.importorskip("lime.lime_image")
    from heatlens.overlay import lime_image_and_mask, lime_selection

    rng = np.random.default_rng(2)
    picture = (rng.integers(10, 200, (SIZE, SIZE, 3), dtype=np.uint8) if kind == "uint8"
               else rng.uniform(-1, 0.7, (SIZE, SIZE, 3)).astype(np.float32))
    weights = rng.normal(size=COUNT)
    theirs = lime_image.ImageExplanation(picture, SEGMENTS)
    theirs.local_exp[0] = sorted(enumerate(weights), key=lambda fw: abs(fw[1]), reverse=True)
    for positive_only, negative_only, hide_rest, num_features in [(True, False, False, 5), (False, False, False, 7),
                                                                  (False, True, True, 3), (False, False, True, 12)]:
        image, mask = theirs.get_image_and_mask(0, positive_only, negative_only, hide_rest, num_features, 0.3)
        chosen = lime_selection(weights, positive_only, negative_only, num_features, 0.3)
        mine, my_mask = lime_image_and_mask(picture, SEGMENTS, chosen, not (positive_only or negative_only), hide_rest)
        assert mine.dtype == image.dtype
        np.testing.assert_array_equal(my_mask, mask)
        np.testing.assert_array_equal(mine, image)
