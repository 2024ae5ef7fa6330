"""shap's "Explain ResNet50 using the Partition explainer" notebook, run as written (the inpaint_telea
Image masker, a predict function that preprocesses a copy itself, batch_size=50, the top 4 outputs), next
to heatlens' shap_partition with the same function, masker and evaluation budget.

Offline substitutions: ResNet50(weights=None) with a fixed seed at 32x32 (ResNet50 takes any size from
32 up without ImageNet weights), the cat photo as the one image (a float32 0..255 array, as
shap.datasets.imagenet50 gives), class names from heatlens, max_evals=100 (the notebook's first call);
np.random.seed(0) before the explainer, since shap breaks ties between equal priorities with
np.random.randn (heatlens' seed=0 does the same).
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
shap = pytest.importorskip("shap")
pytest.importorskip("cv2")

from tutorial_helpers import seeded

import heatlens
from heatlens.classes import imagenet_classes

SIZE = 32
MAX_EVALS = 100
SEED = 3


@pytest.fixture(scope="module")
def case(chelsea: np.ndarray) -> dict:
    """The notebook's objects and its shap values for the photo."""
    from keras.applications.resnet50 import ResNet50, preprocess_input
    from PIL import Image

    model = seeded(lambda: ResNet50(weights=None, input_shape=(SIZE, SIZE, 3)), SEED)
    photo = np.asarray(Image.fromarray(chelsea).resize((SIZE, SIZE), Image.Resampling.BILINEAR))
    X = photo[None].astype(np.float32)  # noqa: N806 (the notebook's name)
    class_names = list(imagenet_classes())

    def f(x):
        tmp = x.copy()
        preprocess_input(tmp)
        return model(tmp)

    masker = shap.maskers.Image("inpaint_telea", X[0].shape)
    explainer = shap.Explainer(f, masker, output_names=class_names)
    np.random.seed(0)
    shap_values = explainer(X[0:1], max_evals=MAX_EVALS, batch_size=50, outputs=shap.Explanation.argsort.flip[:4])
    return {"f": f, "X": X, "shap_values": shap_values}


@pytest.fixture(scope="module")
def result(case: dict) -> heatlens.Explanation:
    """heatlens' call in the notebook's place: the same f, masker, budget and rounds of 50 masks."""
    return heatlens.explain(case["f"], case["X"][0], method="shap_partition", masker="inpaint_telea",
                            max_evals=MAX_EVALS, round_size=50, target="top4", progress=False)


def test_same_top_four_outputs(case: dict, result: heatlens.Explanation) -> None:
    """f received the array as the caller gave it (as shap passes it), and the result says so."""
    assert any("as given" in note for note in result.notes), result.notes
    scores = np.asarray(case["f"](case["X"]))[0]
    top4 = np.argsort(scores)[::-1][:4]
    np.testing.assert_array_equal(result.targets.ids[0], top4)
    names = np.asarray(case["shap_values"].output_names).reshape(-1)
    np.testing.assert_array_equal(names, np.array(imagenet_classes())[top4])


def test_partition_values_equal_shap_to_1e5_of_the_peak(case: dict, result: heatlens.Explanation) -> None:
    expected = np.moveaxis(case["shap_values"].values[0], -1, 0)  # (4, H, W, C)
    ours = result.attributions[0]
    peak = np.abs(expected).max()
    assert peak > 0
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-5 * peak)


def test_base_values_and_additivity_equal_shap(case: dict, result: heatlens.Explanation) -> None:
    """The fully masked image is the photo's mean colour, as shap's masker makes it, so the values add up to
    f(x) - f(mean colour), as shap's do."""
    x, f = case["X"], case["f"]
    mean_colour = np.broadcast_to(x[0].mean(axis=(0, 1)), x.shape).astype(np.float32)
    top4 = result.targets.ids[0]
    base = np.asarray(f(mean_colour))[0, top4]
    full = np.asarray(f(x))[0, top4]
    scale = np.abs(full).max()
    np.testing.assert_allclose(case["shap_values"].base_values[0], base, atol=1e-6 * scale)
    np.testing.assert_allclose(result.extras["base_values"][0], base, atol=1e-6 * scale)
    np.testing.assert_allclose(result.attributions[0].sum(axis=(1, 2, 3)), full - base, atol=1e-5 * scale)
