"""shap's "Explain an intermediate layer of VGG16 on ImageNet" notebook (expected gradients of the top two
classes with respect to the input of model.layers[7], GradientExplainer with local_smoothing=0), next to
heatlens' expected_gradients at layer="layers[7].input".

The notebook is TF1 code (K.get_session().run in map2layer); map2layer below is its TF2 equivalent, a
sub-model up to that tensor. GradientExplainer explains model.layers[-1].output, the softmax, so heatlens
is asked for probabilities (keep_softmax=True). Expected gradients is a random estimate, and heatlens and
shap draw baselines and path points from different generators: one test recomputes heatlens' estimate
from its draws with the notebook's (layers[7].input -> output) model, exactly; another compares shap's
own run with heatlens' statistically. Offline substitutions: VGG16(weights=None) with a fixed seed at
32x32 (the smallest it takes), scikit-image's colour photos in place of shap.datasets.imagenet50,
nsamples=100 (the notebook's default is 200).
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")
shap = pytest.importorskip("shap")
skimage_data = pytest.importorskip("skimage.data")

from tutorial_helpers import seeded

import heatlens

SIZE = 32
SEED = 17
SAMPLES = 100
LAYER = "layers[7].input"
PHOTOS = ("astronaut", "coffee", "rocket", "immunohistochemistry", "colorwheel", "hubble_deep_field")


def resized(image: np.ndarray) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((SIZE, SIZE), Image.Resampling.BILINEAR))


@pytest.fixture(scope="module")
def case(chelsea: np.ndarray) -> dict:
    """The notebook's model, background, explained image and shap values."""
    from keras.applications.vgg16 import VGG16, preprocess_input

    model = seeded(lambda: VGG16(weights=None, include_top=True, input_shape=(SIZE, SIZE, 3)), SEED)
    X = np.stack([resized(getattr(skimage_data, name)()) for name in PHOTOS]).astype(np.float32)  # noqa: N806
    to_explain = resized(chelsea)[None].astype(np.float32)

    def map2layer(x, layer):
        return keras.Model(model.inputs, model.layers[layer].input)(preprocess_input(x.copy())).numpy()

    e = shap.GradientExplainer((model.layers[7].input, model.layers[-1].output), map2layer(X, 7), local_smoothing=0)
    np.random.seed(0)
    shap_values, indexes = e.shap_values(map2layer(to_explain, 7), ranked_outputs=2, nsamples=SAMPLES)
    return {"model": model, "X": X, "to_explain": to_explain, "map2layer": map2layer, "shap_values": shap_values,
            "indexes": indexes}


@pytest.fixture(scope="module")
def network(case: dict) -> heatlens.models.Network:
    return heatlens.wrap(case["model"], preprocess=keras.applications.vgg16.preprocess_input, keep_softmax=True)


def explain(network: heatlens.models.Network, case: dict, background: np.ndarray, **options) -> heatlens.Explanation:
    return heatlens.explain(network, case["to_explain"].astype(np.uint8), method="expected_gradients",
                            layer=LAYER, background=background.astype(np.uint8), target="top2",
                            noise=0.0, progress=False, **options)


def test_layer_position_is_the_notebooks_tensor(case: dict, network: heatlens.models.Network) -> None:
    """layers[7].input of VGG16 is block2_pool's output: heatlens resolves the position to it."""
    result = explain(network, case, case["X"][:1], n_samples=2)
    assert case["model"].layers[7].input is case["model"].get_layer("block2_pool").output
    assert result.layer == "block2_pool"
    np.testing.assert_array_equal(result.targets.ids, case["indexes"])


def test_equals_the_notebooks_model_at_heatlens_draws(case: dict, network: heatlens.models.Network) -> None:
    """With one background image, heatlens' path points are x' + a (x - x') for the seeded generator's
    uniform draws a (after its baseline picks); the notebook's sub-model from layers[7].input gives the
    same mean of gradient x (x - x') at them, to 1e-5 of the peak."""
    samples = 16
    result = explain(network, case, case["X"][:1], n_samples=samples, batch_size=samples, seed=4)
    rng = np.random.default_rng(4)
    rng.integers(0, 1, samples)
    alphas = rng.uniform(0, 1, samples).astype(np.float32)
    point, base = case["map2layer"](case["to_explain"], 7)[0], case["map2layer"](case["X"][:1], 7)[0]
    head = keras.Model(case["model"].layers[7].input, case["model"].layers[-1].output)
    path = tf.constant(base + alphas[:, None, None, None] * (point - base))
    for k, index in enumerate(case["indexes"][0]):
        with tf.GradientTape() as tape:
            tape.watch(path)
            out = head(path)[:, index]
        expected = (tape.gradient(out, path).numpy() * (point - base)).mean(axis=0)
        peak = np.abs(expected).max()
        assert peak > 0
        np.testing.assert_allclose(result.attributions[0, k], expected, rtol=0, atol=1e-5 * peak)


def test_agrees_with_shap_statistically(case: dict, network: heatlens.models.Network) -> None:
    """Both estimate E[(x - x') grad f(x' + a (x - x'))] over the same background with 100 draws each: the
    per-position maps correlate (0.93 and 0.95 here), and their totals match within the Monte-Carlo error
    (1% here)."""
    result = explain(network, case, case["X"], n_samples=SAMPLES)
    for k in range(2):
        theirs = case["shap_values"][0, ..., k]
        ours = result.attributions[0, k]
        assert ours.shape == theirs.shape
        r = np.corrcoef(ours.sum(axis=-1).ravel(), theirs.sum(axis=-1).ravel())[0, 1]
        assert r > 0.9, r
        assert abs(ours.sum() - theirs.sum()) <= 0.15 * abs(theirs.sum()), (ours.sum(), theirs.sum())
