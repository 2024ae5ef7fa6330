"""Deletion and insertion (Petsiuk et al. 2018) against a direct computation of the paper's procedure."""

from __future__ import annotations

import numpy as np
import pytest
from planted import SIZE, explanation_of, planted_images, planted_network, true_maps

import heatlens
from heatlens import metrics
from heatlens.errors import ImageError, MethodError


@pytest.fixture(scope="module")
def planted() -> tuple[heatlens.models.Network, np.ndarray]:
    return planted_network(), planted_images(3)


def direct_curve(network, image: np.ndarray, saliency: np.ndarray, target: int, steps: int, fill: np.ndarray,
                 insert: bool) -> np.ndarray:
    """The paper's loop, one image at a time: at step t the t/steps most salient pixels are removed (inserted)."""
    order = np.argsort(-saliency.ravel(), kind="stable")
    curve = []
    for t in range(steps + 1):
        chosen = np.zeros(saliency.size, bool)
        chosen[order[: round(t * saliency.size / steps)]] = True
        chosen = chosen.reshape(saliency.shape)
        picture = np.where(chosen[..., None], image, fill) if insert else np.where(chosen[..., None], fill, image)
        logits = network.predict(picture[None])[0]
        curve.append(np.exp(logits[target]) / np.exp(logits).sum())
    return np.array(curve)


@pytest.mark.parametrize("name", ["deletion", "insertion"])
def test_curve_and_area_match_the_papers_procedure(planted, name):
    network, x = planted
    rng = np.random.default_rng(1)
    maps = rng.normal(size=(3, 1, SIZE, SIZE)).astype(np.float32)
    result = metrics.compute(name, network, None, explanation_of(network, x, maps), steps=16, baseline=0.25,
                             progress=False)
    for i in range(3):
        expected = direct_curve(network, x[i], maps[i, 0], 0, 16, np.full_like(x[i], 0.25), name == "insertion")
        np.testing.assert_allclose(result.curves["scores"][i, 0], expected, rtol=1e-5, atol=1e-7)
    fraction = result.curves["fraction"]
    curve = result.curves["scores"]
    trapezoid = ((curve[..., 1:] + curve[..., :-1]) / 2 * np.diff(fraction)).sum(-1)
    np.testing.assert_allclose(result.scores, trapezoid, rtol=1e-12)
    assert result.higher_is_better == (name == "insertion")


def test_deletion_starts_at_the_models_score_and_ends_at_the_baselines(planted):
    network, x = planted
    result = metrics.deletion(network, None, explanation_of(network, x, true_maps(3)), steps=8, progress=False)
    probs = heatlens.explain(network, x, "occlusion", target=0, window=8, progress=False).targets.probabilities
    np.testing.assert_allclose(result.curves["scores"][:, 0, 0], probs[:, 0], rtol=1e-6)
    black = network.predict(np.zeros_like(x))
    np.testing.assert_allclose(result.curves["scores"][:, 0, -1], np.exp(black[:, 0]) / np.exp(black).sum(1),
                               rtol=1e-6)


def test_forward_passes_are_batched_and_counted():
    calls: list[int] = []
    network, x = planted_network(calls), planted_images(2)
    explanation = explanation_of(network, x, true_maps(2))
    calls.clear()
    result = metrics.deletion(network, None, explanation, steps=10, batch_size=5, progress=False)
    assert sum(calls) == result.forward_passes == 2 * 11
    assert calls == [5, 5, 5, 5, 2]


def test_the_true_square_beats_noise_and_its_inverse(planted):
    network, x = planted
    rng = np.random.default_rng(2)
    maps = {"true": true_maps(3), "inverse": -true_maps(3), "noise": rng.normal(size=(3, 1, SIZE, SIZE))}
    for name, better in (("deletion", min), ("insertion", max)):
        scores = {k: metrics.compute(name, network, None, explanation_of(network, x, m), steps=20,
                                     progress=False).mean() for k, m in maps.items()}
        assert better(scores, key=scores.get) == "true", (name, scores)
        assert len(set(scores.values())) == 3


def test_superpixels_are_removed_whole(planted):
    network, x = planted
    result = metrics.deletion(network, None, explanation_of(network, x, true_maps(3)), unit="superpixel",
                              n_segments=12, steps=4, progress=False)
    assert result.curves["scores"].shape == (3, 1, 5)
    assert result.params["unit"] == "superpixel"
    assert result.curves["scores"][:, 0, 0].min() > result.curves["scores"][:, 0, -1].max()


def test_photo_resolution_maps_are_taken_back_to_the_model_input(lite0, cat):
    """A map that is 1 on the box of the photo the model saw and 0 outside lands on the whole model input."""
    explanation = heatlens.explain(lite0, cat, "gradcam")
    top, left, bottom, right = explanation.input_box
    maps = np.zeros_like(explanation.maps)
    maps[..., int(np.ceil(top)) : int(bottom), int(np.ceil(left)) : int(right)] = 1.0
    explanation.maps = maps
    sub = metrics.core.subject(lite0, None, explanation)
    assert sub.maps.shape[-2:] == sub.x.shape[1:3]
    assert sub.maps[..., 1:-1, 1:-1].min() > 0.99


def test_a_method_name_explains_first(planted):
    network, x = planted
    result = metrics.deletion(network, x, "occlusion", target=0, options={"window": 8, "stride": 8}, steps=4,
                              progress=False)
    assert result.method == "occlusion" and result.scores.shape == (3, 1)
    assert result.params == {"steps": 4, "baseline": "black", "unit": "pixel", "score": "probability"}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"unit": "patch"}, "unit must be one of"),
    ({"steps": 0}, "steps must be a positive integer"),
    ({"baseline": "white"}, "unknown baseline 'white'"),
    ({"baseline": float("nan")}, "baseline must be a finite number"),
    ({"score": "softmax"}, "score must be one of"),
])
def test_bad_parameters_are_refused_in_one_line(planted, kwargs, message):
    network, x = planted
    with pytest.raises(MethodError, match=message):
        metrics.deletion(network, None, explanation_of(network, x, true_maps(3)), progress=False, **kwargs)


def test_bad_subjects_are_refused_in_one_line(planted):
    network, x = planted
    explanation = explanation_of(network, x, true_maps(3))
    with pytest.raises(MethodError, match="explanation must be a method name or an Explanation"):
        metrics.deletion(network, x, 3)
    with pytest.raises(MethodError, match="options= are for a method name"):
        metrics.deletion(network, None, explanation, options={"window": 4})
    with pytest.raises(ImageError, match="the explanation has maps of 3 image"):
        metrics.deletion(network, x[:2], explanation)
    with pytest.raises(MethodError, match=r"unknown metric 'delete'.*'deletion'"):
        metrics.compute("delete", network, x)
