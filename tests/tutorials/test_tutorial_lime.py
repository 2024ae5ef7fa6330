"""lime's "Using lime for image classification" tutorial, run as written (InceptionV3, its
preprocess_input, explain_instance with top_labels=5, hide_color=0, then get_image_and_mask), next to
heatlens' LIME on the same predict function with lime's own segments and sample matrix.

Offline substitutions: InceptionV3(weights=None) with a fixed seed at 128x128 (it takes any size
from 75 up without ImageNet weights; at 128 quickshift cuts enough superpixels), the cat photo,
LimeImageExplainer(random_state=...) for a reproducible run, num_samples=50.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
lime_image = pytest.importorskip("lime.lime_image")

from tutorial_helpers import seeded

import heatlens

SIZE = 128
SAMPLES = 50
SEED = 5
LIME_STATE = 7


@pytest.fixture(scope="module")
def case(photo_path: Path) -> dict:
    """The tutorial's objects, its explanation, and every batch lime handed the predict function."""
    from keras.applications import inception_v3 as inc_net

    inet_model = seeded(lambda: inc_net.InceptionV3(weights=None, input_shape=(SIZE, SIZE, 3)), SEED)

    def transform_img_fn(path_list):
        out = []
        for img_path in path_list:
            img = keras.utils.load_img(img_path, target_size=(SIZE, SIZE))
            x = keras.utils.img_to_array(img)
            x = np.expand_dims(x, axis=0)
            x = inc_net.preprocess_input(x)
            out.append(x)
        return np.vstack(out)

    images = transform_img_fn([photo_path])
    seen = []

    def predict(batch: np.ndarray) -> np.ndarray:
        seen.append(np.array(batch))
        return inet_model.predict(batch, verbose=0)

    explainer = lime_image.LimeImageExplainer(random_state=LIME_STATE)
    explanation = explainer.explain_instance(images[0].astype("double"), predict, top_labels=5, hide_color=0,
                                             num_samples=SAMPLES)
    temp, mask = explanation.get_image_and_mask(explanation.top_labels[0], positive_only=True, num_features=5,
                                                hide_rest=True)
    return {"model": inet_model, "images": images, "explanation": explanation, "temp": temp, "mask": mask,
            "seen": np.concatenate(seen)}


def lime_samples(features: int) -> np.ndarray:
    """The sample matrix lime draws: its RandomState gives the segmentation's seed first, then the coin
    flips (num_samples x features), the first sample keeping every superpixel."""
    state = np.random.RandomState(LIME_STATE)
    state.randint(0, high=1000)
    data = state.randint(0, 2, SAMPLES * features).reshape((SAMPLES, features))
    data[0, :] = 1
    return data


@pytest.fixture(scope="module")
def result(case: dict) -> heatlens.Explanation:
    """heatlens' call in the tutorial's place: the same predict function, image, segments and samples, in
    lime's batches of 10 (a random network's scores differ by float32 rounding between batch sizes, which
    is most of its tiny weights)."""
    segments = case["explanation"].segments
    return heatlens.explain(case["model"].predict, case["images"][0].astype("double"), method="lime",
                            segments=segments, samples=lime_samples(int(segments.max()) + 1), hide=0,
                            num_samples=SAMPLES, target="top5", batch_size=10, progress=False)


def test_the_reproduced_samples_are_what_lime_scored(case: dict) -> None:
    """The oracle's own check: the sample matrix rebuilt here makes exactly the images lime scored."""
    image, segments = case["images"][0], case["explanation"].segments
    features = int(segments.max()) + 1
    assert features >= 10, "too few superpixels for a meaningful comparison"
    np.testing.assert_array_equal(np.unique(segments), np.arange(features))
    data = lime_samples(features)
    made = np.where(data[:, segments][..., None].astype(bool), image, 0.0)
    np.testing.assert_array_equal(case["seen"], made)


def test_same_top_labels(case: dict, result: heatlens.Explanation) -> None:
    np.testing.assert_array_equal(result.targets.ids[0], case["explanation"].top_labels)


def test_weights_and_intercepts_equal_lime(case: dict, result: heatlens.Explanation) -> None:
    explanation = case["explanation"]
    weights = result.extras["weights"][0]
    for k, label in enumerate(explanation.top_labels):
        expected = np.zeros(weights.shape[1])
        for feature, weight in explanation.local_exp[label]:
            expected[feature] = weight
        peak = np.abs(expected).max()
        assert peak > 0
        np.testing.assert_allclose(weights[k], expected, rtol=0, atol=1e-5 * peak)
        np.testing.assert_allclose(result.extras["intercept"][0, k], explanation.intercept[label],
                                   rtol=1e-5, atol=1e-5 * peak)
    # lime keeps one score, the fit of the label it fits last: its top label
    np.testing.assert_allclose(result.extras["score"][0, 0], explanation.score, atol=1e-5)


def test_the_map_is_each_superpixels_weight(case: dict, result: heatlens.Explanation) -> None:
    explanation = case["explanation"]
    label = explanation.top_labels[0]
    weights = dict(explanation.local_exp[label])
    expected = np.vectorize(weights.get)(explanation.segments)
    np.testing.assert_allclose(result.maps[0, 0], expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_lime_mask_equals_get_image_and_mask(case: dict, result: heatlens.Explanation) -> None:
    """The tutorial's (temp, mask) for its top label: the same mask; the picture is hidden outside it."""
    temp, mask = result.lime_mask(0, positive_only=True, num_features=5, hide_rest=True)
    np.testing.assert_array_equal(mask, case["mask"])
    assert not temp[mask == 0].any()
    assert not case["temp"][case["mask"] == 0].any()
